"""A unit reported done is checked (issue 12 §6): an early success relaunches the open shards.

The real ASL and handlers on the embedded cloud; the simulated node of attempt 1 commits
half of its unit's shards, then marks the unit SUCCEEDED and sends SendTaskSuccess anyway.
"""

from __future__ import annotations

import json

from localcloud.stack import LocalStack
from tests.functional.conftest import start_manual, wait_execution
from tests.functional.simnode import Attempt, NodeSim
from workflow.keys import final_result_key
from workflow.launching import MAX_EARLY_SUCCESSES
from workflow.states import ShardStatus

SAMPLE = "".join(f"item-{i}\n" for i in range(60)).encode()
KEY = "incoming/early.txt"


class EarlyReporters(NodeSim):
    """Attempts up to ``early_until`` report success with half of their shards still open."""

    def __init__(self, *args: object, early_until: int, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.early_until = early_until

    def _attempt(self, a: Attempt) -> None:
        if a.attempt > self.early_until:
            super()._attempt(a)
            return
        store = self.svc.store
        unit = store.get_unit(a.mission_id, a.unit_id)
        if unit.attempt != a.attempt or not unit.task_token:
            return
        a.token = unit.task_token
        self.attempts.append(a)
        protocol = a.protocol(store)
        shards = protocol.shards_to_run(unit)
        for s in shards[: len(shards) // 2]:
            self.run_shard(a, s.shard_id, s.end - s.start)
        if shards:
            protocol.claim(shards[-1].shard_id)  # one left RUNNING, the rest QUEUED
        protocol.succeed()
        self.svc.tokens.report_success(a.token, {"shards": len(shards)})
        self._terminate(a)


def _start(stack: LocalStack) -> str:
    stack.services.s3.put_object(Bucket=stack.settings.source_bucket, Key=KEY, Body=SAMPLE)
    params = {"workload": "noop", "shards": 6, "maxNodes": 2, "heartbeatSeconds": 20}
    return start_manual(
        stack, {"input": {"bucket": stack.settings.source_bucket, "key": KEY}, "params": params}
    )


def test_an_early_success_relaunches_only_the_open_shards_and_counts_each_once(
    stack: LocalStack,
) -> None:
    with EarlyReporters(stack.services, early_until=1) as nodes:
        desc = wait_execution(stack, _start(stack), timeout=90)
    assert not nodes.errors
    assert desc["status"] == "SUCCEEDED", desc
    mission_id = json.loads(desc["output"])["missionId"]
    mission = stack.services.store.get_mission(mission_id)
    assert (mission.status, mission.shards_done, mission.shards_failed) == ("SUCCEEDED", 6, 0)
    shards = stack.services.store.list_shards(mission_id)
    assert all(s.status is ShardStatus.DONE for s in shards)
    by_attempt = {}
    for a in nodes.attempts:
        by_attempt.setdefault(a.attempt, []).extend(a.shards_run)
    assert sorted(by_attempt) == [1, 2]
    assert sorted(by_attempt[1] + by_attempt[2]) == sorted(s.shard_id for s in shards)
    assert {s.shard_id: s.attempt for s in shards if s.shard_id in by_attempt[2]} == {
        sid: 2 for sid in by_attempt[2]
    }
    result = stack.services.s3.get_object(
        Bucket=stack.settings.result_bucket, Key=final_result_key(mission_id, ".json")
    )
    assert json.loads(result["Body"].read()) == {"items": 60, "shards": 6}


def test_a_unit_always_reported_early_ends_failed_after_a_bounded_number_of_relaunches(
    stack: LocalStack,
) -> None:
    with EarlyReporters(stack.services, early_until=99) as nodes:
        desc = wait_execution(stack, _start(stack), timeout=120)
    assert not nodes.errors
    launches: dict[str, set[int]] = {}
    for a in nodes.attempts:
        launches.setdefault(a.unit_id, set()).add(a.attempt)
    assert launches == {u: set(range(1, MAX_EARLY_SUCCESSES + 2)) for u in launches}
    assert len(launches) == 2
    assert (desc["status"], desc["error"]) == ("FAILED", "Mission.TooManyFailures")
    [mission] = stack.services.store.scan_missions()
    assert mission.shards_done + mission.shards_failed == 6
    assert mission.shards_failed > 0
    assert mission.failed_shards is not None
    assert all("reported done" in f.error for f in mission.failed_shards)
