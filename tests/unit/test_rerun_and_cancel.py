"""Rerun planning and merging, and the cancel's settlement, on the in-memory ports."""

from __future__ import annotations

from typing import Any

import pytest

from tests.fakes import FakeCloud
from tests.unit.test_use_cases_on_fakes import ARN, KEY, commit, launch, result_of, run_node, start
from workflow.aggregation import aggregate_mission
from workflow.attempt import UnitAttempt
from workflow.cancel import CANCELLED_CAUSE
from workflow.errors import MissionInvalidInput
from workflow.launching import record_unit_failure
from workflow.planning import plan_mission
from workflow.request import SampleRef, parse_execution_input
from workflow.states import MissionStatus, ShardStatus
from workflow.watch import EXECUTION_CHANGE, handle_event

RERUN_ARN = ARN.replace(":first", ":rerun")


def _failed_mission(cloud: FakeCloud) -> str:
    """6 items in 3 shards on 3 units: u0001's shard fails, the others are DONE."""
    mission_id = start(cloud, shards=3, maxNodes=3)
    for unit_id in ("u0000", "u0001", "u0002"):
        launch(cloud, mission_id, unit_id, 1)
        if unit_id != "u0001":
            run_node(cloud, mission_id, unit_id, 1)
    record_unit_failure(
        {"missionId": mission_id, "unitId": "u0001", "error": {"Error": "Shard.Failed"}},
        cloud.ports,
    )
    assert aggregate_mission(mission_id, cloud.ports).status is MissionStatus.FAILED
    return mission_id


def _rerun_event(cloud: FakeCloud, old: str, **override: Any) -> dict[str, Any]:
    record = cloud.store.get_mission(old)
    return {
        "input": {"bucket": record.sample.bucket, "key": KEY, "versionId": "1"},
        "params": {**record.params, **override},
        "rerunOf": old,
    }


def test_a_rerun_plans_only_the_failed_shards_and_its_result_is_a_clean_runs() -> None:
    cloud = FakeCloud()
    old = _failed_mission(cloud)
    plan = plan_mission(_rerun_event(cloud, old), RERUN_ARN, cloud.ports)
    assert (plan.shards, plan.units) == (1, 1)
    [shard] = cloud.store.list_shards(plan.mission_id)
    assert (shard.shard_id, shard.start, shard.end) == ("s000001", 2, 4)
    assert cloud.store.get_mission(plan.mission_id).extra["rerunOf"] == old
    assert cloud.store.get_mission(old).extra["rerunId"] == plan.mission_id
    launch(cloud, plan.mission_id, "u0000", 1)
    run_node(cloud, plan.mission_id, "u0000", 1)
    merged = aggregate_mission(plan.mission_id, cloud.ports)
    assert (merged.status, merged.shards, merged.done) == (MissionStatus.SUCCEEDED, 1, 1)

    clean = FakeCloud()
    whole = start(clean, shards=3, maxNodes=3)
    for unit_id in ("u0000", "u0001", "u0002"):
        launch(clean, whole, unit_id, 1)
        run_node(clean, whole, unit_id, 1)
    expected = result_of(clean, aggregate_mission(whole, clean.ports).result_uri)
    assert result_of(cloud, merged.result_uri) == expected == {"items": 6, "shards": 3}


@pytest.mark.parametrize(
    ("override", "why"),
    [({"shards": 2}, "params must be"), ({}, "no failed shard")],
)
def test_a_rerun_that_is_not_one_is_refused_and_writes_nothing(
    override: dict[str, Any], why: str
) -> None:
    cloud = FakeCloud()
    old = _failed_mission(cloud) if override else start(cloud, shards=1, maxNodes=1)
    if not override:
        launch(cloud, old, "u0000", 1)
        run_node(cloud, old, "u0000", 1)
        aggregate_mission(old, cloud.ports)
    before = set(cloud.store.missions)
    with pytest.raises(MissionInvalidInput, match=why):
        plan_mission(_rerun_event(cloud, old, **override), RERUN_ARN, cloud.ports)
    assert set(cloud.store.missions) == before
    assert "rerunId" not in cloud.store.get_mission(old).extra


def test_a_rerun_of_a_running_mission_is_refused() -> None:
    cloud = FakeCloud()
    old = start(cloud, shards=2, maxNodes=1)
    with pytest.raises(MissionInvalidInput, match="rerun a finished mission"):
        plan_mission(_rerun_event(cloud, old), RERUN_ARN, cloud.ports)


def test_a_cancel_keeps_done_shards_and_fails_the_open_ones() -> None:
    cloud = FakeCloud()
    mission_id = start(cloud, shards=3, maxNodes=1)
    launch(cloud, mission_id, "u0000", 1)
    protocol = UnitAttempt(cloud.store, mission_id, "u0000", 1)
    assert protocol.start("i-u0000-1") and protocol.claim("s000000")
    assert commit(cloud, mission_id, "s000000", 1)
    assert protocol.claim("s000001")  # running when the execution is stopped
    event = {"detail-type": EXECUTION_CHANGE, "detail": {"status": "ABORTED", "executionArn": ARN}}
    handle_event(event, cloud.ports)
    mission = cloud.store.get_mission(mission_id)
    assert (mission.status, mission.shards_done, mission.shards_failed) == (
        MissionStatus.CANCELLED,
        1,
        2,
    )
    shards = {s.shard_id: s for s in cloud.store.list_shards(mission_id)}
    assert shards["s000000"].status is ShardStatus.DONE and shards["s000000"].result_key
    assert {shards[s].status for s in ("s000001", "s000002")} == {ShardStatus.FAILED}
    assert shards["s000001"].error == CANCELLED_CAUSE
    assert not commit(cloud, mission_id, "s000001", 1)  # a late commit is refused


def test_rerun_of_joins_the_dedupe_key_only_when_given_and_must_be_a_short_string() -> None:
    base = {"input": {"bucket": "b", "key": "k"}, "params": {"shards": 2}}
    plain = parse_execution_input(base)
    rerun = parse_execution_input({**base, "rerunOf": "m-0123456789abcdef"})
    sample = SampleRef("b", "k", etag="e", version_id="1")
    assert rerun.rerun_of == "m-0123456789abcdef" and plain.rerun_of is None
    assert plain.dedupe_key(sample) != rerun.dedupe_key(sample)
    assert plain.dedupe_key(sample) == parse_execution_input(dict(base)).dedupe_key(sample)
    for bad in (7, "", "m" * 65):
        with pytest.raises(MissionInvalidInput, match="rerunOf"):
            parse_execution_input({**base, "rerunOf": bad})
