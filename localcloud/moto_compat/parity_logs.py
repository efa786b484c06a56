"""AWS-parity fixes for moto's CloudWatch Logs (the nodes ship their lines there).

- 15 ``logs_put_batch_limits``: moto stores any ``PutLogEvents`` batch. AWS refuses one of
  more than 10,000 events, more than 1,048,576 bytes (UTF-8 messages + 26 bytes per event),
  an event over 262,144 bytes, or events spanning more than 24 hours (CloudWatch Logs API
  reference, PutLogEvents), with ``InvalidParameterException``. A local node that broke
  these limits would pass locally and lose its lines on AWS.
- 16 ``logs_filter_stream_prefix``: moto's ``FilterLogEvents`` ignores
  ``logStreamNamePrefix`` and returns every stream's events; ``lighthpc logs`` reads one
  mission's (or unit's) node streams by that prefix, so locally it would show other
  missions' lines. AWS also refuses the prefix together with ``logStreamNames``.

The limits are the node shipper's own constants (``node_agent.log_shipping``): one source.
"""

from __future__ import annotations

import importlib
import json
from collections.abc import Mapping, Sequence
from typing import Any, Final

from localcloud.moto_compat.machinery import Fix, Impl, Patch
from node_agent.log_shipping import (
    EVENT_OVERHEAD_BYTES,
    MAX_BATCH_BYTES,
    MAX_BATCH_EVENTS,
    MAX_BATCH_SPAN_MS,
    MAX_EVENT_BYTES,
)

_BACKEND: Final = "moto.logs.models:LogsBackend"
_RESPONSE: Final = "moto.logs.responses:LogsResponse"


def _invalid(message: str) -> Exception:
    exceptions = importlib.import_module("moto.logs.exceptions")
    return exceptions.InvalidParameterException(message)  # type: ignore[no-any-return]


def batch_refusal(events: Sequence[Mapping[str, Any]]) -> str | None:
    """AWS's reason to refuse this PutLogEvents batch, or None when it is within limits."""
    if len(events) > MAX_BATCH_EVENTS:
        return (
            f"1 validation error detected: Value at 'logEvents' failed to satisfy constraint: "
            f"Member must have length less than or equal to {MAX_BATCH_EVENTS}"
        )
    sizes = [len(str(e["message"]).encode("utf-8")) + EVENT_OVERHEAD_BYTES for e in events]
    biggest = max(sizes, default=0)
    if biggest > MAX_EVENT_BYTES:
        return f"Log event too large: {biggest} bytes exceeds limit of {MAX_EVENT_BYTES}"
    if sum(sizes) > MAX_BATCH_BYTES:
        return f"Upload too large: {sum(sizes)} bytes exceeds limit of {MAX_BATCH_BYTES}"
    stamps = [int(e["timestamp"]) for e in events]
    if stamps and max(stamps) - min(stamps) > MAX_BATCH_SPAN_MS:
        return (
            "The batch of log events in a single PutLogEvents request cannot span more than "
            "24 hours."
        )
    return None


def _wrap_put_log_events(inner: Impl) -> Impl:
    def put_log_events(
        self: Any, log_group_name: str, log_stream_name: str, log_events: list[dict[str, Any]]
    ) -> Any:
        """Refuse what AWS refuses before moto stores anything."""
        reason = batch_refusal(log_events)
        if reason is not None:
            raise _invalid(reason)
        return inner(self, log_group_name, log_stream_name, log_events)

    return put_log_events


LOGS_PUT_BATCH_LIMITS = Fix(
    name="logs_put_batch_limits",
    design_ref="CloudWatch Logs PutLogEvents quotas",
    description="PutLogEvents refuses batches over AWS's event count, size and time span.",
    patches=(
        Patch(
            _BACKEND,
            "put_log_events",
            _wrap_put_log_events,
            ("self", "log_group_name", "log_stream_name", "log_events"),
        ),
    ),
)


def _wrap_filter_log_events(inner: Impl) -> Impl:
    def filter_log_events(self: Any) -> str:
        """Keep only the events (and searched streams) whose stream has the prefix."""
        prefix = self._get_param("logStreamNamePrefix")
        if not prefix:
            return inner(self)  # type: ignore[no-any-return]
        if self._get_param("logStreamNames"):
            raise _invalid("logStreamNames and logStreamNamePrefix are mutually exclusive")
        body = json.loads(inner(self))
        body["events"] = [e for e in body["events"] if e["logStreamName"].startswith(prefix)]
        body["searchedLogStreams"] = [
            s for s in body.get("searchedLogStreams", []) if s["logStreamName"].startswith(prefix)
        ]
        return json.dumps(body)

    return filter_log_events


LOGS_FILTER_STREAM_PREFIX = Fix(
    name="logs_filter_stream_prefix",
    design_ref="CloudWatch Logs FilterLogEvents logStreamNamePrefix",
    description="FilterLogEvents returns only the streams named by logStreamNamePrefix.",
    patches=(Patch(_RESPONSE, "filter_log_events", _wrap_filter_log_events, ("self",)),),
)
