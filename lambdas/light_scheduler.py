"""lightScheduler: ``plan`` a mission, ``launch`` one work-unit attempt, record ``unitFailed``."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from lambdas.runtime import logger, metrics, services
from workflow.errors import MissionInvalidInput
from workflow.lambda_room import LambdaRoom
from workflow.launching import LaunchCommand, launch_unit, record_unit_failure, verify_unit
from workflow.planning import plan_mission


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    action = event.get("action") if isinstance(event, dict) else None
    svc = services().ports
    if action == "plan":
        try:
            plan = plan_mission(
                event.get("event"),
                str(event.get("executionArn", "")),
                svc,
                LambdaRoom.of(context.memory_limit_in_mb),
            )
        except MissionInvalidInput as exc:
            logger.warning("mission rejected", extra={"cause": str(exc)})
            metrics.add_metric(name="MissionsRejected", unit=MetricUnit.Count, value=1)
            raise
        logger.append_keys(missionId=plan.mission_id)
        logger.info("mission planned", extra={"units": plan.units, "duplicate": plan.duplicate})
        metrics.add_metric(
            name="MissionsDuplicate" if plan.duplicate else "MissionsPlanned",
            unit=MetricUnit.Count,
            value=1,
        )
        return plan.as_output()
    if action == "launch":
        cmd = LaunchCommand.parse(event)
        logger.append_keys(missionId=cmd.mission_id, unitId=cmd.unit_id, attempt=cmd.attempt)
        result = launch_unit(cmd, svc)
        logger.info("node launched", extra=result)
        metrics.add_metric(name="NodesLaunched", unit=MetricUnit.Count, value=1)
        return result
    if action == "verify":
        logger.append_keys(missionId=event.get("missionId"), unitId=event.get("unitId"))
        result = verify_unit(event, svc)
        early = 0 if result["complete"] else 1
        metrics.add_metric(name="UnitsReportedEarly", unit=MetricUnit.Count, value=early)
        return result
    if action == "unitFailed":
        logger.append_keys(missionId=event.get("missionId"), unitId=event.get("unitId"))
        result = record_unit_failure(event, svc)
        logger.error("work unit failed", extra={**result, "error": event.get("error")})
        metrics.add_metric(name="UnitsFailed", unit=MetricUnit.Count, value=1)
        return result
    raise MissionInvalidInput(f"unknown lightScheduler action {action!r}")
