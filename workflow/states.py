"""Transaction states of shards, work units and missions, and the moves between them.

Every status change in ``tblTrans`` is a conditional write whose condition is derived from
``ALLOWED`` (the source states) plus the attempt number, so a late report from a superseded
attempt or a second DONE is refused by DynamoDB itself, not by a read-then-write.
"""

from __future__ import annotations

from enum import StrEnum


class ShardStatus(StrEnum):
    PENDING = "PENDING"  # planned before attempt 1 was queued at plan time (older items)
    QUEUED = "QUEUED"  # assigned to attempt n, waiting for its node
    RUNNING = "RUNNING"  # claimed by the node of attempt n
    DONE = "DONE"  # result committed (terminal, exactly once)
    INTERRUPTED = "INTERRUPTED"  # Spot notice; checkpoint saved
    LOST = "LOST"  # node vanished / heartbeat expired
    FAILED = "FAILED"  # gave up (terminal)


class UnitStatus(StrEnum):
    LAUNCHING = "LAUNCHING"
    RUNNING = "RUNNING"
    SUCCEEDED = "SUCCEEDED"
    INTERRUPTED = "INTERRUPTED"
    LOST = "LOST"
    FAILED = "FAILED"


class MissionStatus(StrEnum):
    PLANNED = "PLANNED"
    RUNNING = "RUNNING"
    SUCCEEDED = "SUCCEEDED"
    PARTIAL = "PARTIAL"  # finished within maxFailedShardPercent
    FAILED = "FAILED"
    ABORTED = "ABORTED"


S = ShardStatus

# target status -> the statuses it may be entered from
ALLOWED: dict[ShardStatus, frozenset[ShardStatus]] = {
    S.QUEUED: frozenset({S.PENDING, S.QUEUED, S.RUNNING, S.INTERRUPTED, S.LOST}),
    S.RUNNING: frozenset({S.QUEUED, S.RUNNING}),
    S.DONE: frozenset({S.RUNNING}),
    S.INTERRUPTED: frozenset({S.QUEUED, S.RUNNING}),
    S.LOST: frozenset({S.QUEUED, S.RUNNING}),
    S.FAILED: frozenset({S.PENDING, S.QUEUED, S.RUNNING, S.INTERRUPTED, S.LOST}),
}

TERMINAL: frozenset[ShardStatus] = frozenset({S.DONE, S.FAILED})


def can_move(current: ShardStatus, target: ShardStatus) -> bool:
    """True when ``current -> target`` is a legal shard transition."""
    return current in ALLOWED.get(target, frozenset())


def sources_of(target: ShardStatus) -> list[str]:
    """The source statuses of ``target``, in a stable order, for condition expressions."""
    return sorted(ALLOWED[target])
