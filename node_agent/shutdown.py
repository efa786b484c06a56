"""Why the node is stopping, decided once, visible to every thread.

Three causes end a unit early: an interruption (Spot notice, rebalance recommendation or
SIGTERM: checkpoint, report ``Spot.Interrupted``), the node's maximum lifetime (checkpoint,
report ``Node.Lost``) and supersession (the attempt is no longer current: stop, never
report). Supersession is tracked on its own because it can follow any other cause and
always wins: a superseded node must stay silent.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from enum import StrEnum


class StopCause(StrEnum):
    INTERRUPTED = "interrupted"
    LIFETIME = "lifetime"
    SUPERSEDED = "superseded"


class Shutdown:
    """First cause wins; ``on_stop`` (ask workers to checkpoint) must be idempotent."""

    def __init__(self, on_stop: Callable[[], None] = lambda: None) -> None:
        self._lock = threading.Lock()
        self._event = threading.Event()
        self._superseded = threading.Event()
        self._on_stop = on_stop
        self.cause: StopCause | None = None
        self.detail = ""

    def set_on_stop(self, on_stop: Callable[[], None]) -> None:
        with self._lock:
            self._on_stop = on_stop
            fire = self._event.is_set()
        if fire:
            on_stop()

    def request(self, cause: StopCause, detail: str) -> bool:
        """Record ``cause`` unless one is already set; True when this call decided it."""
        with self._lock:
            if cause is StopCause.SUPERSEDED:
                self._superseded.set()
            first = self.cause is None
            if first:
                self.cause, self.detail = cause, detail
            self._event.set()
            on_stop = self._on_stop
        on_stop()
        return first

    @property
    def stopping(self) -> bool:
        return self._event.is_set()

    @property
    def superseded(self) -> bool:
        return self._superseded.is_set()

    def wait(self, timeout: float) -> bool:
        return self._event.wait(timeout)
