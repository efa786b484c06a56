"""Structured JSON log lines: one object per line with the node's context keys."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest

from node_agent import logs


@pytest.fixture
def stream() -> Iterator[io.StringIO]:
    out = io.StringIO()
    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    unbound = {"missionId": None, "unitId": None, "attempt": None, "instanceId": None}
    logs.bind(**unbound)  # an agent run by an earlier test in this process bound its own
    logs.configure(out)
    yield out
    root.handlers[:] = saved[0]
    root.setLevel(saved[1])
    logs.bind(**unbound)


def lines(stream: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_every_line_is_one_json_object_with_the_context_keys(stream: io.StringIO) -> None:
    log = logs.get_logger("test")
    log.info("before identity")
    logs.bind(missionId="m-1", unitId="u0001", attempt=2)
    log.warning("shard done", extra={"shardId": "s000004", "seconds": 1.5})
    first, second = lines(stream)
    assert set(first) >= {"time", "level", "message", "missionId", "unitId", "shardId", "attempt"}
    assert first["missionId"] is None and first["level"] == "INFO"
    assert second == {
        **second,
        "level": "WARNING",
        "message": "shard done",
        "missionId": "m-1",
        "unitId": "u0001",
        "attempt": 2,
        "shardId": "s000004",
        "seconds": 1.5,
    }


def test_multiline_messages_and_exceptions_stay_on_one_line(stream: io.StringIO) -> None:
    log = logs.get_logger()
    try:
        raise ValueError("bad\nvalue")
    except ValueError:
        log.exception("crashed\nbadly")
    text = stream.getvalue()
    assert text.count("\n") == 1
    [entry] = lines(stream)
    assert entry["message"] == "crashed\nbadly"
    assert "ValueError: bad\nvalue" in str(entry["exception"])


def test_time_is_iso_utc_with_milliseconds() -> None:
    assert logs.format_time(0.5) == "1970-01-01T00:00:00.500Z"
    assert logs.format_time(1_795_958_706.7761) == "2026-11-29T13:25:06.776Z"
