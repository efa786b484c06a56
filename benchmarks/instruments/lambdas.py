"""``LambdaCounter``: in-process Lambda invocations, seconds and errors per function and action.

It wraps the handlers registered in ``EmbeddedCloud.lambdas``; ``wrap_handler`` swaps one
handler for a fault-injecting wrapper.
"""

from __future__ import annotations

import collections
import json
import threading
import time
from collections.abc import Callable
from typing import Any


class LambdaCounter:
    """Counts in-process Lambda invocations per (function, action) by wrapping handlers."""

    def __init__(self, registry: Any) -> None:
        self.registry = registry
        self.counts: collections.Counter[str] = collections.Counter()
        self.seconds: collections.Counter[str] = collections.Counter()
        self.errors: collections.Counter[str] = collections.Counter()
        self._saved: dict[str, Any] = {}
        self._lock = threading.Lock()

    def __enter__(self) -> LambdaCounter:
        for name in self.registry.registered():
            inner = self.registry.handler_for(name)
            self._saved[name] = inner
            self.registry.register(name, self._wrap(name, inner))
        return self

    def __exit__(self, *exc: object) -> None:
        for name, inner in self._saved.items():
            self.registry.register(name, inner)

    def _wrap(self, name: str, inner: Callable[[Any, Any], Any]) -> Callable[[Any, Any], Any]:
        def counted(event: Any, context: Any) -> Any:
            action = event.get("action") if isinstance(event, dict) else None
            label = f"{name}:{action}" if action else name
            if action == "unitFailed":  # the error the unit was given up for
                err = event.get("error") or {}
                with self._lock:
                    self.errors[f"unit failed with {err.get('Error')}: {_cause(err)}"] += 1
            started = time.perf_counter()
            try:
                return inner(event, context)
            except Exception as exc:
                with self._lock:
                    self.errors[f"{label} raised {type(exc).__name__}: {str(exc)[:160]}"] += 1
                raise
            finally:
                with self._lock:
                    self.counts[label] += 1
                    self.seconds[label] += time.perf_counter() - started

        return counted

    def reset(self) -> None:
        with self._lock:
            self.counts.clear()
            self.seconds.clear()
            self.errors.clear()

    @property
    def total(self) -> int:
        return sum(self.counts.values())


def _cause(error: Any) -> str:
    cause = str(error.get("Cause", ""))
    try:
        parsed = json.loads(cause)
        cause = f"{parsed.get('errorType')}: {parsed.get('errorMessage')}"
    except (ValueError, AttributeError):
        pass
    return cause[:160]


def wrap_handler(
    registry: Any, function_name: str, wrapper: Callable[[Any], Any]
) -> Callable[[], None]:
    """Replace ``function_name``'s handler with ``wrapper(inner)``; returns an undo callable."""
    inner = registry.handler_for(function_name)
    registry.register(function_name, wrapper(inner))
    return lambda: registry.register(function_name, inner)
