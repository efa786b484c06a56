"""The shard planner and the work-unit packer.

Shards are contiguous, near-equal ranges over the workload's index space (molsim: the
reference library, "sample comparison intervals", or the queries when the sample is the longer
file). Units group contiguous shards so that one
unit = one node: the unit count never exceeds ``maxNodes`` because EC2 launches are throttled
(~2 instances/s after a burst of 1,000) and every node costs boot time.
"""

from __future__ import annotations

from dataclasses import dataclass

from workflow.errors import MissionInvalidInput
from workflow.workloads.base import ShardRange

SHARD_ID_WIDTH = 6
UNIT_ID_WIDTH = 4


def shard_id(index: int) -> str:
    return f"s{index:0{SHARD_ID_WIDTH}d}"


def unit_id(index: int) -> str:
    return f"u{index:0{UNIT_ID_WIDTH}d}"


@dataclass(frozen=True)
class WorkUnit:
    unit_id: str
    index: int
    shards: tuple[ShardRange, ...]

    def manifest_item(self) -> dict[str, object]:
        """The Map item for this unit: small on purpose (shard lists stay in DynamoDB)."""
        return {"unitId": self.unit_id, "shards": len(self.shards)}


def plan_shards(items: int, shards: int) -> list[ShardRange]:
    """Split ``[0, items)`` into ``shards`` contiguous ranges whose sizes differ by at most 1."""
    if items < 1:
        raise MissionInvalidInput("nothing to shard: the work has 0 items")
    if shards < 1:
        raise MissionInvalidInput(f"shards must be >= 1, got {shards}")
    if shards > items:
        raise MissionInvalidInput(f"shards ({shards}) exceed the work's {items} items")
    base, extra = divmod(items, shards)
    out: list[ShardRange] = []
    start = 0
    for index in range(shards):
        size = base + (1 if index < extra else 0)
        out.append(ShardRange(shard_id(index), index, start, start + size))
        start += size
    return out


def pack_units(shards: list[ShardRange], max_nodes: int) -> list[WorkUnit]:
    """Group shards into ``min(max_nodes, len(shards))`` units of near-equal shard counts."""
    if max_nodes < 1:
        raise MissionInvalidInput(f"maxNodes must be >= 1, got {max_nodes}")
    count = min(max_nodes, len(shards))
    base, extra = divmod(len(shards), count)
    units: list[WorkUnit] = []
    pos = 0
    for index in range(count):
        take = base + (1 if index < extra else 0)
        units.append(WorkUnit(unit_id(index), index, tuple(shards[pos : pos + take])))
        pos += take
    return units
