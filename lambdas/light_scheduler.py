"""lightScheduler: ``plan`` a mission, ``launch`` one work-unit attempt, record ``unitFailed``."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from lambdas.runtime import contention_named, logger, metrics, services
from workflow.errors import MissionInvalidInput, MissionOverBudget
from workflow.handler_events import event_action, parse_plan, parse_unit_failed, parse_verify
from workflow.lambda_room import LambdaRoom
from workflow.launching import LaunchCommand, launch_unit, record_unit_failure, verify_unit
from workflow.planning import plan_mission


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
@contention_named
def handler(event: Any, context: LambdaContext) -> dict[str, Any]:
    """A malformed event is ``Scheduler.InvalidEvent``; a bad mission input (any JSON the
    execution was started with) is ``Mission.InvalidInput``, and a plan that cannot fit its
    ``maxCostUsd`` is ``Mission.OverBudget``: both take the ASL's rejection path."""
    action = event_action(event)
    svc = services().ports
    if action == "plan":
        plan_event = parse_plan(event)
        try:
            plan = plan_mission(
                plan_event.event,
                plan_event.execution_arn,
                svc,
                LambdaRoom.of(context.memory_limit_in_mb),
            )
        except (MissionInvalidInput, MissionOverBudget) as exc:
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
        try:
            result = launch_unit(cmd, svc)
        except MissionOverBudget as exc:  # the Catch fails the unit's open shards with it
            logger.warning("launch refused by the budget", extra={"cause": str(exc)})
            metrics.add_metric(name="LaunchesOverBudget", unit=MetricUnit.Count, value=1)
            raise
        logger.info("node launched", extra=result)
        metrics.add_metric(name="NodesLaunched", unit=MetricUnit.Count, value=1)
        return result
    if action == "verify":
        verify = parse_verify(event)
        logger.append_keys(missionId=verify.mission_id, unitId=verify.unit_id)
        result = verify_unit(verify.as_payload(), svc)
        early = 0 if result["complete"] else 1
        metrics.add_metric(name="UnitsReportedEarly", unit=MetricUnit.Count, value=early)
        return result
    failed = parse_unit_failed(event)
    logger.append_keys(missionId=failed.mission_id, unitId=failed.unit_id)
    result = record_unit_failure(failed.as_payload(), svc)
    logger.error("work unit failed", extra={**result, "error": failed.error})
    metrics.add_metric(name="UnitsFailed", unit=MetricUnit.Count, value=1)
    return result
