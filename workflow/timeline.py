"""A mission's timeline as data: one row per node attempt, its shards as bars in time, and
marks where something happened (a Spot interruption, a relaunch, an On-Demand fallback, a
failed shard), with the cost of each node. ``cli.timeline`` draws it; this module only reads
records, so the picture's rows and marks can be checked against them.

A shard item keeps only its last attempt: a shard that attempt 1 claimed and attempt 2
finished is a bar of attempt 2 only. An attempt whose every shard was redone later (a node
killed or interrupted before it committed anything) is still a row, from the unit item's
attempt count, with its marks but no bar and no instance id (``Row.kept`` is False).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from workflow.aggregation import price_mission
from workflow.cost import SECONDS_PER_HOUR, PriceList, UnknownInstanceType
from workflow.records import MissionRecord, ShardRecord, UnitRecord
from workflow.states import Capacity, MissionStatus, ShardStatus

# Waiting for a node: no bar (a claim time on it is an older attempt's).
_NOT_STARTED = frozenset({ShardStatus.PENDING, ShardStatus.QUEUED})


class MarkKind(StrEnum):
    INTERRUPTION = "Spot interruption"
    RELAUNCH = "relaunch"
    ON_DEMAND = "On-Demand fallback"
    FAILED_SHARD = "failed shard"


@dataclass(frozen=True)
class Bar:
    """A shard on its node, in seconds since the mission was created."""

    shard_id: str
    start: float
    end: float
    status: ShardStatus


@dataclass(frozen=True)
class Mark:
    kind: MarkKind
    at: float  # seconds since the mission was created
    shard_id: str | None = None


@dataclass(frozen=True)
class Node:
    """A billed node, from a ``type|capacity|instance`` key of ``instanceSeconds``."""

    instance_id: str
    instance_type: str
    capacity: Capacity
    seconds: float

    def cost(self, prices: PriceList) -> float | None:
        """USD at list price; None for a type the price list does not know."""
        try:
            return (
                self.seconds / SECONDS_PER_HOUR * prices.hourly(self.instance_type, self.capacity)
            )
        except UnknownInstanceType:
            return None


@dataclass(frozen=True)
class Row:
    unit_id: str
    attempt: int
    instance_id: str | None
    capacity: Capacity | None
    cost: float | None
    bars: tuple[Bar, ...]
    marks: tuple[Mark, ...]

    @property
    def kept(self) -> bool:
        """Some shard still names this attempt (else all it did was redone later)."""
        return bool(self.bars) or self.instance_id is not None

    def label(self) -> str:
        parts = [f"{self.unit_id} #{self.attempt}"]
        if self.capacity is not None:
            parts.append(self.capacity.value)
        if self.cost is not None:
            parts.append(f"${self.cost:.4f}")
        if not self.kept:
            parts.append("no shard kept")
        return " · ".join(parts)

    def as_json(self, *, bars: bool = True) -> dict[str, Any]:
        """With ``bars=False`` only their count (a summary stays small for any mission)."""
        return {
            "unitId": self.unit_id,
            "attempt": self.attempt,
            "instanceId": self.instance_id,
            "capacity": None if self.capacity is None else self.capacity.value,
            "costUsd": None if self.cost is None else round(self.cost, 6),
            "kept": self.kept,
            "bars": [
                {"shardId": b.shard_id, "start": b.start, "end": b.end, "status": b.status.value}
                for b in self.bars
            ]
            if bars
            else len(self.bars),
            "marks": [
                {"kind": m.kind.value, "at": m.at, "shardId": m.shard_id} for m in self.marks
            ],
        }


@dataclass(frozen=True)
class Timeline:
    mission_id: str
    status: MissionStatus
    rows: tuple[Row, ...]
    span: float  # seconds from the mission's creation to the last time drawn
    total_cost: float  # RsltProc's recorded cost, else the same model priced now
    compute_cost: float
    unplaced: tuple[Node, ...]  # billed nodes no shard names (their attempt is not known)

    def marks(self, kind: MarkKind) -> list[tuple[Row, Mark]]:
        return [(row, mark) for row in self.rows for mark in row.marks if mark.kind is kind]

    def cost_line(self) -> str:
        line = f"cost ${self.total_cost:.4f} (compute ${self.compute_cost:.4f})"
        if self.unplaced:
            line += f"; {len(self.unplaced)} billed node(s) of attempts with no shard kept"
        return line

    def as_json(self, *, bars: bool = True) -> dict[str, Any]:
        return {
            "missionId": self.mission_id,
            "status": self.status.value,
            "spanSeconds": self.span,
            "costUsd": round(self.total_cost, 6),
            "computeUsd": round(self.compute_cost, 6),
            "rows": [row.as_json(bars=bars) for row in self.rows],
            "unplacedNodes": [n.instance_id for n in self.unplaced],
        }


def billed_nodes(instance_seconds: Mapping[str, float]) -> dict[str, Node]:
    """The billing map by instance id; the old ``type|capacity`` keys name no node."""
    nodes: dict[str, Node] = {}
    for key, seconds in instance_seconds.items():
        itype, capacity, instance_id = [*key.split("|", 2), "", ""][:3]
        if instance_id and capacity in set(Capacity):
            nodes[instance_id] = Node(instance_id, itype, Capacity(capacity), float(seconds))
    return nodes


def build_timeline(
    mission: MissionRecord,
    units: Sequence[UnitRecord],
    shards: Sequence[ShardRecord],
    *,
    now: float,
    prices: PriceList | None = None,
) -> Timeline:
    """The timeline of ``mission`` from its records; ``now`` ends what is still running."""
    prices = prices or PriceList()
    origin = mission.created_at or min(_times(shards), default=now)
    clock = _Clock(origin, mission.finished_at or now)
    nodes = billed_nodes(mission.instance_seconds)
    by_unit: dict[str, list[ShardRecord]] = {}
    for shard in shards:
        by_unit.setdefault(shard.unit_id, []).append(shard)
    rows = [
        row
        for unit in sorted(units, key=lambda u: u.unit_id)
        for row in _unit_rows(unit, by_unit.get(unit.unit_id, []), nodes, prices, clock)
    ]
    placed = {row.instance_id for row in rows}
    ends = [t for row in rows for t in (*(b.end for b in row.bars), *(m.at for m in row.marks))]
    priced = price_mission(mission, shards, units, prices)
    return Timeline(
        mission_id=mission.mission_id,
        status=mission.status,
        rows=tuple(rows),
        span=max([clock.rel(clock.horizon), *ends]),
        total_cost=priced.total if mission.cost is None else mission.cost,
        compute_cost=priced.compute,
        unplaced=tuple(n for i, n in sorted(nodes.items()) if i not in placed),
    )


@dataclass(frozen=True)
class _Clock:
    origin: float  # epoch seconds of the mission's creation: 0 on the picture
    horizon: float  # what has no end yet ends here: the mission's end, or now

    def rel(self, t: float) -> float:
        return max(0.0, t - self.origin)


def _times(shards: Iterable[ShardRecord]) -> Iterable[float]:
    for s in shards:
        yield from (t for t in (s.claimed_at, s.started_at) if t is not None)


def _unit_rows(
    unit: UnitRecord,
    shards: Sequence[ShardRecord],
    nodes: Mapping[str, Node],
    prices: PriceList,
    clock: _Clock,
) -> list[Row]:
    """Rows 1..``unit.attempt`` of one unit. A row with no bar starts where the one before
    ended (the mission's start for attempt 1)."""
    rows: list[Row] = []
    previous_end = clock.origin
    for attempt in range(1, unit.attempt + 1):
        mine = sorted((s for s in shards if s.attempt == attempt), key=lambda s: s.index)
        ran = [s for s in mine if _ran_in_its_attempt(s)]
        bars = [b for b in (_bar(s, clock.horizon) for s in ran) if b is not None]
        instance_id = next((s.instance_id for s in ran if s.instance_id), None)
        if instance_id is None and attempt == unit.attempt:
            instance_id = unit.instance_id
        node = nodes.get(instance_id) if instance_id else None
        capacity = node.capacity if node else _capacity(unit, attempt)
        start = min((b.start for b in bars), default=previous_end)
        end = _attempt_end(unit, attempt, shards, bars, start)
        rows.append(
            Row(
                unit.unit_id,
                attempt,
                instance_id,
                capacity,
                node.cost(prices) if node else None,
                tuple(
                    Bar(b.shard_id, clock.rel(b.start), clock.rel(b.end), b.status) for b in bars
                ),
                tuple(
                    Mark(m.kind, clock.rel(m.at), m.shard_id)
                    for m in _marks(
                        unit, attempt, capacity=capacity, shards=mine, start=start, end=end
                    )
                ),
            )
        )
        previous_end = end
    return rows


def _ran_in_its_attempt(shard: ShardRecord) -> bool:
    """The shard's claim is its current attempt's: a relaunch's requeue stamps ``queuedAt``
    and leaves the older claim (time, instance id) on the item, so that one is older. A shard
    failed by RecordUnitFailure while queued ran nowhere in its attempt."""
    if shard.status in _NOT_STARTED:
        return False
    if shard.status is ShardStatus.DONE and shard.started_at is not None:
        return True
    claimed = shard.claimed_at
    return claimed is not None and (shard.queued_at is None or claimed >= shard.queued_at)


def _bar(shard: ShardRecord, horizon: float) -> Bar | None:
    start = shard.started_at or shard.claimed_at
    if start is None:
        return None
    end = shard.finished_at
    if end is None and shard.status is ShardStatus.INTERRUPTED:
        end = shard.interrupted_at
    end = horizon if end is None else end
    return Bar(shard.shard_id, start, max(start, end), shard.status)


def _capacity(unit: UnitRecord, attempt: int) -> Capacity | None:
    """What the unit item says of its current attempt (an older one's is overwritten)."""
    if attempt != unit.attempt or unit.capacity not in set(Capacity):
        return None
    return Capacity(str(unit.capacity))


def _attempt_end(
    unit: UnitRecord,
    attempt: int,
    shards: Sequence[ShardRecord],
    bars: Sequence[Bar],
    start: float,
) -> float:
    """When the attempt stopped: for an interrupted one, the first Spot notice a later
    attempt's shards recorded after its last bar; else its last bar's end, else its start."""
    last = max((b.end for b in bars), default=start)
    notices = [
        s.interrupted_at
        for s in shards
        if s.attempt > attempt and s.interrupted_at is not None and s.interrupted_at >= last
    ]
    if attempt in unit.interrupted_attempts and notices:
        return min(notices)
    return last


def _marks(
    unit: UnitRecord,
    attempt: int,
    *,
    capacity: Capacity | None,
    shards: Sequence[ShardRecord],
    start: float,
    end: float,
) -> list[Mark]:
    marks: list[Mark] = []
    if attempt > 1:
        marks.append(Mark(MarkKind.RELAUNCH, start))
        if capacity is Capacity.ON_DEMAND:
            marks.append(Mark(MarkKind.ON_DEMAND, start))
    if attempt in unit.interrupted_attempts:
        marks.append(Mark(MarkKind.INTERRUPTION, end))
    marks.extend(
        Mark(MarkKind.FAILED_SHARD, s.finished_at or end, s.shard_id)
        for s in shards
        if s.status is ShardStatus.FAILED
    )
    return marks
