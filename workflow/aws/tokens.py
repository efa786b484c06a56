"""Task-token reports that tolerate being late: ``workflow.ports.TaskReporter`` on Step Functions.

A token whose task already ended (superseded attempt, heartbeat expiry, aborted execution)
answers ``TaskTimedOut``/``InvalidToken``/``TaskDoesNotExist``: that is expected, not an error,
and the call returns False. Any other ``ClientError`` (throttling…) propagates: the caller
decides whether to retry.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from botocore.exceptions import ClientError

GONE = frozenset({"TaskTimedOut", "InvalidToken", "TaskDoesNotExist"})
MAX_CAUSE = 32_000


def _gone(exc: ClientError) -> bool:
    return exc.response.get("Error", {}).get("Code", "") in GONE


class StepFunctionsTaskReporter:
    def __init__(self, client: Any) -> None:
        self._sfn = client

    def report_success(self, token: str, output: Mapping[str, Any]) -> bool:
        """Send success; False if the token is no longer live."""
        try:
            self._sfn.send_task_success(taskToken=token, output=json.dumps(output, default=str))
        except ClientError as exc:
            if _gone(exc):
                return False
            raise
        return True

    def report_failure(self, token: str, error: str, cause: str) -> bool:
        """Send failure with a named error; False if the token is no longer live."""
        try:
            self._sfn.send_task_failure(
                taskToken=token, error=error[:256], cause=cause[-MAX_CAUSE:]
            )
        except ClientError as exc:
            if _gone(exc):
                return False
            raise
        return True

    def heartbeat(self, token: str) -> bool:
        """Send a heartbeat; False means the attempt was superseded: stop work, do not report."""
        try:
            self._sfn.send_task_heartbeat(taskToken=token)
        except ClientError as exc:
            if _gone(exc):
                return False
            raise
        return True
