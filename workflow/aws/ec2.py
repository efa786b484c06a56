"""Launching one node per work-unit attempt with EC2 Fleet ``instant``.

Tags carry only missionId/unitId/attempt (EC2 tag values are limited to 256 characters; the
task token stays in DynamoDB). Spot uses price-capacity-optimized across several instance
types; On-Demand is chosen by the caller after ``spotAttempts`` interruptions.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from botocore.exceptions import ClientError

from workflow.errors import NodeCapacity, NodeLaunchDenied, NodeTerminateFailed
from workflow.ports import Launched, LaunchRequest, NodeRef
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
# Errors that mean "this launch may never be made": a permission to fix, not a retry.
_DENIED = {"UnauthorizedOperation", "AuthFailure", "AccessDenied", "AccessDeniedException"}


def launch_error(codes: Sequence[str], detail: str) -> NodeCapacity | NodeLaunchDenied:
    """The named error for EC2's refusal: a permission error when every code is one (a
    capacity answer among them means another override might launch on a retry)."""
    if codes and all(code in _DENIED for code in codes):
        return NodeLaunchDenied(f"EC2 refused to launch a node: {detail}")
    return NodeCapacity(f"EC2 could not launch a node now: {detail}")


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


class Ec2Launcher:
    """``workflow.ports.ComputeLauncher`` on EC2 Fleet ``instant``."""

    def __init__(self, client: Any) -> None:
        self._ec2 = client

    def launch(self, request: LaunchRequest) -> Launched:
        """Launch exactly one instance or raise ``NodeCapacity`` (transient),
        ``NodeLaunchDenied`` (permissions) or ``ClientError``."""
        try:
            resp = self._ec2.create_fleet(**fleet_request(request))
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            if code in _TRANSIENT or code in _DENIED:
                raise launch_error([code], code) from exc
            raise
        for group in resp.get("Instances", []):
            ids = group.get("InstanceIds") or []
            if ids:
                return Launched(
                    instance_id=ids[0],
                    instance_type=group.get("InstanceType"),
                    capacity=request.capacity,
                )
        errors = resp.get("Errors", [])
        detail = "; ".join(f"{e.get('ErrorCode')}: {e.get('ErrorMessage')}" for e in errors)
        raise launch_error(
            [str(e.get("ErrorCode")) for e in errors],
            f"EC2 Fleet launched no instance ({detail or 'no reason given'})",
        )

    def terminate(self, instance_ids: Sequence[str]) -> None:
        if not instance_ids:
            return
        try:
            self._ec2.terminate_instances(InstanceIds=list(instance_ids))
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            raise NodeTerminateFailed(f"terminating {', '.join(instance_ids)}: {code}") from exc

    def mission_instances(self, mission_id: str) -> list[str]:
        """Instances of a mission that are not yet terminated."""
        paginator = self._ec2.get_paginator("describe_instances")
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

    def instance_tags(self, instance_id: str) -> dict[str, str]:
        resp = self._ec2.describe_tags(Filters=[{"Name": "resource-id", "Values": [instance_id]}])
        return {t["Key"]: t["Value"] for t in resp.get("Tags", [])}

    def node_ref(self, instance_id: str) -> NodeRef | None:
        """Our tags on the instance, or None when it is not one of our nodes."""
        tags = self.instance_tags(instance_id)
        if TAG_MISSION not in tags or TAG_UNIT not in tags or TAG_ATTEMPT not in tags:
            return None
        return NodeRef(instance_id, tags[TAG_MISSION], tags[TAG_UNIT], int(tags[TAG_ATTEMPT]))
