"""A mission on a DynamoDB that conflicts and throttles (fixes 11, 12) still ends right:
SUCCEEDED, every shard DONE once and counted once."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from localcloud.moto_compat import FAULTS
from localcloud.stack import LocalStack
from tests.functional.conftest import wait_execution
from tests.functional.simnode import NodeSim
from tests.functional.test_mission_flow import _upload, manual, mission_of, noop_profile
from tests.waiting import wait_for
from workflow.errors import StoreContended
from workflow.progress import progress_of
from workflow.states import ShardStatus


@pytest.fixture
def contended() -> Iterator[None]:
    FAULTS.configure(conflict=0.3, throttle=0.2, seed=11)
    yield
    FAULTS.reset()


def test_a_mission_under_conflicts_and_throttling_counts_every_shard_once(
    stack: LocalStack, contended: None
) -> None:
    noop_profile(stack, shards=12, maxNodes=4)
    _upload(stack, "incoming/contended.txt")
    with NodeSim(stack.services) as nodes:
        desc = wait_execution(stack, manual(stack, "incoming/contended.txt"), timeout=120)
    assert not nodes.errors
    assert desc["status"] == "SUCCEEDED", desc
    mission = mission_of(stack, desc["executionArn"])
    shards = stack.services.store.list_shards(mission.mission_id)
    counts = progress_of(shards, stack.services.store.list_units(mission.mission_id))
    assert (mission.status, mission.shards_done, mission.shards_failed) == ("SUCCEEDED", 12, 0)
    assert (counts.done, counts.failed) == (12, 0)
    assert len({s.result_key for s in shards if s.status is ShardStatus.DONE}) == 12
    assert FAULTS.injected["conflict"] > 0 and FAULTS.injected["throttle"] > 0


def _contended_failures(stack: LocalStack, arn: str) -> list[dict[str, Any]]:
    history = stack.services.sfn.get_execution_history(executionArn=arn, maxResults=1000)
    return [
        e["taskFailedEventDetails"]
        for e in history["events"]
        if e["type"] == "TaskFailed"
        and e["taskFailedEventDetails"].get("error") == StoreContended.error_name
    ]


def test_a_step_refused_as_contended_through_every_retry_is_retried_by_the_state_machine(
    stack: LocalStack,
) -> None:
    """Every write conflicts until PlanMission has failed once as ``Store.Contended``; the
    state machine's Retry runs it again, and the mission ends SUCCEEDED, not in
    NotifyPlanningError."""
    noop_profile(stack, shards=4, maxNodes=2)
    _upload(stack, "incoming/contended-plan.txt")
    FAULTS.configure(conflict=1.0, seed=5)
    try:
        with NodeSim(stack.services) as nodes:
            arn = manual(stack, "incoming/contended-plan.txt")
            [failure] = wait_for(
                lambda: _contended_failures(stack, arn), 60, "PlanMission to fail as contended"
            )
            FAULTS.reset()
            desc = wait_execution(stack, arn, timeout=120)
    finally:
        FAULTS.reset()
    assert not nodes.errors
    assert desc["status"] == "SUCCEEDED", desc
    assert "TransactionConflict" in failure["cause"]
    mission = mission_of(stack, arn)
    assert (mission.status, mission.shards_done, mission.shards_failed) == ("SUCCEEDED", 4, 0)
