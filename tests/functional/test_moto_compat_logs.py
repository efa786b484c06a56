"""The CloudWatch Logs parity fixes: 15 PutLogEvents limits, 16 the stream-name prefix.

``test_bug_still_present_<fix>`` reverts the fix and shows moto still has the bug (it FAILS
the day moto fixes it: then drop the fix); the other tests show AWS's behaviour with it.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
from botocore.exceptions import ClientError

from localcloud import moto_compat
from node_agent.log_shipping import EVENT_OVERHEAD_BYTES, MAX_BATCH_BYTES, MAX_BATCH_EVENTS
from tests.functional._compat_fixtures import Harness, open_harness


@pytest.fixture(scope="module")
def harness() -> Iterator[Harness]:
    yield from open_harness()


def _stream(harness: Harness) -> tuple[Any, str, str]:
    logs = harness.client("logs")
    group = harness.unique("/test/group")
    logs.create_log_group(logGroupName=group)
    logs.create_log_stream(logGroupName=group, logStreamName="s")
    return logs, group, "s"


def _events(count: int, size: int, step_ms: int = 0) -> list[dict[str, Any]]:
    now = int(time.time() * 1000) - count * step_ms
    return [{"timestamp": now + i * step_ms, "message": "x" * size} for i in range(count)]


# A batch over each limit by one event, one byte, one millisecond.
TOO_MANY = (MAX_BATCH_EVENTS + 1, 1, 0)
TOO_BIG = (4, MAX_BATCH_BYTES // 4 - EVENT_OVERHEAD_BYTES + 1, 0)
JUST_RIGHT = (4, MAX_BATCH_BYTES // 4 - EVENT_OVERHEAD_BYTES, 0)
TOO_LONG = (2, 1, 24 * 3600 * 1000 + 1)


def _put(harness: Harness, shape: tuple[int, int, int]) -> str | None:
    logs, group, stream = _stream(harness)
    try:
        logs.put_log_events(logGroupName=group, logStreamName=stream, logEvents=_events(*shape))
    except ClientError as exc:
        return str(exc.response["Error"]["Code"])
    return None


def test_bug_still_present_logs_put_batch_limits(harness: Harness) -> None:
    with moto_compat.LOGS_PUT_BATCH_LIMITS.reverted():
        assert [_put(harness, shape) for shape in (TOO_MANY, TOO_BIG, TOO_LONG)] == [None] * 3


def test_put_log_events_refuses_a_batch_over_any_aws_limit(harness: Harness) -> None:
    refused = [_put(harness, shape) for shape in (TOO_MANY, TOO_BIG, TOO_LONG)]
    assert refused == ["InvalidParameterException"] * 3
    assert _put(harness, JUST_RIGHT) is None


def _two_missions(harness: Harness) -> tuple[Any, str]:
    logs = harness.client("logs")
    group = harness.unique("/test/nodes")
    logs.create_log_group(logGroupName=group)
    for stream in ("m-1/u0001/1/i-a", "m-1/u0002/1/i-b", "m-2/u0001/1/i-c"):
        logs.create_log_stream(logGroupName=group, logStreamName=stream)
        logs.put_log_events(
            logGroupName=group,
            logStreamName=stream,
            logEvents=[{"timestamp": int(time.time() * 1000), "message": stream}],
        )
    return logs, group


def _by_prefix(logs: Any, group: str, prefix: str) -> list[str]:
    events = logs.filter_log_events(logGroupName=group, logStreamNamePrefix=prefix)["events"]
    return sorted(e["message"] for e in events)


def test_bug_still_present_logs_filter_stream_prefix(harness: Harness) -> None:
    logs, group = _two_missions(harness)
    with moto_compat.LOGS_FILTER_STREAM_PREFIX.reverted():
        assert len(_by_prefix(logs, group, "m-1/u0002/")) == 3  # every stream's events


def test_filter_log_events_reads_only_the_streams_named_by_the_prefix(harness: Harness) -> None:
    logs, group = _two_missions(harness)
    assert _by_prefix(logs, group, "m-1/") == ["m-1/u0001/1/i-a", "m-1/u0002/1/i-b"]
    assert _by_prefix(logs, group, "m-1/u0002/") == ["m-1/u0002/1/i-b"]
    assert _by_prefix(logs, group, "m-3/") == []
    with pytest.raises(ClientError) as both:
        logs.filter_log_events(
            logGroupName=group, logStreamNamePrefix="m-1/", logStreamNames=["m-2/u0001/1/i-c"]
        )
    assert both.value.response["Error"]["Code"] == "InvalidParameterException"
