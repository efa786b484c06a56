"""One attempt of one work unit: claim, run, checkpoint and commit its queued shards.

Every write is conditional on this attempt (``move_shard``): a refused claim, progress write
or commit means a later attempt owns the unit, so the node stops and stays silent. Results go
to attempt-specific keys and count only once committed; checkpoints are uploaded as they come
and a shard resumes from the newest checkpoint any attempt left behind.

Claims and commits go in batches (``UnitAttempt.claim_many``/``commit_many``: up to 100
shards per DynamoDB transaction, each still conditioned on this attempt). The node claims up to
``CLAIM_AHEAD`` shards at once, the next batch on a claimer thread before the current one
runs out; a committer thread commits, in one transaction, every shard that finished within
``COMMIT_LINGER_SECONDS`` of the first one waiting (sooner when a batch is full or the node
stops), and small results share one S3 object (``workflow.result_packs``). So short shards
cost a fraction of a write each and a slot never idles through the bookkeeping round trips.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Mapping
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from botocore.exceptions import BotoCoreError, ClientError

from node_agent.checkpoints import CheckpointStore, CheckpointUploader
from node_agent.identity import NodeIdentity
from node_agent.logs import get_logger
from node_agent.runner import (
    CheckpointEvent,
    PoolEvent,
    ProgressEvent,
    ShardPool,
    ShardTask,
    WorkerOutcome,
)
from node_agent.shutdown import Shutdown, StopCause
from workflow.attempt import ERROR_FIELD_CHARS, Commit, UnitAttempt
from workflow.aws.services import Services
from workflow.keys import KIND_SHARD_RESULT, kind_tagging, shard_pack_key, shard_result_key
from workflow.params import MissionParams
from workflow.ports import MAX_BATCH_MOVES
from workflow.records import ShardRecord
from workflow.result_packs import packable, write_pack
from workflow.workloads.base import WorkInputs

_WAIT_SECONDS: Final = 0.2
CLAIM_AHEAD: Final = 50  # shards claimed per transaction (claimed, not yet started, is RUNNING)
# How long a finished shard may wait for others to share its commit: short next to any real
# shard, long next to a DynamoDB round trip (a 20 ms shard otherwise commits alone). Each
# commit is also a result pack that RsltProc reads back: at 0.25 s, 1,000 shards of 20 ms on
# two nodes made ~90 packs and 95 transactions; at 0.5 s ~45 and 60 (RsltProc 0.85 -> 0.7 s).
COMMIT_LINGER_SECONDS: Final = 0.5
# One committer runs at a time (``_committing``); two futures overlap only while one ends as
# the next starts. The slots wait on ``MAX_OUTBOX``, not on this.
MOST_PENDING_COMMITS: Final = 2
MAX_OUTBOX: Final = 4 * MAX_BATCH_MOVES  # finished, uncommitted shards before the slots wait
UPLOAD_THREADS: Final = 8  # a batch's result uploads in parallel (each a PutObject round trip)
# Shards handed to the pool per slot: the next one waits in the pool's queue while a worker
# runs the current one, so a worker never idles while the agent records a result and starts
# the next shard (~3 ms per shard of a 20 ms shard, measured with one in hand per slot).
IN_HAND_PER_SLOT: Final = 2
log = get_logger("unit")


@dataclass
class UnitReport:
    """What this attempt did; the agent turns it into DynamoDB moves and the token report."""

    done: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    stopped: dict[str, tuple[str | None, int]] = field(default_factory=dict)
    unstarted: list[str] = field(default_factory=list)
    abandoned: list[str] = field(default_factory=list)
    resumed: dict[str, int] = field(default_factory=dict)
    redo_items: int = 0
    result_bytes: int = 0
    shard_seconds: float = 0.0


@dataclass
class _Active:
    """A claimed shard whose progress may still be written (closed before its commit)."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    open: bool = True
    last_write: float = 0.0
    written: bool = False  # a position is recorded (the next attempt looks for checkpoints)


