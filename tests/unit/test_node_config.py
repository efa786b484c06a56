"""Agent knobs: slot resolution order, environment parsing, small pure helpers."""

from __future__ import annotations

from pathlib import Path

import pytest

from node_agent.agent import failure_cause
from node_agent.config import AgentConfig, ConfigError, resolve_slots
from node_agent.inputs import cache_name
from node_agent.runner import (
    CheckpointEvent,
    PoolEvent,
    ProgressEvent,
    WorkerStarted,
    coalesce,
)
from node_agent.unit_run import numeric_stats, redo_items
from workflow.records import ShardRecord
from workflow.states import ShardStatus


@pytest.mark.parametrize(
    ("override", "per_node", "cpus", "cap", "slots"),
    [
        (None, None, 8, None, 8),  # CPU count by default
        (None, 4, 8, None, 4),  # the mission's slotsPerNode
        (2, 4, 8, None, 2),  # LIGHTHPC_NODE_SLOTS wins
        (None, None, 8, 3, 3),  # the local pool's cap
        (None, None, None, None, 1),
    ],
)
def test_slot_resolution(
    override: int | None, per_node: int | None, cpus: int | None, cap: int | None, slots: int
) -> None:
    assert resolve_slots(override, per_node, cpus, cap) == slots


def test_config_from_env() -> None:
    config = AgentConfig.from_env(
        {
            "LIGHTHPC_NODE_SLOTS": "3",
            "LIGHTHPC_NODE_POLL_SECONDS": "0.1",
            "LIGHTHPC_NODE_WORK_DIR": "/tmp/w",
        }
    )
    assert (config.slots, config.poll_seconds, config.max_slots) == (3, 0.1, None)
    assert config.library_cache == Path("/tmp/w/cache")
    assert AgentConfig.from_env({}).poll_seconds == 5.0


@pytest.mark.parametrize(
    "env",
    [
        {"LIGHTHPC_NODE_SLOTS": "0"},
        {"LIGHTHPC_NODE_POLL_SECONDS": "-1"},
        {"LIGHTHPC_NODE_PROGRESS_SECONDS": "soon"},
    ],
)
def test_config_rejects_bad_values(env: dict[str, str]) -> None:
    with pytest.raises(ConfigError):
        AgentConfig.from_env(env)


def test_events_coalesce_to_the_newest_per_shard() -> None:
    events: list[PoolEvent] = [
        ProgressEvent("s1", 10),
        CheckpointEvent("s1", b"a", 10),
        ProgressEvent("s1", 20),
        CheckpointEvent("s1", b"b", 20),
        CheckpointEvent("s2", b"c", 5),
        WorkerStarted(42),
    ]
    kept = coalesce(events)
    assert WorkerStarted(42) in kept
    assert ProgressEvent("s1", 20) in kept and ProgressEvent("s1", 10) not in kept
    assert {e for e in kept if isinstance(e, CheckpointEvent)} == {
        CheckpointEvent("s1", b"b", 20),
        CheckpointEvent("s2", b"c", 5),
    }


def test_redo_and_stats_helpers() -> None:
    assert redo_items(None, 50) == 0
    assert redo_items(80, 50) == 30
    assert redo_items(40, 50) == 0
    assert numeric_stats({"rows": 3, "ok": True, "stderrTail": "x", "s": 1.5}) == {
        "rows": 3,
        "s": 1.5,
    }


def test_failure_cause_lists_shards_and_their_errors() -> None:
    failed = [
        ShardRecord("m", f"s{i:06d}", "u0", i, 0, 1, ShardStatus.FAILED, 1, error=f"boom {i}")
        for i in range(7)
    ]
    cause = failure_cause(failed)
    assert cause.startswith("7 shard(s) failed.")
    assert "shard s000000: boom 0" in cause and "and 2 more" in cause


def test_cache_names_change_with_the_etag() -> None:
    assert cache_name("b", "lib.smi", "e1") != cache_name("b", "lib.smi", "e2")
    assert cache_name("b", "lib.smi", "e1").endswith(".smi")
