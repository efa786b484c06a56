"""The node's log shipping, without a cloud: batches PutLogEvents accepts, a queue that never
blocks the agent and counts what it had to drop."""

from __future__ import annotations

import logging
import time
from collections import deque
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from hypothesis import given, settings
from hypothesis import strategies as st

from node_agent import logs
from node_agent.log_shipping import (
    BACKOFF_CAP_SECONDS,
    EVENT_OVERHEAD_BYTES,
    MAX_BATCH_BYTES,
    MAX_BATCH_EVENTS,
    MAX_BATCH_SPAN_MS,
    MAX_EVENT_BYTES,
    LogEvent,
    LogShipper,
    ShippingHandler,
    clip,
    stream_of_bound,
    take_batch,
)
from node_agent.startup import start_shipping

pytestmark = pytest.mark.unit

# Few distinct sizes, up to one event's maximum: runs of big lines cross the byte limit,
# runs of small ones the count limit; steps up to a day and a half cross the 24-hour span.
SIZES = st.sampled_from([0, 1, 200, 30_000, 200_000, MAX_EVENT_BYTES - EVENT_OVERHEAD_BYTES])
STEPS = st.sampled_from([0, 0, 1, 1000, 3600_000 * 13])


@st.composite
def event_runs(draw: st.DrawFn) -> list[LogEvent]:
    runs = draw(st.lists(st.tuples(SIZES, STEPS, st.integers(1, 3000)), min_size=0, max_size=6))
    events: list[LogEvent] = []
    now = 1_700_000_000_000
    for size, step, count in runs:
        for _ in range(count):
            now += step
            events.append(LogEvent(now, "x" * size))
    return events


@settings(max_examples=60, deadline=None)
@given(event_runs())
def test_every_batch_fits_put_log_events_and_nothing_is_lost_or_reordered(
    events: list[LogEvent],
) -> None:
    pending = deque(events)
    batches = []
    while pending:
        batch = take_batch(pending)
        assert batch, "a non-empty queue always yields a batch"
        batches.append(batch)
    for batch in batches:
        assert len(batch) <= MAX_BATCH_EVENTS
        assert sum(len(e.message.encode()) + EVENT_OVERHEAD_BYTES for e in batch) <= MAX_BATCH_BYTES
        stamps = [e.timestamp_ms for e in batch]
        assert stamps == sorted(stamps)
        assert stamps[-1] - stamps[0] <= MAX_BATCH_SPAN_MS
    assert [e for batch in batches for e in batch] == events


def test_batches_are_as_full_as_the_limits_allow() -> None:
    small = deque(LogEvent(1, "x") for _ in range(MAX_BATCH_EVENTS + 5))
    assert len(take_batch(small)) == MAX_BATCH_EVENTS
    big = deque(LogEvent(1, "y" * 100_000) for _ in range(20))
    assert len(take_batch(big)) == MAX_BATCH_BYTES // (100_000 + EVENT_OVERHEAD_BYTES)


@given(st.text(min_size=0, max_size=5).map(lambda s: s * 70_000))
@settings(max_examples=25, deadline=None)
def test_a_line_too_long_for_one_event_is_cut_to_fit_and_stays_valid_text(line: str) -> None:
    clipped = clip(line)
    assert len(clipped.encode("utf-8")) + EVENT_OVERHEAD_BYTES <= MAX_EVENT_BYTES
    if len(line.encode("utf-8")) + EVENT_OVERHEAD_BYTES <= MAX_EVENT_BYTES:
        assert clipped == line
    else:
        assert clipped.endswith("[truncated]") and line.startswith(
            clipped[: -len("...[truncated]")]
        )


@settings(max_examples=40, deadline=None)
@given(offered=st.integers(0, 300), room=st.integers(1, 120))
def test_a_full_queue_drops_and_counts_and_never_blocks(offered: int, room: int) -> None:
    shipper = LogShipper(client=None, group="g", max_queued=room)  # never started: nothing drains
    accepted = sum(shipper.offer(LogEvent(i, f"line {i}")) for i in range(offered))
    assert accepted == min(offered, room)
    assert shipper.dropped == offered - accepted


