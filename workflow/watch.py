"""node_watch: react to EC2 and Step Functions events so no unit waits and no node lingers.

* Spot interruption warning for one of our nodes → record the interruption on its unit and
  fail the attempt's token with ``Spot.Interrupted`` at once (the next attempt may be On-Demand).
* Instance stopped/terminated while its attempt is still current and unreported → ``Node.Lost``.
* Execution ABORTED/FAILED/TIMED_OUT → terminate every instance of the mission; ABORTED (a
  ``lighthpc cancel``) ends the mission CANCELLED with its DONE shards kept
  (``workflow.cancel``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from workflow.attempt import UnitAttempt
from workflow.cancel import settle_cancelled
from workflow.errors import MissionNotFound, NodeLost, SpotInterrupted, WatchInvalidEvent
from workflow.params import describe_validation_error
from workflow.ports import Ports
from workflow.states import FAILED_EXECUTION, ExecutionStatus, MissionStatus, UnitStatus

SPOT_WARNING = "EC2 Spot Instance Interruption Warning"
STATE_CHANGE = "EC2 Instance State-change Notification"
EXECUTION_CHANGE = "Step Functions Execution Status Change"
GONE_STATES = frozenset({"shutting-down", "terminated", "stopping", "stopped"})
ENDED_EXECUTION = FAILED_EXECUTION
_OPEN_UNIT = frozenset({UnitStatus.LAUNCHING, UnitStatus.RUNNING})


class _Detail(BaseModel):
    """The fields node_watch reads from an event's ``detail``; the rest is AWS's to add."""

    model_config = ConfigDict(extra="ignore", frozen=True)


class _InstanceDetail(_Detail):
    instance_id: str = Field(alias="instance-id", pattern=r"^i-[0-9a-zA-Z]{1,64}$")
    state: str | None = Field(default=None, max_length=32)


class _ExecutionDetail(_Detail):
    execution_arn: str = Field(alias="executionArn", min_length=1, max_length=2048)
    status: str = Field(max_length=32)


_DETAIL_OF: dict[str, type[_Detail]] = {
    SPOT_WARNING: _InstanceDetail,
    STATE_CHANGE: _InstanceDetail,
    EXECUTION_CHANGE: _ExecutionDetail,
}


def parse_event(event: object) -> tuple[str, _Detail] | None:
    """The event's kind and typed detail; None for a kind node_watch does not handle.

    A handled kind with a malformed detail is ``Watch.InvalidEvent``: the rules only route
    these kinds here, so a bad shape is a bug or a forgery worth a dead letter, not a skip.
    """
    if not isinstance(event, Mapping):
        raise WatchInvalidEvent(f"event must be a JSON object, got {type(event).__name__}")
    kind = event.get("detail-type")
    model = _DETAIL_OF.get(kind) if isinstance(kind, str) else None
    if model is None:
        return None
    try:
        return str(kind), model.model_validate(event.get("detail"))
    except ValidationError as exc:
        raise WatchInvalidEvent(describe_validation_error(exc, "detail")) from exc


def handle_event(event: object, svc: Ports) -> dict[str, Any]:
    parsed = parse_event(event)
    if parsed is None:
        kind = event.get("detail-type") if isinstance(event, Mapping) else None
        return {"action": "ignored", "reason": f"event {kind!r}"}
    kind, detail = parsed
    if isinstance(detail, _InstanceDetail):
        return _on_instance(svc, kind, detail)
    if isinstance(detail, _ExecutionDetail) and detail.status in ENDED_EXECUTION:
        return on_execution_ended(svc, detail.execution_arn, detail.status)
    return {"action": "ignored", "reason": f"{kind}: nothing ended"}


def _on_instance(svc: Ports, kind: str, detail: _InstanceDetail) -> dict[str, Any]:
    if kind == SPOT_WARNING:
        return on_node_gone(svc, detail.instance_id, interrupted=True)
    if detail.state in GONE_STATES:
        return on_node_gone(svc, detail.instance_id, interrupted=False)
    return {"action": "ignored", "reason": f"state {detail.state}"}


def on_node_gone(svc: Ports, instance_id: str, *, interrupted: bool) -> dict[str, Any]:
    ref = svc.compute.node_ref(instance_id)
    if ref is None:
        return {"action": "ignored", "reason": "not a lightHPC node"}
    store = svc.store
    attempt = UnitAttempt(store, ref.mission_id, ref.unit_id, ref.attempt)
    if interrupted:
        attempt.note_interruption()
    try:
        unit = store.get_unit(ref.mission_id, ref.unit_id)
    except MissionNotFound:
        return {"action": "ignored", "reason": "unit unknown"}
    if unit.attempt != ref.attempt or unit.status not in _OPEN_UNIT or not unit.task_token:
        return {"action": "ignored", "reason": "attempt already settled or superseded"}
    was_interrupted = interrupted or ref.attempt in unit.interrupted_attempts
    error = SpotInterrupted if was_interrupted else NodeLost
    settled = attempt.interrupt() if was_interrupted else attempt.lose()
    if not settled:
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
    if status == ExecutionStatus.ABORTED:
        settle_cancelled(svc, mission_id)
    else:
        svc.store.update_mission(mission_id, {"status": MissionStatus.FAILED.value})
    return {"action": "terminated", "missionId": mission_id, "instances": instances}
