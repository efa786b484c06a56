"""``ServerCalls``: the requests moto serves, per (service, action), and DynamoDB write units.

It wraps moto's ``BaseResponse.call_action`` (the JSON/query protocol services: DynamoDB,
Step Functions, EC2, Lambda, SNS, ...; not S3, which routes its own way). Requests from
the benchmark's own observer clients (marked with the ``x-lighthpc-bench`` header, see
``mark_observer``) are excluded.
"""

from __future__ import annotations

import collections
import json
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

OBSERVER_HEADER = "x-lighthpc-bench"

_DDB_WRITE_ACTIONS = {"PutItem", "UpdateItem", "DeleteItem", "BatchWriteItem", "TransactWriteItems"}


@dataclass
class CallStats:
    count: int = 0
    seconds: float = 0.0
    items: int = 0


class ServerCalls:
    """Requests served by moto per (service, action), excluding the benchmark's observers."""

    def __init__(self) -> None:
        self.calls: dict[tuple[str, str], CallStats] = collections.defaultdict(CallStats)
        self._lock = threading.Lock()
        self._original: Any = None

    def __enter__(self) -> ServerCalls:
        from moto.core.responses import BaseResponse

        self._original = BaseResponse.call_action
        original = self._original
        stats = self

        def call_action(response: Any) -> Any:
            headers = getattr(response, "headers", None) or {}
            if headers.get(OBSERVER_HEADER):
                return original(response)
            started = time.perf_counter()
            try:
                return original(response)
            finally:
                elapsed = time.perf_counter() - started
                stats._record(response, elapsed)

        BaseResponse.call_action = call_action
        return self

    def __exit__(self, *exc: object) -> None:
        from moto.core.responses import BaseResponse

        if self._original is not None:
            BaseResponse.call_action = self._original

    def _record(self, response: Any, elapsed: float) -> None:
        try:
            action = str(response._get_action())
            service = str(getattr(response, "service_name", "?"))
            items = 0
            if service == "dynamodb" and action in _DDB_WRITE_ACTIONS:
                items = _write_units(action, getattr(response, "body", None))
        except Exception:  # noqa: BLE001 - a counting hook must never break a request
            action, service, items = "?", "?", 0
        with self._lock:
            s = self.calls[(service, action)]
            s.count += 1
            s.seconds += elapsed
            s.items += items

    def reset(self) -> None:
        with self._lock:
            self.calls.clear()

    def snapshot(self) -> dict[str, dict[str, float]]:
        with self._lock:
            return {
                f"{svc}:{act}": {"count": s.count, "seconds": round(s.seconds, 3), "wru": s.items}
                for (svc, act), s in sorted(self.calls.items())
            }

    def count(self, service: str, actions: Iterable[str] | None = None) -> int:
        with self._lock:
            return sum(
                s.count
                for (svc, act), s in self.calls.items()
                if svc == service and (actions is None or act in set(actions))
            )

    def ddb_write_units(self) -> int:
        with self._lock:
            return sum(s.items for (svc, _), s in self.calls.items() if svc == "dynamodb")

    def ddb_read_requests(self) -> int:
        reads = ("GetItem", "Query", "Scan", "BatchGetItem", "TransactGetItems")
        return self.count("dynamodb", reads)


def _write_units(action: str, body: Any) -> int:
    """Write request units of one request, counting 1 per item (items < 1 KB) and 2 per
    transactional item (AWS bills transactional writes double)."""
    if action in ("PutItem", "UpdateItem", "DeleteItem"):
        return 1
    data = body
    if isinstance(body, bytes | bytearray | str):
        try:
            data = json.loads(body)
        except ValueError:
            return 0
    if not isinstance(data, dict):
        return 0
    if action == "BatchWriteItem":
        return sum(len(v) for v in data.get("RequestItems", {}).values())
    return 2 * len(data.get("TransactItems", []))


def mark_observer(client: Any) -> Any:
    """Tag every request of ``client`` so ``ServerCalls`` leaves it out of the counts."""

    def add_header(request: Any, **_: Any) -> None:
        request.headers[OBSERVER_HEADER] = "1"

    client.meta.events.register("before-send.*", add_header)
    return client
