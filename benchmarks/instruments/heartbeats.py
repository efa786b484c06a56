"""``HeartbeatTimeouts``: the task tokens whose heartbeat wait the interpreter gave up on.

moto's callback task waits for a heartbeat or an outcome
(``StateTaskServiceCallback._wait_for_task_token_heartbeat``); when the wait runs out it
returns ``HeartbeatTimedOut``, which the task turns into the ``TaskTimedOut`` history event
named ``States.HeartbeatTimeout`` (moto_compat fix ``heartbeat_timeout_error``). The
Distributed Map children's histories are discarded (``history.ChildHistory``), so the
decision is recorded where it is taken, with the token it was taken for: a token is one
``LaunchNode`` attempt, which a caller maps to its unit and attempt from the launch payload.
"""

from __future__ import annotations

import importlib
import threading
import time
from typing import Any

_CALLBACK_TASK_MODULE = (
    "moto.stepfunctions.parser.asl.component.state.exec.state_task.service."
    "state_task_service_callback"
)
_CALLBACK_MODULE = "moto.stepfunctions.parser.asl.eval.callback.callback"


class HeartbeatTimeouts:
    """Records ``(task token, monotonic time)`` of every heartbeat expiry while entered."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._expired: list[tuple[str, float]] = []
        self._undo: Any = None

    def __enter__(self) -> HeartbeatTimeouts:
        task_cls = importlib.import_module(_CALLBACK_TASK_MODULE).StateTaskServiceCallback
        timed_out = importlib.import_module(_CALLBACK_MODULE).HeartbeatTimedOut
        original = task_cls._wait_for_task_token_heartbeat
        recorder = self

        def _wait_for_task_token_heartbeat(
            task: Any, env: Any, callback_endpoint: Any, heartbeat_endpoint: Any
        ) -> Any:
            outcome = original(task, env, callback_endpoint, heartbeat_endpoint)
            if isinstance(outcome, timed_out):
                with recorder._lock:
                    recorder._expired.append((str(callback_endpoint.callback_id), time.monotonic()))
            return outcome

        task_cls._wait_for_task_token_heartbeat = _wait_for_task_token_heartbeat
        self._undo = lambda: setattr(task_cls, "_wait_for_task_token_heartbeat", original)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._undo is not None:
            self._undo()
            self._undo = None

    def expired(self) -> list[tuple[str, float]]:
        with self._lock:
            return list(self._expired)
