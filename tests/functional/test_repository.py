"""Repository writes that must be idempotent under client retries, and refuse stale attempts."""

from __future__ import annotations

import pytest

from localcloud.stack import LocalStack
from tests.fakes import mission_record
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
    store.begin_attempt(mission_id, "u0000", 1, "token-1", "spot")
    # the SDK retries a request the server had applied: same attempt, same token → carry on
    unit, queued = store.begin_attempt(mission_id, "u0000", 1, "token-1", "spot")
    assert unit.attempt == 1 and len(queued) == 3  # still this attempt's 3 shards to run
    assert all(s.status is ShardStatus.QUEUED for s in store.list_shards(mission_id))
    with pytest.raises(AttemptSuperseded):
        store.begin_attempt(mission_id, "u0000", 1, "token-other", "spot")
    store.begin_attempt(mission_id, "u0000", 2, "token-2", "on-demand")
    with pytest.raises(AttemptSuperseded):
        store.begin_attempt(mission_id, "u0000", 1, "token-1", "spot")


def test_a_shard_is_done_once_and_counted_once(planned: tuple[LocalStack, str]) -> None:
    stack, mission_id = planned
    store = stack.services.store
    store.begin_attempt(mission_id, "u0000", 1, "t", "spot")
    assert store.move_shard(mission_id, "s000000", ShardStatus.RUNNING, attempt=1)
    done = {"resultKey": "k"}
    assert store.move_shard(mission_id, "s000000", ShardStatus.DONE, attempt=1, fields=done)
    assert not store.move_shard(mission_id, "s000000", ShardStatus.DONE, attempt=1, fields=done)
    assert not store.move_shard(
        mission_id, "s000000", ShardStatus.QUEUED, attempt=2, older_attempts=True
    )
    assert progress_of(store.list_shards(mission_id), []).done == 1
    assert store.get_shard(mission_id, "s000000").status is ShardStatus.DONE  # type: ignore[union-attr]


def _update_calls(stack: LocalStack) -> list[str]:
    calls: list[str] = []
    stack.services.ddb.meta.events.register(
        "before-call.dynamodb.UpdateItem", lambda **_: calls.append("UpdateItem")
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
    calls = _update_calls(stack)
    _, queued = store.begin_attempt(mission_id, "u0000", 1, "t1", "spot")
    assert (len(queued), len(calls)) == (3, 1)  # the unit item only
    assert store.move_shard(mission_id, "s000000", ShardStatus.RUNNING, attempt=1)
    done = {"resultKey": "k"}
    assert store.move_shard(mission_id, "s000000", ShardStatus.DONE, attempt=1, fields=done)
    calls.clear()
    _, queued = store.begin_attempt(mission_id, "u0000", 2, "t2", "on-demand")
    assert (len(queued), len(calls)) == (2, 1 + 2)  # the unit, then each open shard
    assert not store.move_shard(mission_id, "s000001", ShardStatus.RUNNING, attempt=1)
