"""Structured JSON logs on stderr: one object per line, ready for the CloudWatch agent.

Every line carries ``time``, ``level``, ``message`` and the node's context (``missionId``,
``unitId``, ``attempt``; ``shardId`` when a shard is concerned), so a log search for one shard
across attempts and nodes is a single filter.
"""

from __future__ import annotations

import json
import logging
import sys
import threading
import traceback
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, Final, TextIO

# Not under "lighthpc" (the Lambda handlers' powertools logger): node lines stay ours.
LOGGER_NAME: Final = "lighthpc_node"
CONTEXT_KEYS: Final = ("missionId", "unitId", "shardId", "attempt")
# Attributes every LogRecord has; anything else came in through ``extra=``.
_STANDARD_ATTRS: Final = frozenset(
    vars(logging.LogRecord("", 0, "", 0, "", (), None)).keys() | {"message", "asctime"}
)

_context_lock = threading.Lock()
_context: dict[str, Any] = {}


def bind(**fields: Any) -> None:
    """Add process-wide context (identity) to every later line; None removes a key."""
    with _context_lock:
        for key, value in fields.items():
            if value is None:
                _context.pop(key, None)
            else:
                _context[key] = value


def bound() -> dict[str, Any]:
    with _context_lock:
        return dict(_context)


def format_time(created: float) -> str:
    """ISO 8601 UTC with milliseconds, the form CloudWatch Logs parses as a timestamp."""
    stamp = datetime.fromtimestamp(created, tz=UTC)
    return stamp.strftime("%Y-%m-%dT%H:%M:%S.") + f"{stamp.microsecond // 1000:03d}Z"


class JsonFormatter(logging.Formatter):
    """One JSON object per record; context keys are always present (null when unknown)."""

    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, Any] = {
            "time": format_time(record.created),
            "level": record.levelname,
            "message": record.getMessage(),
        }
        doc.update(dict.fromkeys(CONTEXT_KEYS))
        doc.update(bound())
        doc.update(_extra_fields(record))
        doc["logger"] = record.name
        if record.exc_info:
            doc["exception"] = "".join(traceback.format_exception(*record.exc_info))
        return json.dumps(doc, default=str, separators=(",", ":"))


def _extra_fields(record: logging.LogRecord) -> Mapping[str, Any]:
    return {k: v for k, v in vars(record).items() if k not in _STANDARD_ATTRS}


def configure(stream: TextIO | None = None, level: int = logging.INFO) -> logging.Logger:
    """Route the root logger to ``stream`` (stderr) as JSON lines; idempotent."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    # botocore is chatty at INFO about credentials and endpoints; keep warnings only.
    for noisy in ("botocore", "boto3", "urllib3", "s3transfer"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    return logging.getLogger(LOGGER_NAME)


def get_logger(name: str = "") -> logging.Logger:
    return logging.getLogger(f"{LOGGER_NAME}.{name}" if name else LOGGER_NAME)
