"""The mission store under DynamoDB's refusals (fixes 11, 12): a ``TransactionConflict`` or a
throttle is retried, only a ``ConditionalCheckFailed`` is "refused"."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest

from localcloud.moto_compat import FAULTS
from localcloud.stack import LocalStack
from tests.fakes import mission_record
from tests.waiting import wait_for
from workflow.planner import pack_units, plan_shards
from workflow.records import SHARD_PREFIX
from workflow.states import ShardStatus


@pytest.fixture(autouse=True)
def faults() -> Iterator[None]:
    FAULTS.reset()
    yield
    FAULTS.reset()


def _planned_store(stack: LocalStack) -> tuple[Any, str]:
    store = stack.services.store
    mission_id = "m-conflict"
    store.create_mission(mission_record(mission_id, shards=2, units=1))
    store.put_plan(mission_id, pack_units(plan_shards(20, 2), 1), 1_900_000_000)
    assert store.move_shard(mission_id, "s000000", ShardStatus.RUNNING, attempt=1)
    return store, mission_id


def test_a_commit_meeting_a_conflict_is_retried_not_taken_for_supersession(
    stack: LocalStack,
) -> None:
    """The shard item is held by another transaction for a moment: the commit must wait it
    out and land, and a second commit (a real refusal) must still be refused."""
    store, mission_id = _planned_store(stack)
    key = {"missionId": {"S": mission_id}, "shardId": {"S": SHARD_PREFIX + "s000000"}}
    released = threading.Event()

    def hold_briefly() -> None:
        with FAULTS.hold(stack.settings.trans_table, key):
            released.wait(0.3)

    holder = threading.Thread(target=hold_briefly)
    holder.start()
    wait_for(lambda: FAULTS.held() > 0, 5, "the shard item to be held")
    try:
        commit = {"resultKey": "k"}
        assert store.move_shard(mission_id, "s000000", ShardStatus.DONE, attempt=1, fields=commit)
        assert not store.move_shard(
            mission_id, "s000000", ShardStatus.DONE, attempt=1, fields=commit
        )
    finally:
        released.set()
        holder.join()
    shard = store.get_shard(mission_id, "s000000")
    assert shard is not None and (shard.status, shard.result_key) == (ShardStatus.DONE, "k")
    assert FAULTS.injected["conflict"] >= 1
