"""maxCostUsd on the real state machine: a plan over its cap is rejected (notice, nothing
written); a mission whose spend passes its cap mid-way launches no more units and ends with
what it has, its notice saying why."""

from __future__ import annotations

import json
from dataclasses import replace

from localcloud.emulator import EmbeddedCloud
from localcloud.reset import reset
from localcloud.stack import LocalStack
from tests.functional.conftest import notices, wait_execution
from tests.functional.simnode import NodeSim
from tests.functional.test_mission_flow import _upload, manual, mission_of, noop_profile
from workflow.budget import plan_floor, stopped_by_budget
from workflow.cost import PriceList
from workflow.params import MissionParams
from workflow.states import Capacity, ShardStatus, UnitStatus

TYPE = "c6i.large"
NODE_HOUR = 3600.0


def test_a_plan_whose_least_cost_passes_the_cap_is_rejected_and_writes_nothing(
    stack: LocalStack,
) -> None:
    noop_profile(stack, shards=6, maxNodes=3, instanceTypes=[TYPE])
    floor = plan_floor(MissionParams.model_validate({"instanceTypes": [TYPE]}), 6, 3, Capacity.SPOT)
    cap = round(floor / 2, 8)
    _upload(stack, "incoming/over.txt")
    desc = wait_execution(stack, manual(stack, "incoming/over.txt", maxCostUsd=cap))
    assert (desc["status"], desc["error"]) == ("FAILED", "Mission.OverBudget")
    assert f"${floor:.6f}" in desc["cause"] and f"maxCostUsd ${cap:g}" in desc["cause"]
    assert "stackTrace" not in desc["cause"]
    [message] = notices(stack)
    assert "Mission rejected (Mission.OverBudget)" in message and f"${floor:.6f}" in message
    assert list(stack.services.store.scan_missions()) == []
    assert stack.services.ddb.scan(TableName=stack.settings.trans_table)["Count"] == 0
    listed = stack.services.s3.list_objects_v2(Bucket=stack.settings.result_bucket)
    assert listed.get("KeyCount", 0) == 0


def test_once_the_spend_passes_the_cap_no_unit_is_launched_and_the_mission_says_why(
    cloud: EmbeddedCloud, stack: LocalStack
) -> None:
    """One node at a time (the deployment's cap), each billing a node-hour: the first unit
    runs, its bill passes the cap, and the next two launches are refused."""
    capped = reset(cloud, stack, settings=replace(stack.settings, max_concurrent_nodes=1))
    noop_profile(capped, shards=3, maxNodes=3, instanceTypes=[TYPE], maxFailedShardPercent=100)
    floor = plan_floor(MissionParams.model_validate({"instanceTypes": [TYPE]}), 3, 3, Capacity.SPOT)
    hour = PriceList().hourly(TYPE, Capacity.SPOT)
    cap = floor + hour / 2  # the plan fits; one node-hour does not
    _upload(capped, "incoming/budget.txt")
    with NodeSim(capped.services, bill_seconds=NODE_HOUR) as nodes:
        arn = manual(capped, "incoming/budget.txt", maxCostUsd=cap)
        desc = wait_execution(capped, arn)
    assert desc["status"] == "SUCCEEDED", desc  # PARTIAL: within maxFailedShardPercent 100
    assert [a.unit_id for a in nodes.attempts] == ["u0000"]
    mission = mission_of(capped, arn)
    assert (mission.status, mission.shards_done, mission.shards_failed) == ("PARTIAL", 1, 2)
    assert stopped_by_budget(mission) and mission.result is not None
    assert mission.cost is not None and mission.cost > cap
    store = capped.services.store
    shards = {s.unit_id: s for s in store.list_shards(mission.mission_id)}
    assert shards["u0000"].status is ShardStatus.DONE
    for refused in ("u0001", "u0002"):
        assert shards[refused].status is ShardStatus.FAILED
        assert (shards[refused].error or "").startswith("Mission.OverBudget: spend $")
    units = {u.unit_id: u for u in store.list_units(mission.mission_id)}
    assert units["u0001"].status is UnitStatus.FAILED and units["u0001"].instance_id is None
    summary = json.loads(desc["output"])["aggregate"]["summary"]
    assert summary["stoppedBy"] == "budget" and summary["maxCostUsd"] == cap
    [message] = [m for m in notices(capped) if mission.mission_id in m]
    assert "stopped by its budget" in message
    assert "Stopped by its budget: 2 shard(s) not run" in message
    assert f"(maxCostUsd ${cap:g})" in message and "shards/s" in message


def test_a_mission_the_budget_leaves_failed_fails_as_over_budget(
    cloud: EmbeddedCloud, stack: LocalStack
) -> None:
    """With no failure tolerated, the refused launches fail the mission: its execution's
    error names the budget (Retry/Catch and the console match on it), not the failures."""
    capped = reset(cloud, stack, settings=replace(stack.settings, max_concurrent_nodes=1))
    noop_profile(capped, shards=3, maxNodes=3, instanceTypes=[TYPE], maxFailedShardPercent=0)
    floor = plan_floor(MissionParams.model_validate({"instanceTypes": [TYPE]}), 3, 3, Capacity.SPOT)
    cap = floor + PriceList().hourly(TYPE, Capacity.SPOT) / 2
    _upload(capped, "incoming/budget-failed.txt")
    with NodeSim(capped.services, bill_seconds=NODE_HOUR):
        arn = manual(capped, "incoming/budget-failed.txt", maxCostUsd=cap)
        desc = wait_execution(capped, arn)
    assert (desc["status"], desc["error"]) == ("FAILED", "Mission.OverBudget"), desc
    assert "stopped by its budget" in desc["cause"]
    assert mission_of(capped, arn).status == "FAILED"