def test_handler_keeps_time_order_when_a_record_was_created_earlier() -> None:
    shipper = LogShipper(client=None, group="g")
    handler = ShippingHandler(shipper)
    late = logging.LogRecord("lighthpc_node", logging.INFO, "", 0, "later", (), None)
    early = logging.LogRecord("lighthpc_node", logging.INFO, "", 0, "earlier", (), None)
    early.created = late.created - 5
    handler.emit(late)
    handler.emit(early)  # another thread made its record first but took the lock second
    shipper._drain()
    stamps = [e.timestamp_ms for e in shipper._pending]
    assert stamps == sorted(stamps) and stamps[0] == int(late.created * 1000)
    assert '"message":"earlier"' in shipper._pending[1].message


def test_the_stream_is_named_once_the_agent_bound_its_identity() -> None:
    before = logs.bound()
    try:
        logs.bind(missionId=None, unitId=None, attempt=None, instanceId=None)
        assert stream_of_bound() is None
        logs.bind(missionId="m-1", unitId="u0002", attempt=3, instanceId="i-0abc")
        assert stream_of_bound() == "m-1/u0002/3/i-0abc"
    finally:
        logs.bind(**dict.fromkeys(logs.bound()))
        logs.bind(**before)


class ThrottlingLogs:
    """CloudWatch Logs as seen under throttling (moto never throttles): ``refusals`` puts
    refused with ``ThrottlingException`` before each accepted one."""

    def __init__(self, refusals: int) -> None:
        self.refusals = refusals
        self.refused = 0
        self.streams: list[str] = []
        self.batches: list[list[str]] = []

    def create_log_stream(self, **call: str) -> None:
        self.streams.append(call["logStreamName"])

    def put_log_events(self, **call: Any) -> dict[str, Any]:
        if self.refused < self.refusals:
            self.refused += 1
            error = {"Error": {"Code": "ThrottlingException", "Message": "Rate exceeded"}}
            raise ClientError(error, "PutLogEvents")  # type: ignore[arg-type]
        self.refused = 0
        self.batches.append([e["message"] for e in call["logEvents"]])
        return {"nextSequenceToken": "1"}


def test_throttled_puts_are_retried_after_jittered_pauses_and_nothing_is_lost() -> None:
    client, pauses = ThrottlingLogs(refusals=3), []
    shipper = LogShipper(
        client, "g", lambda: "m/u/1/i", max_queued=30_000, interval=0.01, sleep=pauses.append
    )
    lines = [f"line {i}" for i in range(25_000)]  # three batches
    for line in lines:
        shipper.offer(LogEvent(1, line))
    shipper.start().close(timeout=10)
    assert [m for batch in client.batches for m in batch] == lines
    assert len(client.batches) == 3 and client.streams == ["m/u/1/i"]  # one stream, once
    assert len(pauses) == 9 and max(pauses) <= BACKOFF_CAP_SECONDS and shipper.dropped == 0


def test_a_flush_against_a_cloud_that_always_throttles_ends_in_bounded_time() -> None:
    shipper = LogShipper(ThrottlingLogs(refusals=10**9), "g", lambda: "m/u/1/i", interval=0.01)
    shipper.offer(LogEvent(1, "never accepted"))
    began = time.monotonic()
    shipper.start().close(timeout=1.0)
    assert time.monotonic() - began < 1.0 + BACKOFF_CAP_SECONDS
    assert not shipper.shipped


def test_without_a_configured_group_the_node_logs_to_stderr_only_and_says_nothing(
    capsys: pytest.CaptureFixture[str],
) -> None:
    before = list(logging.getLogger().handlers)
    assert start_shipping("", boto3.session.Session()) is None
    assert logging.getLogger().handlers == before
    assert capsys.readouterr() == ("", "")
