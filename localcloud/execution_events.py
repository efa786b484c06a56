"""Ended executions → node_watch, as the deployed EventBridge rule delivers them.

On AWS, Step Functions emits "Step Functions Execution Status Change" events and the stack's
rule routes the ended ones (``workflow.watch.ENDED_EXECUTION``) to node_watch. moto emits no
such event, so the local cloud lists the state machine's ended executions and hands
node_watch the same event once per execution (``lighthpc cancel`` relies on it to terminate
the mission's nodes and mark it CANCELLED).
"""

from __future__ import annotations

import json
import logging
import threading
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from workflow.watch import ENDED_EXECUTION, EXECUTION_CHANGE

LOGGER = logging.getLogger(__name__)
POLL_SECONDS = 0.5


def execution_event(arn: str, status: str) -> dict[str, Any]:
    """The event's fields node_watch reads, in EventBridge's shape."""
    return {
        "version": "0",
        "source": "aws.states",
        "detail-type": EXECUTION_CHANGE,
        "resources": [arn],
        "detail": {"executionArn": arn, "status": status},
    }


class EndedExecutionEvents:
    """A thread that delivers each ended execution's event to ``function_name`` once."""

    def __init__(
        self,
        sfn: Any,
        lambda_client: Any,
        state_machine_arn: str,
        function_name: str,
        poll_seconds: float = POLL_SECONDS,
    ) -> None:
        self._sfn = sfn
        self._lambda = lambda_client
        self._machine = state_machine_arn
        self._function = function_name
        self._poll = poll_seconds
        self._delivered: set[str] = set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="execution-events", daemon=True)

    def start(self) -> EndedExecutionEvents:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=10)

    def _run(self) -> None:
        while not self._stop.wait(self._poll):
            try:
                self.deliver_ended()
            except (BotoCoreError, ClientError) as exc:  # delivery is retried next round
                LOGGER.warning("ended-execution events: %s", exc)

    def deliver_ended(self) -> list[str]:
        """Deliver the events of executions that ended since the last call."""
        sent: list[str] = []
        for status in sorted(ENDED_EXECUTION):
            pages = self._sfn.get_paginator("list_executions").paginate(
                stateMachineArn=self._machine, statusFilter=status
            )
            for page in pages:
                for ex in page.get("executions", []):
                    arn = str(ex["executionArn"])
                    if arn in self._delivered:
                        continue
                    self._delivered.add(arn)
                    self._lambda.invoke(
                        FunctionName=self._function,
                        Payload=json.dumps(execution_event(arn, status)).encode(),
                    )
                    sent.append(arn)
        return sent
