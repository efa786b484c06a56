"""Repository writes that must be idempotent under client retries, and refuse stale attempts."""

from __future__ import annotations

import pytest

from workflow.errors import AttemptSuperseded
from workflow.local.stack import LocalStack
from workflow.planner import pack_units, plan_shards
from workflow.states import ShardStatus


@pytest.fixture
def planned(shared_stack: LocalStack) -> tuple[LocalStack, str]:
    store = shared_stack.services.store
    mission_id = f"m-test-{len(list(store.scan_missions()))}"
    store.create_mission({"missionId": mission_id, "status": "RUNNING", "shardsDone": 0})
    store.put_plan(mission_id, pack_units(plan_shards(6, 3), 1))
    return shared_stack, mission_id


def test_a_retried_begin_attempt_is_its_own_not_superseded(planned: tuple[LocalStack, str]) -> None:
    stack, mission_id = planned
    store = stack.services.store
    store.begin_attempt(mission_id, "u0000", 1, "token-1", "spot")
    # the SDK retries a request the server had applied: same attempt, same token → carry on
    unit, queued = store.begin_attempt(mission_id, "u0000", 1, "token-1", "spot")
    assert unit.attempt == 1 and len(queued) == 0  # already QUEUED by the first call
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
    done = {"fields": {"resultKey": "k"}, "counters": {"shardsDone": 1}}
    assert store.move_shard(mission_id, "s000000", ShardStatus.DONE, attempt=1, **done)
    assert not store.move_shard(mission_id, "s000000", ShardStatus.DONE, attempt=1, **done)
    assert not store.move_shard(
        mission_id, "s000000", ShardStatus.QUEUED, attempt=2, older_attempts=True
    )
    assert store.get_mission(mission_id)["shardsDone"] == 1
    assert store.get_shard(mission_id, "s000000").status is ShardStatus.DONE  # type: ignore[union-attr]
