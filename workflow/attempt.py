"""The attempt protocol: every write that one attempt of one work unit makes, in one place.

An attempt is a unit's launch number n (``$$.State.RetryCount + 1``). Each step below is a
DynamoDB write conditioned on n, so a superseded node is refused by the table itself:

    begin (LaunchNode) → start (node) → claim → progress → commit | fail_shard
    → succeed | fail | interrupt | lose            (node, or node_watch for lose/interrupt)

Every method returning ``bool`` means the same thing: False is "refused, a later attempt owns
the unit: stop, do not report". LaunchNode, the node agent, node_watch and the tests' simulated
node all speak through this object, so no caller spells a condition of its own.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from workflow.ports import MAX_BATCH_MOVES, MissionStore, ShardMove
from workflow.records import FIRST_ATTEMPT, ShardRecord, UnitRecord
from workflow.states import SETTLED_SHARD, ShardStatus, UnitStatus

ERROR_FIELD_CHARS = 4000
# Shard timestamps the timeline draws from, written by the claim and the commit themselves
# (no write of their own); a caller's own value (the node's) wins.
CLAIMED_AT, FINISHED_AT, QUEUED_AT = "claimedAt", "finishedAt", "queuedAt"
T = TypeVar("T")


@dataclass(frozen=True)
class Commit:
    """A finished shard's DONE move: its attempt-specific result key and what it measured."""

    shard_id: str
    result_key: str
    fields: Mapping[str, Any] = field(default_factory=dict)


def _stamped(name: str, fields: Mapping[str, Any] | None) -> dict[str, Any]:
    return {name: time.time(), **(fields or {})}


def _done_fields(commit: Commit) -> dict[str, Any]:
    """A DONE move's fields: what the node measured, the result key, when it finished."""
    return {**_stamped(FINISHED_AT, commit.fields), "resultKey": commit.result_key}


def _chunks(items: list[T]) -> Iterator[list[T]]:
    for i in range(0, len(items), MAX_BATCH_MOVES):
        yield items[i : i + MAX_BATCH_MOVES]


