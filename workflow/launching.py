"""LaunchNode and RecordUnitFailure: one attempt of one work unit.

``launch_unit`` makes the attempt current (storing its task token in DynamoDB), re-queues only
the shards not yet DONE, and starts one node: Spot until the unit has been interrupted
``spotAttempts`` times or EC2 has refused it Spot capacity ``spotCapacityErrors`` times,
then On-Demand.

``verify_unit`` runs after a node's success report: a unit whose shards are not all settled
was reported done too early (a node bug, or a report for a unit it did not finish), and is
treated as a lost node: its open shards are relaunched under a later attempt, never failed.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from workflow.attempt import UnitAttempt, fail_open_shards
from workflow.budget import check_launch
from workflow.errors import MissionInvalidInput, NodeCapacity, NodeLost, NodeTerminateFailed
from workflow.ports import LaunchRequest, Ports
from workflow.states import SETTLED_SHARD, Capacity

# Early success reports one unit may get before its open shards are failed (each one is a
# relaunch: a node that always reports early must not relaunch for ever).
MAX_EARLY_SUCCESSES = 3

LOGGER = logging.getLogger(__name__)


@dataclass(frozen=True)
class LaunchCommand:
    mission_id: str
    unit_id: str
    attempt: int
    task_token: str

    @classmethod
    def parse(cls, payload: Mapping[str, Any]) -> LaunchCommand:
        """``attemptBase`` is the last attempt before a relaunch by ``verify_unit`` (0 at
        first): LaunchNode's RetryCount restarts at 0 there, the attempt number must not."""
        try:
            return cls(
                mission_id=str(payload["missionId"]),
                unit_id=str(payload["unitId"]),
                attempt=int(payload.get("attemptBase", 0)) + int(payload.get("retryCount", 0)) + 1,
                task_token=str(payload["taskToken"]),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise MissionInvalidInput(f"launch payload is missing or malformed: {exc}") from exc


def choose_capacity(
    interruptions: int,
    spot_attempts: int,
    *,
    capacity_refusals: int = 0,
    spot_capacity_errors: int | None = None,
) -> Capacity:
    """Spot until ``spot_attempts`` interruptions happened, or until EC2 refused Spot
    capacity ``spot_capacity_errors`` times (a region short of Spot stays short for minutes:
    retrying Spot would spend the unit's launch budget), then On-Demand."""
    refused = spot_capacity_errors is not None and capacity_refusals >= spot_capacity_errors
    return Capacity.ON_DEMAND if interruptions >= spot_attempts or refused else Capacity.SPOT


def launch_unit(cmd: LaunchCommand, svc: Ports) -> dict[str, Any]:
    store = svc.store
    mission = store.get_mission(cmd.mission_id)
    params = mission.mission_params()
    if params.max_cost_usd is not None:  # one Query of the unit items, none per shard
        check_launch(mission, store.list_units(cmd.mission_id), time.time())
    before = store.get_unit(cmd.mission_id, cmd.unit_id)
    capacity = choose_capacity(
        len(before.interrupted_attempts),
        params.spot_attempts,
        capacity_refusals=before.capacity_refusals,
        spot_capacity_errors=params.spot_capacity_errors,
    )
    attempt, unit, queued = UnitAttempt.begin(
        store,
        cmd.mission_id,
        cmd.unit_id,
        cmd.attempt,
        task_token=cmd.task_token,
        capacity=capacity,
    )
    if not queued:
        # Every shard is already DONE (a previous node finished but its report was lost).
        attempt.succeed()
        svc.tokens.report_success(cmd.task_token, {"unitId": cmd.unit_id, "alreadyDone": True})
        return {"unitId": cmd.unit_id, "attempt": cmd.attempt, "launched": False}
    request = LaunchRequest(
        mission_id=cmd.mission_id,
        unit_id=cmd.unit_id,
        attempt=cmd.attempt,
        capacity=capacity,
        instance_types=params.instance_types,
        launch_template=svc.settings.launch_template,
        subnet_ids=svc.settings.subnet_ids,
    )
    try:
        node = svc.compute.launch(request)
    except NodeCapacity:
        if capacity == Capacity.SPOT:
            attempt.note_capacity_refusals(before.capacity_refusals + 1)
        raise
    if not attempt.note_launch(node.instance_id, node.instance_type):
        _terminate_quietly(svc, node.instance_id)  # superseded while launching: no orphan
    return {
        "unitId": unit.unit_id,
        "attempt": cmd.attempt,
        "instanceId": node.instance_id,
        "capacity": capacity,
        "shards": queued,
    }


def verify_unit(payload: Mapping[str, Any], svc: Ports) -> dict[str, Any]:
    """After LaunchNode succeeded: ``complete`` when every shard of the unit is settled; else
    the reporting attempt is LOST and the state machine relaunches from ``attemptBase`` (the
    attempt protocol re-queues only the open shards). ``Node.Lost`` after
    MAX_EARLY_SUCCESSES early reports: the Catch fails the open shards."""
    try:
        mission_id, unit_id = str(payload["missionId"]), str(payload["unitId"])
        early = int(payload.get("earlySuccesses", 0))
    except (KeyError, TypeError, ValueError) as exc:
        raise MissionInvalidInput(f"verify payload is missing or malformed: {exc}") from exc
    store = svc.store
    unit = store.get_unit(mission_id, unit_id)
    open_shards = [
        s.shard_id for s in store.unit_shards_not_done(unit) if s.status not in SETTLED_SHARD
    ]
    verdict = {"complete": not open_shards, "attemptBase": unit.attempt, "earlySuccesses": early}
    if not open_shards:
        return verdict
    LOGGER.warning(
        "unit %s reported done by attempt %d with %d open shard(s); relaunching them",
        unit_id,
        unit.attempt,
        len(open_shards),
    )
    UnitAttempt(store, mission_id, unit_id, unit.attempt).lose()
    if unit.instance_id:
        _terminate_quietly(svc, unit.instance_id)  # a lost node: no orphan if it still runs
    if early + 1 > MAX_EARLY_SUCCESSES:
        raise NodeLost(
            f"unit {unit_id} was reported done {early + 1} times with shards still open "
            f"(first: {open_shards[0]})"
        )
    return {**verdict, "earlySuccesses": early + 1}


def record_unit_failure(payload: Mapping[str, Any], svc: Ports) -> dict[str, Any]:
    """Mark the unit's unfinished shards FAILED with the cause; terminate its node if any."""
    mission_id = str(payload["missionId"])
    unit_id = str(payload["unitId"])
    error = payload.get("error") or {}
    cause = _cause_text(error)
    store = svc.store
    unit = store.get_unit(mission_id, unit_id)
    failed = fail_open_shards(store, unit, cause)
    UnitAttempt(store, mission_id, unit_id, unit.attempt).fail(cause)
    if unit.instance_id:
        _terminate_quietly(svc, unit.instance_id)
    return {"unitId": unit_id, "failedShards": failed}


def _terminate_quietly(svc: Ports, instance_id: str) -> None:
    """A failed clean-up must not fail the unit: the failure is recorded already, and the node
    ends itself (self-terminate, maximum lifetime, node_watch)."""
    try:
        svc.compute.terminate([instance_id])
    except NodeTerminateFailed:
        LOGGER.exception("could not terminate %s; it ends by itself", instance_id)


def _cause_text(error: Mapping[str, Any]) -> str:
    name = str(error.get("Error", "Unknown"))
    cause = error.get("Cause")
    if isinstance(cause, str):
        try:
            parsed = json.loads(cause)
        except json.JSONDecodeError:
            parsed = None
        if isinstance(parsed, Mapping) and "errorMessage" in parsed:
            cause = parsed["errorMessage"]
    return f"{name}: {cause}" if cause else name
