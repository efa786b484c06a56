"""Any JSON a StartExecution carries ends on the rejection path: named, noticed, nothing written.

AWS accepts any JSON document as execution input, so ``[1,2,3]``, ``"x"``, ``null`` and a
key of 200,000 characters are possible: each must end ``Mission.InvalidInput`` with its SNS
notice, never ``States.Runtime`` (a Catch that cannot place its ResultPath) nor
``States.DataLimitExceeded`` (the state grown past 256 KiB with copies of the input).
"""

from __future__ import annotations

from typing import Any

import pytest

from localcloud.stack import SOURCE_RULE_NAME, LocalStack
from tests.functional.conftest import notices, start_manual, wait_execution

pytestmark = pytest.mark.functional

GOOD_KEY = "incoming/good.txt"
LONG_KEY = "incoming/" + "k" * 200_000


@pytest.fixture(scope="module")
def manual_only(shared_stack: LocalStack) -> LocalStack:
    shared_stack.services.events.disable_rule(Name=SOURCE_RULE_NAME)
    shared_stack.services.store.put_profile("default", {"workload": "noop"}, 0.0)
    s3 = shared_stack.services.s3
    s3.put_object(Bucket=shared_stack.settings.source_bucket, Key=GOOD_KEY, Body=b"a\nb\n")
    return shared_stack


def _s3_event(detail: Any) -> dict[str, Any]:
    return {"source": "aws.s3", "detail-type": "Object Created", "detail": detail}


def _manual(**params: Any) -> dict[str, Any]:
    return {"input": {"bucket": "lighthpc-source", "key": GOOD_KEY}, "params": params}


CASES: list[tuple[str, Any, str]] = [
    ("a list", [1, 2, 3], "must be a JSON object, got list"),
    ("a string", "x", "must be a JSON object, got str"),
    ("null", None, "must be a JSON object, got NoneType"),
    ("a number", 7, "must be a JSON object, got int"),
    ("200,000-character key", {"input": {"bucket": "lighthpc-source", "key": LONG_KEY}}, "bytes"),
    ("S3 event, detail a list", _s3_event([1]), "detail"),
    ("S3 event, bucket a string", _s3_event({"bucket": "b", "object": {"key": "k"}}), "bucket"),
    ("S3 event, no object", _s3_event({"bucket": {"name": "lighthpc-source"}}), "object"),
    (
        "S3 event, size a string",
        _s3_event({"bucket": {"name": "b"}, "object": {"key": "k", "size": "9"}}),
        "size",
    ),
    (
        "S3 event, long key",
        _s3_event({"bucket": {"name": "b"}, "object": {"key": LONG_KEY}}),
        "bytes",
    ),
    ("shards=true", _manual(shards=True), "params.shards: must be a number, not bool"),
    ("shards as a string", _manual(shards="2"), "params.shards: must be a number"),
    (
        "heartbeat below the floor",
        _manual(heartbeatSeconds=1),
        "params.heartbeatSeconds: must be >=",
    ),
    ("unknown field 200k long", {"input": {}, "z" * 200_000: 1}, "unknown top-level"),
]


@pytest.mark.parametrize(("case", "payload", "needle"), CASES, ids=[c[0] for c in CASES])
def test_any_json_input_is_rejected_with_a_notice(
    manual_only: LocalStack, case: str, payload: Any, needle: str
) -> None:
    desc = wait_execution(manual_only, start_manual(manual_only, payload))
    assert (desc["status"], desc.get("error")) == ("FAILED", "Mission.InvalidInput"), desc
    assert needle in desc["cause"], case
    assert "Traceback" not in desc["cause"] and "stackTrace" not in desc["cause"]
    assert len(desc["cause"]) < 2_000, "the cause must not echo a huge input"
    [message] = notices(manual_only)
    assert message.startswith("Mission rejected (Mission.InvalidInput)") and needle in message
    assert list(manual_only.services.store.scan_missions()) == []
    trans = manual_only.services.ddb.scan(TableName=manual_only.settings.trans_table)
    assert trans["Count"] == 0