@dataclass(frozen=True)
class UnitAttempt:
    store: MissionStore
    mission_id: str
    unit_id: str
    number: int

    # ---- LaunchNode -----------------------------------------------------------------------

    @classmethod
    def begin(
        cls,
        store: MissionStore,
        mission_id: str,
        unit_id: str,
        number: int,
        *,
        task_token: str,
        capacity: str,
    ) -> tuple[UnitAttempt, UnitRecord, int]:
        """Make attempt ``number`` current; returns it, the unit and how many shards it must
        run. ``Attempt.Superseded`` when the unit already has this (other token) or a later
        one.

        Attempt 1 (the unit's first begin, or a client's retry of that same call: a later
        begin is always a later attempt) reads no shard: the plan wrote every one QUEUED for
        attempt 1 and no node could claim one before this attempt was current. That read (a
        Query of the whole unit, ~0.3-0.5 s at 500 shards in the local cloud) sat between
        the plan and the first node's boot."""
        unit = store.begin_attempt(mission_id, unit_id, number, task_token, capacity)
        attempt = cls(store, mission_id, unit_id, number)
        if number == FIRST_ATTEMPT:
            return attempt, unit, unit.shard_to - unit.shard_from + 1
        return attempt, unit, attempt._queue_open_shards(unit)

    def _queue_open_shards(self, unit: UnitRecord) -> int:
        """Every unsettled shard → QUEUED at this attempt, ``MAX_BATCH_MOVES`` per transaction
        (a relaunch of a unit with thousands of open shards costs tens of writes, not
        thousands); how many are queued. A shard refused meanwhile (a late commit of an older
        attempt settled it) is left out and the rest of its batch retried."""
        open_shards = [
            s for s in self.store.unit_shards_not_done(unit) if s.status not in SETTLED_SHARD
        ]
        ready = [
            s for s in open_shards if s.status is ShardStatus.QUEUED and s.attempt == self.number
        ]
        ready_ids = {s.shard_id for s in ready}  # by id: comparing records is O(n²) here
        todo = [s for s in open_shards if s.shard_id not in ready_ids]
        # queuedAt dates the requeue: an older attempt's claim (claimedAt, instanceId) stays
        # on the item, and is older than this.
        queued = {QUEUED_AT: time.time()}
        for batch in _chunks(todo):
            chunk = batch
            while chunk:
                moves = [ShardMove(s.shard_id, ShardStatus.QUEUED, queued) for s in chunk]
                refused = self.store.move_shards(
                    self.mission_id, moves, attempt=self.number, older_attempts=True
                )
                if not refused:
                    ready.extend(chunk)
                    break
                chunk = [s for s in chunk if s.shard_id not in refused]
        return len(ready)

    def note_launch(self, instance_id: str, instance_type: str | None) -> bool:
        return self._set_unit({"instanceId": instance_id, "instanceType": instance_type})

    def note_capacity_refusals(self, refusals: int) -> bool:
        """Spot capacity refused ``refusals`` times so far (only this attempt writes it)."""
        return self._set_unit({"capacityRefusals": refusals})

    # ---- the node -------------------------------------------------------------------------

    def start(self, instance_id: str) -> bool:
        return self._set_unit(
            {
                "status": UnitStatus.RUNNING.value,
                "instanceId": instance_id,
                "nodeStartedAt": time.time(),
            }
        )

    def shards_to_run(self, unit: UnitRecord) -> list[ShardRecord]:
        """The unit's shards that ``begin`` queued for this attempt."""
        return [
            s
            for s in self.store.unit_shards(unit)
            if s.status is ShardStatus.QUEUED and s.attempt == self.number
        ]

    def claim(self, shard_id: str, fields: Mapping[str, Any] | None = None) -> bool:
        return self._move(shard_id, ShardStatus.RUNNING, _stamped(CLAIMED_AT, fields))

    def claim_many(self, shard_ids: Sequence[str], fields: Mapping[str, Any]) -> bool:
        """Claim shards ``MAX_BATCH_MOVES`` per transaction, each under its own condition.
        False (superseded) as soon as one is refused: only a later attempt moves our shards."""
        stamped = _stamped(CLAIMED_AT, fields)
        for chunk in _chunks(list(shard_ids)):
            moves = [ShardMove(shard_id, ShardStatus.RUNNING, stamped) for shard_id in chunk]
            if self.store.move_shards(self.mission_id, moves, attempt=self.number):
                return False
        return True

    def progress(self, shard_id: str, position: int) -> bool:
        return self._move(shard_id, ShardStatus.RUNNING, {"position": position})

    def commit(self, shard_id: str, result_key: str, fields: Mapping[str, Any]) -> bool:
        """RUNNING → DONE with its result key. A refusal that is the SDK's retry of a commit
        the server had applied (DONE by this attempt with this very key) counts as done."""
        commit = Commit(shard_id, result_key, fields)
        return self._move(shard_id, ShardStatus.DONE, _done_fields(commit)) or self._is_mine(commit)

    def commit_many(self, commits: Sequence[Commit]) -> tuple[list[str], bool]:
        """Commit shards ``MAX_BATCH_MOVES`` per transaction: (committed ids, superseded).
        A refused shard that is already ours (the SDK's retry of an applied commit) is
        dropped from its batch and counted; any other refusal means superseded: stop."""
        committed: list[str] = []
        for batch in _chunks(list(commits)):
            chunk = batch
            while chunk:
                moves = [ShardMove(c.shard_id, ShardStatus.DONE, _done_fields(c)) for c in chunk]
                refused = set(self.store.move_shards(self.mission_id, moves, attempt=self.number))
                if not refused:
                    committed.extend(c.shard_id for c in chunk)
                    break
                mine = [c for c in chunk if c.shard_id in refused and self._is_mine(c)]
                if len(mine) < len(refused):
                    return committed, True
                committed.extend(c.shard_id for c in mine)
                chunk = [c for c in chunk if c.shard_id not in refused]
        return committed, False

    def _is_mine(self, commit: Commit) -> bool:
        current = self.store.get_shard(self.mission_id, commit.shard_id)
        return (
            current is not None
            and current.status is ShardStatus.DONE
            and current.attempt == self.number
            and current.result_key == commit.result_key
        )

    def fail_shard(self, shard_id: str, cause: str) -> bool:
        fields = {"error": cause[-ERROR_FIELD_CHARS:], FINISHED_AT: time.time()}
        return self._move(shard_id, ShardStatus.FAILED, fields)

    def interrupt_shard(
        self, shard_id: str, checkpoint_key: str | None = None, position: int | None = None
    ) -> bool:
        fields: dict[str, Any] = {"interruptedAt": time.time()}
        if checkpoint_key is not None:
            fields["checkpointKey"] = checkpoint_key
        if position is not None:
            fields["position"] = position
        return self._move(shard_id, ShardStatus.INTERRUPTED, fields)

    def succeed(self) -> bool:
        return self._set_unit({"status": UnitStatus.SUCCEEDED.value, "finishedAt": time.time()})

    def fail(self, cause: str) -> bool:
        return self._set_unit(
            {"status": UnitStatus.FAILED.value, "error": cause[-ERROR_FIELD_CHARS:]}
        )

    def interrupt(self, detail: str | None = None) -> bool:
        """The unit ends INTERRUPTED; the attempt joins the unit's set of interrupted ones
        (which the next launch counts to choose On-Demand)."""
        self.note_interruption()
        return self._set_unit({"status": UnitStatus.INTERRUPTED.value, "interruption": detail})

    def lose(self) -> bool:
        return self._set_unit({"status": UnitStatus.LOST.value})

    # ---- node_watch -------------------------------------------------------------------------

    def note_interruption(self) -> None:
        """Idempotent (a set): the node and node_watch may both say so, EventBridge twice."""
        self.store.note_interruption(self.mission_id, self.unit_id, self.number)

    # ---- the writes -------------------------------------------------------------------------

    def _move(
        self, shard_id: str, target: ShardStatus, fields: Mapping[str, Any] | None = None
    ) -> bool:
        return self.store.move_shard(
            self.mission_id, shard_id, target, attempt=self.number, fields=fields
        )

    def _set_unit(self, fields: Mapping[str, Any]) -> bool:
        return self.store.set_unit(self.mission_id, self.unit_id, self.number, fields)


def fail_open_shards(store: MissionStore, unit: UnitRecord, cause: str) -> int:
    """RecordUnitFailure: every unsettled shard of the unit → FAILED, each fenced by its own
    attempt (whichever attempt last held it); returns how many moved."""
    failed = 0
    for shard in store.unit_shards_not_done(unit):
        if shard.status in SETTLED_SHARD:
            continue
        moved = store.move_shard(
            unit.mission_id,
            shard.shard_id,
            ShardStatus.FAILED,
            attempt=shard.attempt,
            fields={"error": cause[-ERROR_FIELD_CHARS:], FINISHED_AT: time.time()},
        )
        failed += moved
    return failed
