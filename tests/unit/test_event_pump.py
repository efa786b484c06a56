"""``EventPump.stop``: the pump handles every event sent before the stop, then returns at once,
without a last wait of its poll (``ShardPool.wake``'s marker ends the wait)."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from node_agent.runner import CheckpointEvent, EventPump, PoolEvent, ProgressEvent, ShardPool
from tests.waiting import wait_for


@pytest.fixture
def pool() -> Iterator[ShardPool]:
    shards = ShardPool(1)  # no task is submitted: no worker process starts
    yield shards
    shards.close(grace=0.1)


def test_the_pump_handles_what_came_before_stop_and_waits_out_no_poll(
    pool: ShardPool, monkeypatch: pytest.MonkeyPatch
) -> None:
    sent: list[PoolEvent] = [ProgressEvent(f"s{i:06d}", i) for i in range(5)]
    sent.append(CheckpointEvent("s000009", b"state", 9))
    handled: list[PoolEvent] = []
    waited_out: list[float] = []  # polls that ended on their timeout, once stopping
    pump = EventPump(pool, handled.append)
    next_events = pool.next_events

    def timed(timeout: float) -> list[PoolEvent]:
        started, marked = time.monotonic(), getattr(pool, "woken", False)
        events = next_events(timeout)
        woke = getattr(pool, "woken", False) and not marked  # the marker ended this wait
        if pump._halt.is_set() and timeout > 0 and not events and not woke:
            waited_out.append(time.monotonic() - started)
        return events

    monkeypatch.setattr(pool, "next_events", timed)
    pump.start()
    for event in sent:
        pool._events.put(event)
    pump.stop()
    pump.join(timeout=5.0)
    assert not pump.is_alive()
    assert handled == sent
    assert waited_out == []


def test_a_marker_is_no_event(pool: ShardPool) -> None:
    pool.wake()
    assert pool.next_events(5.0) == []
    assert pool.woken


def test_without_its_marker_the_pump_still_ends_on_an_empty_poll_after_stop(
    pool: ShardPool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A worker killed while writing an event holds the stream's write lock: the marker may
    never come. The pump must not wait for it for ever."""
    monkeypatch.setattr(pool, "wake", lambda: None)
    handled: list[PoolEvent] = []
    pump = EventPump(pool, handled.append)
    pump.start()
    pool._events.put(ProgressEvent("s000001", 1))
    wait_for(lambda: handled or None, 5.0, "the event before the stop")
    pump.stop()
    pump.join(timeout=5.0)
    assert not pump.is_alive()
    assert handled == [ProgressEvent("s000001", 1)]
