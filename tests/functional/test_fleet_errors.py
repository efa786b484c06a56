"""CreateFleet ``Errors[]`` (AWS's answer when it cannot or may not launch) through the real
ASL, the real launch handler and the EC2 adapter; nodes simulated. moto never answers so:
``localcloud.fleet_errors`` makes chosen calls do it."""

from __future__ import annotations

from typing import Any

from localcloud.fleet_errors import INSUFFICIENT_CAPACITY, MAX_SPOT_COUNT, UNAUTHORIZED, FleetErrors
from localcloud.stack import LocalStack
from tests.functional.conftest import start_manual, wait_execution
from tests.functional.simnode import NodeSim
from workflow.states import Capacity

SAMPLE = "".join(f"item-{i}\n" for i in range(8)).encode()
KEY = "incoming/fleet-errors.txt"


def _run_one_unit(stack: LocalStack, **params: Any) -> dict[str, Any]:
    stack.services.s3.put_object(Bucket=stack.settings.source_bucket, Key=KEY, Body=SAMPLE)
    arn = start_manual(
        stack,
        {
            "input": {"bucket": stack.settings.source_bucket, "key": KEY},
            "params": {"workload": "noop", "shards": 2, "maxNodes": 1, **params},
        },
    )
    return wait_execution(stack, arn, timeout=90)


def _unit(stack: LocalStack) -> Any:
    store = stack.services.store
    mission_id = store.mission_for_execution(_last_arn(stack))
    assert mission_id is not None
    return store.get_unit(mission_id, "u0000")


def _last_arn(stack: LocalStack) -> str:
    resp = stack.services.sfn.list_executions(stateMachineArn=stack.state_machine_arn)
    return str(resp["executions"][0]["executionArn"])


def test_a_spot_refusal_is_a_capacity_error_and_is_retried(stack: LocalStack) -> None:
    with FleetErrors().fail_next([MAX_SPOT_COUNT]) as fleet, NodeSim(stack.services):
        desc = _run_one_unit(stack)
    assert fleet.failed == [MAX_SPOT_COUNT]
    assert desc["status"] == "SUCCEEDED", desc
    unit = _unit(stack)
    assert (unit.launches, unit.capacity) == (2, Capacity.SPOT)  # retried, still Spot


def test_after_repeated_spot_refusals_the_unit_launches_on_demand(stack: LocalStack) -> None:
    """Issue 12 §4: Spot refused twice (the default budget) → the third launch is
    On-Demand, as after ``spotAttempts`` interruptions; one more refusal would be spent for
    nothing, since a region short of Spot stays short for minutes."""
    refusals = [INSUFFICIENT_CAPACITY, INSUFFICIENT_CAPACITY]
    with FleetErrors().fail_next(refusals) as fleet, NodeSim(stack.services):
        desc = _run_one_unit(stack, spotAttempts=8)
    assert fleet.failed == refusals
    assert desc["status"] == "SUCCEEDED", desc
    assert _unit(stack).capacity == Capacity.ON_DEMAND


def test_a_denied_launch_is_named_and_not_retried(stack: LocalStack) -> None:
    with FleetErrors().fail_next([UNAUTHORIZED] * 8) as fleet, NodeSim(stack.services):
        desc = _run_one_unit(stack)
    del desc
    unit = stack.services.store.get_unit(_unit(stack).mission_id, "u0000")
    item = stack.services.ddb.get_item(
        TableName=stack.settings.trans_table,
        Key={"missionId": {"S": unit.mission_id}, "shardId": {"S": "unit#u0000"}},
    )["Item"]
    assert item["error"]["S"].startswith("Node.LaunchDenied"), item["error"]
    assert fleet.failed == [UNAUTHORIZED]  # no retry spent on a permission problem
