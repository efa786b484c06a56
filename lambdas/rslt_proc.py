"""RsltProc: aggregate a mission's shard results and decide its outcome."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from lambdas.runtime import contention_named, logger, metrics, services
from workflow.aggregation import aggregate_mission
from workflow.handler_events import parse_aggregate

_LOGGED = ("status", "shards", "done", "failed", "retries", "interruptions", "result", "cost")


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
@contention_named
def handler(event: Any, context: LambdaContext) -> dict[str, Any]:
    parsed = parse_aggregate(event)
    mission_id = parsed.mission_id
    logger.append_keys(missionId=mission_id)
    summary = aggregate_mission(mission_id, services().ports, parsed.start_timestamp)
    output = summary.as_output()
    logger.info("mission aggregated", extra={k: output[k] for k in _LOGGED})
    metrics.add_metric(name="ShardsDone", unit=MetricUnit.Count, value=summary.done)
    metrics.add_metric(name="ShardsFailed", unit=MetricUnit.Count, value=summary.failed)
    return summary.as_output()
