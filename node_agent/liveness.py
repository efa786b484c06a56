"""Heartbeats on the attempt's task token, so Step Functions knows the node is alive.

Step Functions times the task out after ``heartbeatSeconds`` without a beat; beating every
third of that tolerates two lost beats. A beat answered ``TaskTimedOut``/``InvalidToken``
means the attempt was superseded: the agent stops work and never reports.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Final

from botocore.exceptions import BotoCoreError, ClientError

from node_agent.logs import get_logger
from workflow.ports import TaskReporter

MIN_INTERVAL_SECONDS: Final = 1.0
# The node's boot heartbeater (user data, before the install; docs/architecture.md "Node
# start") beats this often: a third of the smallest heartbeatSeconds the params allow.
BOOT_BEAT_SECONDS: Final = 3.0
log = get_logger("liveness")


def heartbeat_interval(heartbeat_seconds: float) -> float:
    """A third of the task's heartbeat timeout, never below one second."""
    return max(MIN_INTERVAL_SECONDS, heartbeat_seconds / 3.0)


class Heartbeat(threading.Thread):
    """Beats until stopped; calls ``on_superseded`` once when the token is no longer live."""

    def __init__(
        self,
        tokens: TaskReporter,
        token: str,
        interval: float,
        on_superseded: Callable[[], None],
    ) -> None:
        super().__init__(name="heartbeat", daemon=True)
        self._tokens = tokens
        self._token = token
        self.interval = interval
        self._on_superseded = on_superseded
        self._halt = threading.Event()
        self.beats = 0

    def stop(self) -> None:
        self._halt.set()

    def beat(self) -> bool:
        """One heartbeat; False only when the token is gone (transient errors are retried)."""
        try:
            live = self._tokens.heartbeat(self._token)
        except (ClientError, BotoCoreError) as exc:
            log.warning("heartbeat failed, will retry", extra={"error": str(exc)})
            return True
        self.beats += 1
        return live

    def run(self) -> None:
        while True:
            if not self.beat():
                log.warning("task token is no longer live: attempt superseded")
                self._on_superseded()
                return
            if self._halt.wait(self.interval):
                return
