"""node_watch: Spot warnings, instance state changes, ended executions (EventBridge)."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from lambdas.runtime import contention_named, logger, services
from workflow.watch import handle_event


@logger.inject_lambda_context(clear_state=True)
@contention_named
def handler(event: Any, context: LambdaContext) -> dict[str, Any]:
    """One event → one domain call; a malformed event raises ``Watch.InvalidEvent``."""
    result = handle_event(event, services().ports)
    kind = event.get("detail-type") if isinstance(event, dict) else None
    logger.info("event handled", extra={"detailType": kind, **result})
    return result
