"""Pure helpers of the benchmark scripts: payload shapes, throttle maths, request units."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from benchmarks.instruments import ChildRecord, transitions_of
from benchmarks.instruments.server import _write_units
from benchmarks.scale import apply_template, launch_wait_seconds, plan_case, state_output

MODEL = {"childEventsPerUnit": 8.0, "childTransitionsPerUnit": 2.0, "parentEvents": 29}


def test_item_selector_is_applied_like_the_map_does() -> None:
    asl = json.loads((Path(__file__).parents[2] / "statemachine.asl.json").read_text())
    selector = asl["States"]["RunWorkUnits"]["ItemSelector"]
    state = {"missionId": "m-1", "heartbeatSeconds": 5, "timeoutSeconds": 60}
    item = apply_template(
        selector, state, {"Map": {"Item": {"Value": {"unitId": "u0003", "shards": 7}}}}
    )
    assert item == {
        "missionId": "m-1",
        "unitId": "u0003",
        "shards": 7,
        "heartbeatSeconds": 5,
        "timeoutSeconds": 60,
        "attemptBase": 0,
        "earlySuccesses": 0,
    }


def test_launch_throttle_waits_only_beyond_the_burst() -> None:
    assert launch_wait_seconds(1000) == 0
    assert launch_wait_seconds(1200) == 100


def test_a_large_plan_keeps_every_state_payload_small() -> None:
    case = plan_case(10_000, 1000, MODEL)
    assert case["units"] == 1000
    assert case["largestStatePayloadBytes"] < 4096
    assert case["quota"]["history"] and case["quota"]["payload"]
    assert not case["quota"]["inlineMapWouldPass"]
    assert case["quota"]["mapCollectedOutputUnder256KiB"]  # children return only their unit id


def test_state_output_applies_result_path_then_output_path() -> None:
    asl = json.loads((Path(__file__).parents[2] / "statemachine.asl.json").read_text())
    record = asl["States"]["RunWorkUnits"]["ItemProcessor"]["States"]["RecordUnitFailure"]
    item = {"unitId": "u0007", "missionId": "m-1"}
    assert state_output(record, item, {"report": "large"}) == "u0007"
    assert state_output({"ResultPath": "$.r"}, {"a": 1}, 2) == {"a": 1, "r": 2}
    assert state_output({}, {"a": 1}, {"b": 2}) == {"b": 2}


def test_transactional_writes_count_double() -> None:
    body: dict[str, Any] = {"TransactItems": [{"Update": {}}, {"Update": {}}]}
    assert _write_units("TransactWriteItems", json.dumps(body)) == 4
    batch: dict[str, Any] = {"RequestItems": {"t": [{"PutRequest": {}}] * 25}}
    assert _write_units("BatchWriteItem", batch) == 25
    assert _write_units("UpdateItem", "{}") == 1


def test_transitions_count_start_states_and_retries() -> None:
    child = ChildRecord(0)
    child.events += ["TaskStateEntered", "TaskScheduled", "TaskFailed", "TaskScheduled"]
    assert child.transitions == 1 + 1 + 1
    parent = [{"type": t} for t in ("ExecutionStarted", "TaskStateEntered", "ChoiceStateEntered")]
    assert transitions_of(parent) == 3
