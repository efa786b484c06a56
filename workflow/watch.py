"""node_watch: react to EC2 and Step Functions events so no unit waits and no node lingers.

* Spot interruption warning for one of our nodes → record the interruption on its unit and
  fail the attempt's token with ``Spot.Interrupted`` at once (the next attempt may be On-Demand).
* Instance stopped/terminated while its attempt is still current and unreported → ``Node.Lost``.
* Execution ABORTED/FAILED/TIMED_OUT → terminate every instance of the mission.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from workflow.errors import MissionNotFound, NodeLost, SpotInterrupted
from workflow.ports import Ports
from workflow.states import FAILED_EXECUTION, ExecutionStatus, MissionStatus, UnitStatus

SPOT_WARNING = "EC2 Spot Instance Interruption Warning"
STATE_CHANGE = "EC2 Instance State-change Notification"
EXECUTION_CHANGE = "Step Functions Execution Status Change"
GONE_STATES = frozenset({"shutting-down", "terminated", "stopping", "stopped"})
ENDED_EXECUTION = FAILED_EXECUTION
_OPEN_UNIT = frozenset({UnitStatus.LAUNCHING, UnitStatus.RUNNING})


def handle_event(event: Mapping[str, Any], svc: Ports) -> dict[str, Any]:
    kind = event.get("detail-type")
    detail = event.get("detail") or {}
    if kind == SPOT_WARNING:
        return on_node_gone(svc, str(detail.get("instance-id")), interrupted=True)
    if kind == STATE_CHANGE:
        if detail.get("state") in GONE_STATES:
            return on_node_gone(svc, str(detail.get("instance-id")), interrupted=False)
        return {"action": "ignored", "reason": f"state {detail.get('state')}"}
    if kind == EXECUTION_CHANGE and detail.get("status") in ENDED_EXECUTION:
        return on_execution_ended(svc, str(detail.get("executionArn")), str(detail["status"]))
    return {"action": "ignored", "reason": f"event {kind!r}"}


def on_node_gone(svc: Ports, instance_id: str, *, interrupted: bool) -> dict[str, Any]:
    ref = svc.compute.node_ref(instance_id)
    if ref is None:
        return {"action": "ignored", "reason": "not a lightHPC node"}
    store = svc.store
    if interrupted:
        store.note_interruption(ref.mission_id, ref.unit_id, ref.attempt)
    try:
        unit = store.get_unit(ref.mission_id, ref.unit_id)
    except MissionNotFound:
        return {"action": "ignored", "reason": "unit unknown"}
    if unit.attempt != ref.attempt or unit.status not in _OPEN_UNIT or not unit.task_token:
        return {"action": "ignored", "reason": "attempt already settled or superseded"}
    was_interrupted = interrupted or ref.attempt in unit.interrupted_attempts
    error = SpotInterrupted if was_interrupted else NodeLost
    new_status = UnitStatus.INTERRUPTED if was_interrupted else UnitStatus.LOST
    if not store.set_unit(ref.mission_id, ref.unit_id, ref.attempt, {"status": new_status.value}):
        return {"action": "ignored", "reason": "attempt superseded"}
    reported = svc.tokens.report_failure(
        unit.task_token,
        error.error_name,
        f"node {instance_id} of {ref.mission_id}/{ref.unit_id} attempt {ref.attempt} "
        + ("received a Spot interruption notice" if interrupted else "is gone"),
    )
    return {"action": "failed-token", "error": error.error_name, "reported": reported}


def on_execution_ended(svc: Ports, execution_arn: str, status: str) -> dict[str, Any]:
    mission_id = svc.store.mission_for_execution(execution_arn)
    if mission_id is None:
        return {"action": "ignored", "reason": "no mission for this execution"}
    instances = svc.compute.mission_instances(mission_id)
    svc.compute.terminate(instances)
    final = MissionStatus.ABORTED if status == ExecutionStatus.ABORTED else MissionStatus.FAILED
    svc.store.update_mission(mission_id, {"status": final.value})
    return {"action": "terminated", "missionId": mission_id, "instances": instances}
