"""RsltProc: aggregate a mission's shard results and decide its outcome."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from lambdas.runtime import logger, metrics, services
from workflow.aggregation import aggregate_mission
from workflow.errors import MissionInvalidInput

_LOGGED = ("status", "shards", "done", "failed", "retries", "interruptions", "result", "cost")


def _start_time(value: Any) -> float | None:
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    mission_id = event.get("missionId") if isinstance(event, dict) else None
    if not isinstance(mission_id, str):
        raise MissionInvalidInput("RsltProc needs a missionId")
    logger.append_keys(missionId=mission_id)
    summary = aggregate_mission(
        mission_id, services().ports, _start_time(event.get("executionStartTime"))
    )
    output = summary.as_output()
    logger.info("mission aggregated", extra={k: output[k] for k in _LOGGED})
    metrics.add_metric(name="ShardsDone", unit=MetricUnit.Count, value=summary.done)
    metrics.add_metric(name="ShardsFailed", unit=MetricUnit.Count, value=summary.failed)
    return summary.as_output()
