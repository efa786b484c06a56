"""The attempt protocol (``workflow.attempt.UnitAttempt``) under any interleaving of attempts.

Hypothesis drives a unit through random steps of several attempts at once (a late node of an
old attempt still writing while a relaunch runs) and checks what fencing promises: a write
lands only for the shard's current attempt, a DONE shard never changes, and nothing an old
attempt does can move a shard that a later attempt has queued.
"""

from __future__ import annotations

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from tests.fakes import FakeCloud
from tests.unit.test_use_cases_on_fakes import start
from workflow.attempt import UnitAttempt, fail_open_shards
from workflow.errors import AttemptSuperseded
from workflow.records import ShardRecord, UnitRecord
from workflow.states import SETTLED_SHARD, ShardStatus

SHARDS = 4
UNIT = "u0000"


class AttemptsInterleaved(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.cloud = FakeCloud()
        self.mission_id = start(self.cloud, shards=SHARDS, maxNodes=1)
        self.attempts: list[UnitAttempt] = []
        self.done_by: dict[str, tuple[int, str]] = {}  # shard → (attempt, result key)
        self.claimed: set[tuple[int, str]] = set()

    def _shard(self, index: int) -> ShardRecord:
        shards = self.cloud.store.list_shards(self.mission_id)
        return sorted(shards, key=lambda s: s.index)[index]

    def _unit(self) -> UnitRecord:
        return self.cloud.store.get_unit(self.mission_id, UNIT)

    @rule()
    def begin_next(self) -> None:
        number = len(self.attempts) + 1
        attempt, _, queued = UnitAttempt.begin(
            self.cloud.store,
            self.mission_id,
            UNIT,
            number,
            task_token=f"t{number}",
            capacity="spot",
        )
        self.attempts.append(attempt)
        unsettled = [
            s for s in self.cloud.store.unit_shards(self._unit()) if s.status not in SETTLED_SHARD
        ]
        assert queued == len(unsettled)
        assert all(s.status is ShardStatus.QUEUED and s.attempt == number for s in unsettled)

    @precondition(lambda self: self.attempts)
    @rule(data=st.data())
    def an_old_attempt_cannot_begin_again(self, data: st.DataObject) -> None:
        old = data.draw(st.sampled_from(self.attempts))
        try:
            UnitAttempt.begin(
                self.cloud.store,
                self.mission_id,
                UNIT,
                old.number,
                task_token="other",
                capacity="spot",
            )
        except AttemptSuperseded:
            return
        raise AssertionError(f"attempt {old.number} began twice with another token")

    @precondition(lambda self: self.attempts)
    @rule(data=st.data(), index=st.integers(0, SHARDS - 1))
    def claim(self, data: st.DataObject, index: int) -> None:
        attempt = data.draw(st.sampled_from(self.attempts))
        before = self._shard(index)
        if attempt.claim(before.shard_id, {"position": before.start}):
            assert before.attempt == attempt.number and before.status not in SETTLED_SHARD
            self.claimed.add((attempt.number, before.shard_id))

    @precondition(lambda self: self.attempts)
    @rule(data=st.data(), index=st.integers(0, SHARDS - 1))
    def commit(self, data: st.DataObject, index: int) -> None:
        attempt = data.draw(st.sampled_from(self.attempts))
        before = self._shard(index)
        key = f"results/{before.shard_id}.a{attempt.number}"
        if attempt.commit(before.shard_id, key, {"resultBytes": 1}):
            assert (attempt.number, before.shard_id) in self.claimed, "DONE without a claim"
            previous = self.done_by.setdefault(before.shard_id, (attempt.number, key))
            assert previous == (attempt.number, key), f"{before.shard_id} committed twice"

    @precondition(lambda self: self.attempts)
    @rule(data=st.data(), index=st.integers(0, SHARDS - 1), progress=st.booleans())
    def progress_or_interrupt(self, data: st.DataObject, index: int, progress: bool) -> None:
        attempt = data.draw(st.sampled_from(self.attempts))
        before = self._shard(index)
        moved = (
            attempt.progress(before.shard_id, before.start + 1)
            if progress
            else attempt.interrupt_shard(before.shard_id, None, before.start)
        )
        if moved:
            assert before.attempt == attempt.number and before.status not in SETTLED_SHARD
            if progress:  # a progress write is a RUNNING move: on a QUEUED shard it claims it
                self.claimed.add((attempt.number, before.shard_id))

    @precondition(lambda self: self.attempts)
    @rule()
    def record_unit_failure(self) -> None:
        fail_open_shards(self.cloud.store, self._unit(), "Node.Lost: gone")

    @invariant()
    def done_shards_never_change(self) -> None:
        for shard in self.cloud.store.list_shards(self.mission_id):
            if shard.shard_id in self.done_by:
                attempt, key = self.done_by[shard.shard_id]
                assert (shard.status, shard.attempt, shard.result_key) == (
                    ShardStatus.DONE,
                    attempt,
                    key,
                )

    @invariant()
    def the_unit_is_at_its_latest_attempt(self) -> None:
        if self.attempts:
            assert self._unit().attempt == len(self.attempts)


TestAttemptsInterleaved = AttemptsInterleaved.TestCase
TestAttemptsInterleaved.settings = settings(max_examples=60, stateful_step_count=30, deadline=None)
