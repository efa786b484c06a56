"""The workload interface: what a node runs per shard and how results merge.

A workload partitions an index space ``[0, count_items)`` (molsim: the reference library's
molecules, or the sample's when it has more; noop: abstract items) into shard ranges, runs
one range at a time on a node, and reduces the per-shard result files into the mission
result. Workloads are AWS-free: the node agent owns downloads, uploads, heartbeats and
DynamoDB.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Protocol, runtime_checkable


@dataclass(frozen=True)
class ShardRange:
    """One shard: the half-open item range ``[start, end)``."""

    shard_id: str
    index: int
    start: int
    end: int

    @property
    def size(self) -> int:
        return self.end - self.start


@dataclass(frozen=True)
class WorkInputs:
    """Local files and options a workload reads; the same for every shard of a mission."""

    sample: Path
    reference: Path | None = None
    options: Mapping[str, Any] = field(default_factory=dict)


# A reduce summary's list of the sample lines (1-based) the nodes could not use, for a
# workload whose plan does not parse its sample (molsim): RsltProc records it on the mission
# as its invalid sample lines, as PlanMission records a ``SampleReport``'s.
INVALID_SAMPLE_LINES = "invalidQueryLines"


@dataclass(frozen=True)
class SampleReport:
    """What validating a sample found: usable items and the lines it skipped (1-based)."""

    items: int
    invalid_lines: tuple[int, ...] = ()


@dataclass
class ShardContext:
    """The node's side of a running shard.

    ``resume`` is the payload of the last checkpoint of an earlier attempt (or None).
    ``save_checkpoint`` persists a payload durably (the agent uploads it); a workload calls it
    periodically and when ``stop_requested()`` turns True, then returns ``ShardStopped``.
    ``progress`` reports the absolute position reached inside the range.
    """

    work_dir: Path
    resume: bytes | None = None
    stop_requested: Callable[[], bool] = lambda: False
    save_checkpoint: Callable[[bytes, int], None] = lambda _data, _position: None
    progress: Callable[[int], None] = lambda _position: None
    checkpoint_every: int = 250


@dataclass(frozen=True)
class ShardDone:
    """The shard finished; ``result`` is a local file to upload."""

    result: Path
    stats: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ShardStopped:
    """The shard stopped on request after saving a checkpoint at ``position``."""

    checkpoint: bytes
    position: int


ShardOutcome = ShardDone | ShardStopped


@runtime_checkable
class Workload(Protocol):
    """What every workload implements (found by the ``lighthpc.workloads`` entry point group)."""

    name: ClassVar[str]

    def validate(self, inputs: WorkInputs) -> SampleReport:
        """Check the sample (and reference); raise ``MissionInvalidInput`` on unusable input."""
        ...

    def count_items(self, inputs: WorkInputs) -> int:
        """Size of the index space that shards partition."""
        ...

    def run(self, shard: ShardRange, inputs: WorkInputs, ctx: ShardContext) -> ShardOutcome:
        """Run one shard, resuming from ``ctx.resume`` when given."""
        ...

    def reduce(self, results: Sequence[Path], out: Path, inputs: WorkInputs) -> Mapping[str, Any]:
        """Merge shard result files (in shard order) into ``out``; return a small summary."""
        ...
