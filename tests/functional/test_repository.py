"""Repository writes that must be idempotent under client retries, and refuse stale attempts."""

from __future__ import annotations

import pytest

from localcloud.stack import LocalStack
from tests.fakes import mission_record
from tests.functional.simnode import begin
from workflow.errors import AttemptSuperseded
from workflow.planner import pack_units, plan_shards
from workflow.progress import progress_of
from workflow.states import ShardStatus


@pytest.fixture
def planned(shared_stack: LocalStack) -> tuple[LocalStack, str]:
    store = shared_stack.services.store
    mission_id = f"m-test-{len(list(store.scan_missions()))}"
    store.create_mission(mission_record(mission_id))
    store.put_plan(mission_id, pack_units(plan_shards(6, 3), 1))
    return shared_stack, mission_id


def test_a_retried_begin_attempt_is_its_own_not_superseded(planned: tuple[LocalStack, str]) -> None:
    stack, mission_id = planned
    store = stack.services.store
    begin(store, mission_id, "u0000", 1, token="token-1", capacity="spot")
    # the SDK retries a request the server had applied: same attempt, same token → carry on
    unit, queued = begin(store, mission_id, "u0000", 1, token="token-1", capacity="spot")
    assert unit.attempt == 1 and queued == 3  # still this attempt's 3 shards to run
    assert all(s.status is ShardStatus.QUEUED for s in store.list_shards(mission_id))
    with pytest.raises(AttemptSuperseded):
        begin(store, mission_id, "u0000", 1, token="token-other", capacity="spot")
    begin(store, mission_id, "u0000", 2, token="token-2", capacity="on-demand")
    with pytest.raises(AttemptSuperseded):
        begin(store, mission_id, "u0000", 1, token="token-1", capacity="spot")


def test_a_shard_is_done_once_and_counted_once(planned: tuple[LocalStack, str]) -> None:
    stack, mission_id = planned
    store = stack.services.store
    begin(store, mission_id, "u0000", 1, token="t", capacity="spot")
    assert store.move_shard(mission_id, "s000000", ShardStatus.RUNNING, attempt=1)
    done = {"resultKey": "k"}
    assert store.move_shard(mission_id, "s000000", ShardStatus.DONE, attempt=1, fields=done)
    assert not store.move_shard(mission_id, "s000000", ShardStatus.DONE, attempt=1, fields=done)
    assert not store.move_shard(
        mission_id, "s000000", ShardStatus.QUEUED, attempt=2, older_attempts=True
    )
    assert progress_of(store.list_shards(mission_id), []).done == 1
    assert store.get_shard(mission_id, "s000000").status is ShardStatus.DONE  # type: ignore[union-attr]


def _calls(stack: LocalStack) -> list[str]:
    calls: list[str] = []
    for op in ("Query", "UpdateItem", "TransactWriteItems"):
        stack.services.ddb.meta.events.register(
            f"before-call.dynamodb.{op}", lambda op=op, **_: calls.append(op)
        )
    return calls


def test_the_first_launch_moves_no_shard_and_a_relaunch_moves_the_open_ones(
    planned: tuple[LocalStack, str],
) -> None:
    stack, mission_id = planned
    store = stack.services.store
    assert {(s.status, s.attempt) for s in store.list_shards(mission_id)} == {
        (ShardStatus.QUEUED, 1)
    }
    calls = _calls(stack)
    _, queued = begin(store, mission_id, "u0000", 1, token="t1", capacity="spot")
    assert (queued, calls) == (3, ["UpdateItem"])  # the unit item only: no shard read
    assert store.move_shard(mission_id, "s000000", ShardStatus.RUNNING, attempt=1)
    done = {"resultKey": "k"}
    assert store.move_shard(mission_id, "s000000", ShardStatus.DONE, attempt=1, fields=done)
    calls.clear()
    _, queued = begin(store, mission_id, "u0000", 2, token="t2", capacity="on-demand")
    # the unit, the open shards read, then one transaction for them (100 per transaction)
    assert (queued, calls) == (2, ["UpdateItem", "Query", "TransactWriteItems"])
    assert not store.move_shard(mission_id, "s000001", ShardStatus.RUNNING, attempt=1)
