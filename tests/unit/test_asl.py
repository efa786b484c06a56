"""The definition loader: placeholders, dangling transitions, and the story the graph tells."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from workflow.asl import load_definition, placeholders, read_definition, state_names, substitute
from workflow.errors import AslInvalid, StoreContended

VALUES = {
    "LightSchedulerFunctionArn": "arn:fn:sched",
    "RsltProcFunctionArn": "arn:fn:rslt",
    "MissionTopicArn": "arn:topic",
}


def test_the_real_definition_loads_and_names_the_story() -> None:
    definition = load_definition(VALUES)
    names = state_names(definition)
    for expected in (
        "PlanMission",
        "IsDuplicateMission",
        "RunWorkUnits",
        "LaunchNode",
        "AggregateResults",
        "NotifyMission",
        "MissionSucceeded",
        "MissionFailed",
        "NotifyRejected",
        "MissionRejected",
    ):
        assert expected in names
    assert "${" not in json.dumps(definition)
    run = definition["States"]["RunWorkUnits"]
    assert run["ItemProcessor"]["ProcessorConfig"] == {
        "Mode": "DISTRIBUTED",
        "ExecutionType": "STANDARD",
    }
    launch = run["ItemProcessor"]["States"]["LaunchNode"]
    assert launch["Resource"].endswith("lambda:invoke.waitForTaskToken")
    retried = {e for r in launch["Retry"] for e in r["ErrorEquals"]}
    assert {"Spot.Interrupted", "Node.Lost", "States.HeartbeatTimeout", "States.Timeout"} <= retried
    assert "HeartbeatSecondsPath" in launch and "TimeoutSecondsPath" in launch


def test_a_failed_unit_never_fails_the_map_run() -> None:
    """AWS's Map tolerance defaults to 0 %: one failed child would abort the other units, so
    the Map tolerates all and RsltProc applies maxFailedShardPercent (issue 12 §1)."""
    run = load_definition(VALUES)["States"]["RunWorkUnits"]
    assert run["ToleratedFailurePercentage"] == 100
    record = run["ItemProcessor"]["States"]["RecordUnitFailure"]
    assert record["Retry"][-1]["ErrorEquals"] == ["States.ALL"]
    [catcher] = record["Catch"]
    assert catcher["ErrorEquals"] == ["States.ALL"]
    assert run["ItemProcessor"]["States"][catcher["Next"]]["End"] is True


def _lambda_tasks(states: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    for name, state in states.items():
        if state.get("Resource", "").startswith("arn:aws:states:::lambda:invoke"):
            yield name, state
        if "ItemProcessor" in state:
            yield from _lambda_tasks(state["ItemProcessor"]["States"])


def test_every_lambda_step_retries_a_contended_store() -> None:
    """A write DynamoDB still refuses as contended after the store's own retries leaves a
    handler as ``Store.Contended``: each Lambda step retries it, before any Catch that would
    fail the mission or the unit's shards."""
    tasks = dict(_lambda_tasks(load_definition(VALUES)["States"]))
    assert {"PlanMission", "LaunchNode", "VerifyUnit", "RecordUnitFailure"} <= set(tasks)
    for name, task in tasks.items():
        retried = {e for r in task.get("Retry", []) for e in r["ErrorEquals"]}
        assert StoreContended.error_name in retried, name


def test_missing_and_unused_placeholders_are_refused() -> None:
    text = read_definition()
    assert placeholders(text) == set(VALUES)
    with pytest.raises(AslInvalid, match="no value for placeholder"):
        substitute(text, {k: v for k, v in VALUES.items() if k != "MissionTopicArn"})
    with pytest.raises(AslInvalid, match="not used"):
        substitute(text, {**VALUES, "Extra": "x"})


def test_dangling_transitions_are_found_also_in_nested_maps(tmp_path: Path) -> None:
    definition = json.loads(read_definition())
    inner = definition["States"]["RunWorkUnits"]["ItemProcessor"]["States"]
    inner["LaunchNode"]["Catch"][0]["Next"] = "NoSuchState"
    definition["States"]["IsDuplicateMission"]["Default"] = "Nowhere"
    path = tmp_path / "sm.json"
    path.write_text(json.dumps(definition))
    with pytest.raises(AslInvalid) as info:
        load_definition(VALUES, path)
    assert "NoSuchState" in str(info.value) and "Nowhere" in str(info.value)


def test_malformed_json_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "sm.json"
    path.write_text('{"StartAt": "A", "States": {')
    with pytest.raises(AslInvalid, match="not valid JSON"):
        load_definition({}, path)
