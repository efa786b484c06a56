"""Bad input: the execution fails with ``Mission.InvalidInput``, says why, writes nothing."""

from __future__ import annotations

from typing import Any

import pytest

from localcloud.lambda_runtime import load_function_limits
from localcloud.stack import SOURCE_RULE_NAME, LocalStack
from tests.functional.conftest import notices, start_manual, wait_execution
from workflow import planning
from workflow.lambda_room import LambdaRoom

GOOD_KEY = "incoming/good.txt"
HUGE_LIBRARY = "libraries/huge.smi"


@pytest.fixture(scope="module")
def loaded(shared_stack: LocalStack) -> LocalStack:
    stack = shared_stack
    s3 = stack.services.s3
    events = stack.services.events
    events.disable_rule(Name=SOURCE_RULE_NAME)  # these tests start every mission by hand
    bucket = stack.settings.source_bucket
    s3.put_object(Bucket=bucket, Key=GOOD_KEY, Body=b"a\nb\nc\n")
    s3.put_object(Bucket=bucket, Key="incoming/empty.txt", Body=b"")
    s3.put_object(Bucket=bucket, Key="incoming/latin1.smi", Body="CCO\tÉthanol\n".encode("latin-1"))
    s3.put_object(Bucket=bucket, Key="incoming/junk.smi", Body=b"not-a-smiles\n%%%%\n")
    s3.put_object(Bucket=bucket, Key="elsewhere/x.txt", Body=b"a\n")
    # One byte more than the 1,024 MB PlanMission reads in memory (workflow.lambda_room).
    room = LambdaRoom(memory_mb=load_function_limits()["light_scheduler"].memory_mb)
    s3.put_object(Bucket=bucket, Key=HUGE_LIBRARY, Body=b"C\n" * (room.input_bytes_in_memory // 2))
    stack.services.store.put_profile("default", {"workload": "noop"}, 0.0)
    return stack


def _manual(key: str, bucket: str | None = "lighthpc-source", **params: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"key": key}
    if bucket is not None:
        body["bucket"] = bucket
    return {"input": body, "params": params}


CASES: list[tuple[str, Any, str]] = [
    ("empty object", {}, '"input" must be an object'),
    (
        "params not an object",
        {"input": {"bucket": "lighthpc-source", "key": GOOD_KEY}, "params": [3]},
        '"params" must be an object',
    ),
    ("missing bucket", _manual(GOOD_KEY, bucket=None), "input.bucket"),
    ("key outside the prefix", _manual("elsewhere/x.txt"), "outside the watched prefix"),
    ("empty sample", _manual("incoming/empty.txt"), "is empty"),
    ("missing sample", _manual("incoming/nope.txt"), "cannot be read"),
    ("non-UTF-8 sample", _manual("incoming/latin1.smi", workload="molsim"), "UTF-8"),
    ("malformed sample", _manual("incoming/junk.smi", workload="molsim"), "no valid SMILES"),
    ("shards=0", _manual(GOOD_KEY, shards=0), "params.shards"),
    ("shards > limit", _manual(GOOD_KEY, shards=10**6), "params.shards"),
    ("shards > items", _manual(GOOD_KEY, shards=5), "exceed"),
    ("unknown workload", _manual(GOOD_KEY, workload="fortran"), "unknown workload"),
    ("unknown instance type", _manual(GOOD_KEY, instanceTypes=["q9.huge"]), "q9.huge"),
    ("negative heartbeat", _manual(GOOD_KEY, heartbeatSeconds=-1), "params.heartbeatSeconds"),
    ("unknown param", _manual(GOOD_KEY, colour="red"), "params.colour: unknown parameter"),
    (
        "missing library",
        _manual(GOOD_KEY, library="s3://lighthpc-source/libraries/nope.smi"),
        "library s3://lighthpc-source/libraries/nope.smi cannot be read",
    ),
    (
        "library larger than PlanMission's memory",
        _manual(GOOD_KEY, library=f"s3://lighthpc-source/{HUGE_LIBRARY}"),
        "too large for PlanMission's memory",
    ),
]


@pytest.mark.parametrize(("case", "payload", "needle"), CASES, ids=[c[0] for c in CASES])
def test_bad_input_is_rejected_cleanly(
    loaded: LocalStack, case: str, payload: Any, needle: str
) -> None:
    desc = wait_execution(loaded, start_manual(loaded, payload))
    assert desc["status"] == "FAILED", case
    assert desc["error"] == "Mission.InvalidInput"
    assert needle in desc["cause"]
    assert "stackTrace" not in desc["cause"]
    [message] = notices(loaded)
    assert "Mission rejected (Mission.InvalidInput)" in message and needle in message
    assert [m.mission_id for m in loaded.services.store.scan_missions()] == []
    assert loaded.services.ddb.scan(TableName=loaded.settings.trans_table)["Count"] == 0
    listed = loaded.services.s3.list_objects_v2(Bucket=loaded.settings.result_bucket)
    assert listed.get("KeyCount", 0) == 0


def test_an_unexpected_planning_error_is_notified_without_a_stack_trace(
    loaded: LocalStack, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*_args: object) -> None:
        raise RuntimeError("planner bug")

    monkeypatch.setattr(planning, "plan_shards", broken)
    desc = wait_execution(loaded, start_manual(loaded, _manual(GOOD_KEY)))
    assert desc["status"] == "FAILED"
    assert desc["error"] == "RuntimeError"
    assert "stackTrace" not in desc["cause"] and "planner bug" not in desc["cause"]
    [message] = notices(loaded)
    assert "could not be planned (RuntimeError)" in message
    assert desc["executionArn"] in message and "stackTrace" not in message
    assert [m.mission_id for m in loaded.services.store.scan_missions()] == []
