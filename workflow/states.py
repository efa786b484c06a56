"""Transaction states of shards, work units and missions, the moves between them, and the
two vocabularies read from AWS (Step Functions execution status, EC2 capacity type).

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


class ExecutionStatus(StrEnum):
    """A Step Functions execution's ``status`` (DescribeExecution, ListExecutions, events)."""

    RUNNING = "RUNNING"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    TIMED_OUT = "TIMED_OUT"
    ABORTED = "ABORTED"
    PENDING_REDRIVE = "PENDING_REDRIVE"  # failed, and a redrive was asked for: not over yet


class Capacity(StrEnum):
    """How a node is bought; the values are EC2's (``InstanceLifecycle``, IMDS
    ``instance-life-cycle``), so a value read from EC2 parses as one."""

    SPOT = "spot"
    ON_DEMAND = "on-demand"


class MissionStatus(StrEnum):
    PLANNED = "PLANNED"
    RUNNING = "RUNNING"
    SUCCEEDED = "SUCCEEDED"
    PARTIAL = "PARTIAL"  # finished within maxFailedShardPercent
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"  # its execution was stopped (``lighthpc cancel``); DONE shards kept


# The mission is over: nothing moves its shards again (``lighthpc cancel`` refuses it).
FINISHED_MISSION: frozenset[MissionStatus] = frozenset(
    {MissionStatus.SUCCEEDED, MissionStatus.PARTIAL, MissionStatus.FAILED, MissionStatus.CANCELLED}
)


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

# A settled shard never moves again (no entry of ALLOWED lists it as a source).
SETTLED_SHARD: frozenset[ShardStatus] = frozenset({S.DONE, S.FAILED})

E = ExecutionStatus
# The execution is over: polling it further changes nothing.
TERMINAL_EXECUTION: frozenset[ExecutionStatus] = frozenset(
    {E.SUCCEEDED, E.FAILED, E.TIMED_OUT, E.ABORTED}
)
# Over, and not by success: its nodes must go (node_watch) and the CLI exits non-zero.
FAILED_EXECUTION: frozenset[ExecutionStatus] = TERMINAL_EXECUTION - {E.SUCCEEDED}


def can_move(current: ShardStatus, target: ShardStatus) -> bool:
    """True when ``current -> target`` is a legal shard transition."""
    return current in ALLOWED.get(target, frozenset())


def sources_of(target: ShardStatus) -> list[str]:
    """The source statuses of ``target``, in a stable order, for condition expressions."""
    return sorted(ALLOWED[target])
