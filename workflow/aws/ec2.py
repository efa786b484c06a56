"""Launching one node per work-unit attempt with EC2 Fleet ``instant``.

Tags carry only missionId/unitId/attempt (EC2 tag values are limited to 256 characters; the
task token stays in DynamoDB). Spot uses price-capacity-optimized across several instance
types; On-Demand is chosen by the caller after ``spotAttempts`` interruptions.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError

from workflow.errors import NodeCapacity
from workflow.states import Capacity

TAG_MISSION = "lighthpc:missionId"
TAG_UNIT = "lighthpc:unitId"
TAG_ATTEMPT = "lighthpc:attempt"

# Errors that mean "no capacity / throttled right now": Step Functions retries them with back-off.
_TRANSIENT = {
    "InsufficientInstanceCapacity",
    "InsufficientCapacity",
    "SpotMaxPriceTooLow",
    "MaxSpotInstanceCountExceeded",
    "RequestLimitExceeded",
    "Unavailable",
    "InternalError",
    "UnfulfillableCapacity",
}


@dataclass(frozen=True)
class LaunchRequest:
    mission_id: str
    unit_id: str
    attempt: int
    capacity: Capacity
    instance_types: Sequence[str]
    launch_template: str
    subnet_ids: Sequence[str] = ()


@dataclass(frozen=True)
class Launched:
    instance_id: str
    instance_type: str | None
    capacity: Capacity


def node_tags(mission_id: str, unit_id: str, attempt: int) -> list[dict[str, str]]:
    return [
        {"Key": TAG_MISSION, "Value": mission_id},
        {"Key": TAG_UNIT, "Value": unit_id},
        {"Key": TAG_ATTEMPT, "Value": str(attempt)},
    ]


def fleet_request(req: LaunchRequest) -> dict[str, Any]:
    """The CreateFleet(instant) request for one node."""
    overrides: list[dict[str, Any]] = []
    for itype in req.instance_types:
        if req.subnet_ids:
            overrides.extend({"InstanceType": itype, "SubnetId": s} for s in req.subnet_ids)
        else:
            overrides.append({"InstanceType": itype})
    return {
        "Type": "instant",
        "LaunchTemplateConfigs": [
            {
                "LaunchTemplateSpecification": {
                    "LaunchTemplateName": req.launch_template,
                    "Version": "$Latest",
                },
                "Overrides": overrides,
            }
        ],
        "TargetCapacitySpecification": {
            "TotalTargetCapacity": 1,
            "DefaultTargetCapacityType": req.capacity,
            "SpotTargetCapacity": 1 if req.capacity == Capacity.SPOT else 0,
            "OnDemandTargetCapacity": 1 if req.capacity == Capacity.ON_DEMAND else 0,
        },
        "SpotOptions": {"AllocationStrategy": "price-capacity-optimized"},
        "OnDemandOptions": {"AllocationStrategy": "lowest-price"},
        "TagSpecifications": [
            {
                "ResourceType": "instance",
                "Tags": node_tags(req.mission_id, req.unit_id, req.attempt),
            }
        ],
    }


def launch_node(ec2: Any, req: LaunchRequest) -> Launched:
    """Launch exactly one instance or raise ``NodeCapacity`` (transient) / ``ClientError``."""
    try:
        resp = ec2.create_fleet(**fleet_request(req))
    except ClientError as exc:
        code = exc.response.get("Error", {}).get("Code", "")
        if code in _TRANSIENT:
            raise NodeCapacity(f"EC2 could not launch a node now: {code}") from exc
        raise
    for group in resp.get("Instances", []):
        ids = group.get("InstanceIds") or []
        if ids:
            return Launched(
                instance_id=ids[0],
                instance_type=group.get("InstanceType"),
                capacity=req.capacity,
            )
    errors = "; ".join(
        f"{e.get('ErrorCode')}: {e.get('ErrorMessage')}" for e in resp.get("Errors", [])
    )
    raise NodeCapacity(f"EC2 Fleet launched no instance ({errors or 'no reason given'})")


def terminate(ec2: Any, instance_ids: Sequence[str]) -> None:
    if instance_ids:
        ec2.terminate_instances(InstanceIds=list(instance_ids))


def mission_instances(ec2: Any, mission_id: str) -> list[str]:
    """Instances of a mission that are not yet terminated."""
    paginator = ec2.get_paginator("describe_instances")
    out: list[str] = []
    for page in paginator.paginate(
        Filters=[
            {"Name": f"tag:{TAG_MISSION}", "Values": [mission_id]},
            {
                "Name": "instance-state-name",
                "Values": ["pending", "running", "stopping", "stopped"],
            },
        ]
    ):
        for reservation in page.get("Reservations", []):
            out.extend(i["InstanceId"] for i in reservation.get("Instances", []))
    return out


def instance_tags(ec2: Any, instance_id: str) -> dict[str, str]:
    resp = ec2.describe_tags(Filters=[{"Name": "resource-id", "Values": [instance_id]}])
    return {t["Key"]: t["Value"] for t in resp.get("Tags", [])}