def numeric_stats(stats: Mapping[str, Any]) -> dict[str, int | float]:
    """The numbers of a workload's stats (tails of stdout/stderr stay out of DynamoDB)."""
    return {
        k: v for k, v in stats.items() if isinstance(v, int | float) and not isinstance(v, bool)
    }


def redo_items(previous_position: int | None, resumed_from: int) -> int:
    """Items an earlier attempt had reached beyond the checkpoint we resume from."""
    if previous_position is None:
        return 0
    return max(0, previous_position - resumed_from)


class UnitRun:
    def __init__(
        self,
        *,
        svc: Services,
        ident: NodeIdentity,
        attempt: UnitAttempt,
        params: MissionParams,
        inputs: WorkInputs,
        pool: ShardPool,
        shutdown: Shutdown,
        work_dir: Path,
        progress_seconds: float,
        stop_grace_seconds: float,
    ) -> None:
        self._svc = svc
        self._ident = ident
        self._attempt = attempt
        self._params = params
        self._inputs = inputs
        self._pool = pool
        self._shutdown = shutdown
        self._work_dir = work_dir
        self._progress_seconds = progress_seconds
        self._grace = stop_grace_seconds
        self.checkpoints = CheckpointStore(svc.s3, svc.settings.result_bucket, ident.mission_id)
        self.uploader = CheckpointUploader(self.checkpoints, ident.attempt)
        self.report = UnitReport()
        self._active: dict[str, _Active] = {}
        self._active_lock = threading.Lock()
        self._committer = ThreadPoolExecutor(1, thread_name_prefix="commit")
        self._uploaders = ThreadPoolExecutor(UPLOAD_THREADS, thread_name_prefix="upload")
        self._commits: list[Future[None]] = []
        self._outbox: list[tuple[ShardRecord, WorkerOutcome]] = []
        self._outbox_lock = threading.Lock()
        self._flush = threading.Event()  # commit now: a full batch, a stop, or the end
        self._closing = False
        self._committing = False  # a _record is queued or running (under _outbox_lock)
        self._claimed: set[str] = set()
        self._claimer = ThreadPoolExecutor(1, thread_name_prefix="claim")
        self._claim_in_flight: Future[list[str] | None] | None = None
        self._started: dict[str, dict[str, Any]] = {}

    # ---- the loop ------------------------------------------------------------------------

    def run(self, shards: list[ShardRecord]) -> UnitReport:
        """Run the shards; returns once every outcome is recorded (commits included)."""
        try:
            self._run(shards)
        finally:
            self._closing = True  # no more results: commit what waits without lingering
            self._flush.set()
            self._claimer.shutdown(wait=True)  # no claim lands after the report
            self._committer.shutdown(wait=True)
            self._uploaders.shutdown(wait=True)
        self._settle_commits(most_pending=0)  # all done now; one that raised fails the attempt
        return self.report

    def _settle_commits(self, most_pending: int) -> None:
        """Keep the commit backlog short (results count only once committed) and raise a
        commit's error here, as the inline commit did."""
        unsettled = [f for f in self._commits if not f.done()]
        if len(unsettled) > most_pending:
            self._flush.set()
            wait(unsettled[: len(unsettled) - most_pending])  # FIFO: the oldest finish first
        for commit in [f for f in self._commits if f.done()]:
            self._commits.remove(commit)
            commit.result()

    def _run(self, shards: list[ShardRecord]) -> None:
        pending = deque(sorted(shards, key=lambda s: s.index))
        running: dict[Future[WorkerOutcome], ShardRecord] = {}
        deadline: float | None = None
        while pending or running:
            in_hand = self._pool.slots * IN_HAND_PER_SLOT
            while pending and len(running) < in_hand and not self._shutdown.stopping:
                self._settle_commits(most_pending=MOST_PENDING_COMMITS)
                shard = pending.popleft()
                future = self._start(shard, pending)
                if future is None:
                    pending.appendleft(shard)
                    break
                running[future] = shard
            if not running:
                break
            if self._shutdown.stopping and deadline is None:
                deadline = time.monotonic() + self._grace
                log.warning(
                    "stopping shards",
                    extra={
                        "cause": str(self._shutdown.cause),
                        "detail": self._shutdown.detail,
                        "running": sorted(s.shard_id for s in running.values()),
                    },
                )
            if deadline is not None and time.monotonic() > deadline:
                stuck = sorted(s.shard_id for s in running.values())
                log.error("shards did not stop within the grace period", extra={"shards": stuck})
                break
            finished, _ = wait(running, timeout=_WAIT_SECONDS, return_when=FIRST_COMPLETED)
            for future in finished:
                self._finish(running.pop(future), future.result())
        self.report.unstarted = [s.shard_id for s in pending]
        self.report.abandoned = [s.shard_id for s in running.values()]

    # ---- start ---------------------------------------------------------------------------

    def _claim_ahead(self, shard: ShardRecord, pending: deque[ShardRecord]) -> bool:
        """Make sure ``shard`` is claimed, then keep the next claim in flight: once fewer
        than half of ``CLAIM_AHEAD`` claimed shards are left to start, the next
        ``CLAIM_AHEAD`` are claimed on the claimer thread, so a slot never waits for a claim
        transaction (each one ~0.3-2 s in a busy local cloud). False when superseded."""
        if not self._harvest_claim(wait=shard.shard_id not in self._claimed):
            return False
        if shard.shard_id not in self._claimed:
            batch = [shard.shard_id, *self._unclaimed(pending, CLAIM_AHEAD - 1)]
            if not self._claim(batch):
                return False
        if self._claim_in_flight is None and not self._shutdown.stopping:
            ahead = sum(1 for s in pending if s.shard_id in self._claimed)
            if ahead < CLAIM_AHEAD // 2:
                batch = self._unclaimed(pending, CLAIM_AHEAD)
                if batch:
                    self._claim_in_flight = self._claimer.submit(self._claim_quietly, batch)
        return True

    def _unclaimed(self, pending: deque[ShardRecord], most: int) -> list[str]:
        out: list[str] = []
        for s in pending:
            if len(out) >= most:
                break
            if s.shard_id not in self._claimed:
                out.append(s.shard_id)
        return out

    def _claim(self, batch: list[str]) -> bool:
        if self._claim_quietly(batch) is None:
            self._supersede(f"claim of {batch[0]} and {len(batch) - 1} more refused")
            return False
        self._claimed.update(batch)
        return True

    def _claim_quietly(self, batch: list[str]) -> list[str] | None:
        """On the claimer thread: the ids claimed, or None when refused (superseded)."""
        fields = {"instanceId": self._ident.instance_id, "claimedAt": time.time()}
        return batch if self._attempt.claim_many(batch, fields) else None

    def _harvest_claim(self, *, wait: bool) -> bool:
        """Take the claim in flight into ``_claimed`` once it is done (or now, with
        ``wait``); False when it was refused. Its error is raised here, as an inline
        claim's would be."""
        future = self._claim_in_flight
        if future is None or not (wait or future.done()):
            return True
        self._claim_in_flight = None
        batch = future.result()
        if batch is None:
            self._supersede("a claim made ahead was refused")
            return False
        self._claimed.update(batch)
        return True

    def _start(
        self, shard: ShardRecord, pending: deque[ShardRecord]
    ) -> Future[WorkerOutcome] | None:
        """Claim the shard (in a batch, conditional) and hand it to a worker; None when refused."""
        if not self._claim_ahead(shard, pending):
            return None
        ref, resume = self.checkpoints.resume_point(
            shard.shard_id, shard.start, shard.end, claimed_before=shard.position is not None
        )
        resumed_from = ref.position if ref else shard.start
        redo = redo_items(shard.position, resumed_from)
        # Written with the commit, each field a SET clause that moto spends ~2 ms on per
        # item: how the shard resumed only when it did (the DONE item is read for the
        # timeline and the result, never for a position).
        started: dict[str, Any] = {"startedAt": time.time()}
        if ref is not None or redo:
            started.update(resumedFrom=resumed_from, redoItems=redo)
        if ref is not None:
            started["resumedCheckpoint"] = ref.key
        with self._active_lock:
            # The first progress write waits a full interval (a shard shorter than that costs
            # no progress write at all); what the start found is written with the commit.
            self._active[shard.shard_id] = _Active(last_write=time.monotonic())
            self._started[shard.shard_id] = started
        if ref is not None:
            self.report.resumed[shard.shard_id] = resumed_from
            self.report.redo_items += redo
        log.info(
            "shard started",
            extra={
                "shardId": shard.shard_id,
                "range": [shard.start, shard.end],
                "resumedFrom": resumed_from,
                "checkpoint": ref.key if ref else None,
                "redoItems": redo,
            },
        )
        task = ShardTask(
            workload=self._params.workload,
            shard=shard.range,
            inputs=self._inputs,
            work_dir=self._work_dir / shard.shard_id,
            resume=resume,
            checkpoint_every=self._params.checkpoint_every,
        )
        return self._pool.submit(task)

    # ---- outcomes ------------------------------------------------------------------------

    def _close(self, shard_id: str) -> None:
        with self._active_lock:
            active = self._active.pop(shard_id, None)
        if active is not None:
            with active.lock:
                active.open = False

    def _finish(self, shard: ShardRecord, outcome: WorkerOutcome) -> None:
        self._close(shard.shard_id)
        self.report.shard_seconds += outcome.seconds
        if outcome.kind == "stopped":
            self._stopped(shard, outcome)
            return
        with self._outbox_lock:
            self._outbox.append((shard, outcome))
            waiting = len(self._outbox)
            if waiting >= MAX_BATCH_MOVES or self._shutdown.stopping:
                self._flush.set()
            start = not self._committing  # one committer drains the outbox until it is empty
            self._committing = True
        if start:
            self._commits.append(self._committer.submit(self._record))
        # Results count only once committed: when the committer falls behind, the slots wait.
        self._settle_commits(most_pending=0 if waiting >= MAX_OUTBOX else MOST_PENDING_COMMITS)

    def _record(self) -> None:
        """On the committer thread, until the outbox is empty: wait up to
        ``COMMIT_LINGER_SECONDS`` for more results (before every batch: shards that finish
        one per commit round trip would otherwise commit one at a time), then commit up to
        ``MAX_BATCH_MOVES`` (uploads first, in parallel) and record failures, in finish order."""
        while True:
            if not self._closing:
                self._flush.wait(COMMIT_LINGER_SECONDS)
            with self._outbox_lock:
                batch = self._outbox[:MAX_BATCH_MOVES]
                del self._outbox[:MAX_BATCH_MOVES]
                self._flush.clear()
                self._committing = bool(batch)  # empty: the next result starts a committer
            if not batch:
                return
            if self._shutdown.superseded:
                log.warning("superseded: outcomes not committed", extra={"shards": len(batch)})
                return
            if not self._record_batch(batch):
                return

    def _record_batch(self, batch: list[tuple[ShardRecord, WorkerOutcome]]) -> bool:
        """False when superseded (nothing more is ours to write)."""
        done = [(s, o, o.result) for s, o in batch if o.kind == "done" and o.result]
        sizes = [result.stat().st_size for _, _, result in done]
        uploaded = self._uploaders.map(
            lambda group: self._upload([done[i] for i in group], sizes[group[0]]),
            packable(sizes),
        )
        uploads = [commit for group in uploaded for commit in group]
        if uploads and not self._commit(uploads):
            return False
        for shard, outcome in batch:
            if not (outcome.kind == "done" and outcome.result):
                self._failed(shard, outcome)
        return not self._shutdown.superseded

    def _stopped(self, shard: ShardRecord, outcome: WorkerOutcome) -> None:
        key, _ = self.uploader.latest(shard.shard_id)
        if outcome.checkpoint:
            key = self.uploader.offer(shard.shard_id, outcome.checkpoint, outcome.position)
        self.report.stopped[shard.shard_id] = (key, outcome.position)
        log.info(
            "shard stopped with a checkpoint",
            extra={"shardId": shard.shard_id, "position": outcome.position, "checkpoint": key},
        )

    def _upload(
        self, done: list[tuple[ShardRecord, WorkerOutcome, Path]], first_size: int
    ) -> list[tuple[Commit, int]]:
        """One object for the group (lifecycle-expired, attempt-specific key): a shard's own
        result (``first_size`` bytes), or a pack of small ones; the commits that name it."""
        ident = self._ident
        first, _, first_result = done[0]
        if len(done) == 1:
            key = shard_result_key(
                ident.mission_id, first.shard_id, ident.attempt, first_result.suffix
            )
            source = first_result
            places = [(0, first_size, False)]
        else:
            key = shard_pack_key(
                ident.mission_id, first.shard_id, ident.attempt, first_result.suffix
            )
            source = self._work_dir / f"pack-{first.shard_id}{first_result.suffix}"
            source.parent.mkdir(parents=True, exist_ok=True)
            members = write_pack([(s.shard_id, result) for s, _, result in done], source)
            places = [(m.offset, m.length, True) for m in members]
        self._svc.objects.upload(
            source, self._svc.settings.result_bucket, key, tagging=kind_tagging(KIND_SHARD_RESULT)
        )
        if len(done) > 1:
            source.unlink(missing_ok=True)
        commits: list[tuple[Commit, int]] = []
        for (shard, outcome, _), (offset, size, packed) in zip(done, places, strict=True):
            fields = {
                **self._started.pop(shard.shard_id, {}),
                "resultBytes": size,
                "finishedAt": time.time(),
                "seconds": round(outcome.seconds, 3),
                "stats": numeric_stats(outcome.stats),
            }
            if packed:
                fields["resultOffset"] = offset
            commits.append((Commit(shard.shard_id, key, fields), size))
        return commits

    def _commit(self, uploads: list[tuple[Commit, int]]) -> bool:
        """One batch of DONE moves; False when superseded (the rest is not ours to write)."""
        committed, superseded = self._attempt.commit_many([c for c, _ in uploads])
        ours = set(committed)
        for commit, size in uploads:
            if commit.shard_id in ours:
                self.report.done.append(commit.shard_id)
                self.report.result_bytes += size
        log.info("shards done", extra={"shards": committed, "batch": len(uploads)})
        if superseded:
            self._supersede(f"commit of {len(uploads) - len(committed)} shards refused")
        return not superseded

    def _failed(self, shard: ShardRecord, outcome: WorkerOutcome) -> None:
        cause = outcome.cause[-ERROR_FIELD_CHARS:]
        if not self._attempt.fail_shard(shard.shard_id, cause):
            self._supersede(f"failure of {shard.shard_id} refused")
            return
        self.report.failed[shard.shard_id] = cause
        log.error("shard failed", extra={"shardId": shard.shard_id, "cause": cause})

    def _supersede(self, why: str) -> None:
        log.warning("attempt superseded", extra={"reason": why})
        self._shutdown.request(StopCause.SUPERSEDED, why)

    # ---- events from the workers (EventPump thread) ----------------------------------------

    def on_event(self, event: PoolEvent) -> None:
        try:
            if isinstance(event, CheckpointEvent):
                self.uploader.offer(event.shard_id, event.data, event.position)
                # A checkpoint exists now: record a position at once if none is, so the next
                # attempt knows to look for it (``resume_point``'s ``claimed_before``).
                self._progress(event.shard_id, event.position, first_only=True)
            elif isinstance(event, ProgressEvent):
                self._progress(event.shard_id, event.position)
        except (ClientError, BotoCoreError) as exc:
            # A lost progress write or periodic checkpoint is retried by the next one.
            log.warning("could not record shard progress", extra={"error": str(exc)})

    def _progress(self, shard_id: str, position: int, *, first_only: bool = False) -> None:
        with self._active_lock:
            active = self._active.get(shard_id)
        if active is None:
            return
        with active.lock:
            now = time.monotonic()
            due = (
                not active.written
                if first_only
                else now - active.last_write >= self._progress_seconds
            )
            if not active.open or not due:
                return
            active.last_write = now
            active.written = True
            written = self._attempt.progress(shard_id, position)
        if not written:
            self._supersede(f"progress write of {shard_id} refused")
