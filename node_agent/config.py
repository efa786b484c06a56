"""The agent's own knobs (environment only; mission knobs come from the mission's params).

``LIGHTHPC_NODE_SLOTS`` overrides the slot count outright; ``LIGHTHPC_NODE_MAX_SLOTS`` caps
it (the local pool's share of the host's CPUs). The poll and progress intervals exist so
tests and the local mode can be fast without changing production behaviour.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Final

ENV_SLOTS: Final = "LIGHTHPC_NODE_SLOTS"
ENV_MAX_SLOTS: Final = "LIGHTHPC_NODE_MAX_SLOTS"
ENV_POLL_SECONDS: Final = "LIGHTHPC_NODE_POLL_SECONDS"
ENV_PROGRESS_SECONDS: Final = "LIGHTHPC_NODE_PROGRESS_SECONDS"
ENV_STOP_GRACE_SECONDS: Final = "LIGHTHPC_NODE_STOP_GRACE_SECONDS"
ENV_WORK_DIR: Final = "LIGHTHPC_NODE_WORK_DIR"
ENV_CACHE_DIR: Final = "LIGHTHPC_NODE_CACHE_DIR"

DEFAULT_POLL_SECONDS: Final = 5.0
DEFAULT_PROGRESS_SECONDS: Final = 5.0
# A Spot notice comes two minutes ahead; leave time to upload and report.
DEFAULT_STOP_GRACE_SECONDS: Final = 90.0


class ConfigError(ValueError):
    """An agent environment variable has an unusable value."""


def _positive_float(env: Mapping[str, str], key: str, default: float) -> float:
    raw = env.get(key, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError as exc:
        raise ConfigError(f"{key}={raw!r} is not a number") from exc
    if value <= 0:
        raise ConfigError(f"{key} must be > 0, got {raw}")
    return value


def _positive_int(env: Mapping[str, str], key: str) -> int | None:
    raw = env.get(key, "").strip()
    if not raw:
        return None
    if not raw.isdigit() or int(raw) < 1:
        raise ConfigError(f"{key}={raw!r} is not a positive integer")
    return int(raw)


@dataclass(frozen=True)
class AgentConfig:
    poll_seconds: float = DEFAULT_POLL_SECONDS
    progress_seconds: float = DEFAULT_PROGRESS_SECONDS
    stop_grace_seconds: float = DEFAULT_STOP_GRACE_SECONDS
    slots: int | None = None
    max_slots: int | None = None
    work_dir: Path = Path(tempfile.gettempdir()) / "lighthpc-node"
    cache_dir: Path | None = None

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> AgentConfig:
        source = os.environ if env is None else env
        work_dir = Path(source.get(ENV_WORK_DIR) or cls.work_dir)
        cache = source.get(ENV_CACHE_DIR)
        return cls(
            poll_seconds=_positive_float(source, ENV_POLL_SECONDS, DEFAULT_POLL_SECONDS),
            progress_seconds=_positive_float(
                source, ENV_PROGRESS_SECONDS, DEFAULT_PROGRESS_SECONDS
            ),
            stop_grace_seconds=_positive_float(
                source, ENV_STOP_GRACE_SECONDS, DEFAULT_STOP_GRACE_SECONDS
            ),
            slots=_positive_int(source, ENV_SLOTS),
            max_slots=_positive_int(source, ENV_MAX_SLOTS),
            work_dir=work_dir,
            cache_dir=Path(cache) if cache else None,
        )

    @property
    def library_cache(self) -> Path:
        return self.cache_dir or self.work_dir / "cache"


def resolve_slots(
    override: int | None, per_node: int | None, cpus: int | None, cap: int | None
) -> int:
    """Environment override > mission ``slotsPerNode`` > CPU count, then the cap; at least 1."""
    slots = override or per_node or cpus or 1
    if cap is not None:
        slots = min(slots, cap)
    return max(1, slots)
