"""The shard execution pool: one worker PROCESS per slot (RDKit is CPU-bound, the GIL is not
released for most of a molsim shard), with the workload's callbacks bridged to the agent.

The agent and its workers share one ``multiprocessing`` stop ``Event`` (``stop_requested``)
and one ``Queue`` on which workers send periodic checkpoints and progress; outcomes come
back as plain ``WorkerOutcome`` values (the named errors' classes do not pickle). Workers are
started with ``spawn`` because the agent has threads (heartbeat, watcher, boto3 pools), and
ignore SIGTERM: that signal is the agent's cue for a warm shutdown, which the workers take
part in through the stop flag.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import queue
import signal
import threading
import time
import traceback
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import Future, ProcessPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, Literal

from node_agent import proctree
from workflow.errors import ShardFailed, ShardTimedOut
from workflow.workloads import load_workload
from workflow.workloads.base import (
    ShardContext,
    ShardDone,
    ShardRange,
    ShardStopped,
    WorkInputs,
    Workload,
)

PROGRESS_EVERY_SECONDS: Final = 0.25  # worker-side throttle; the agent throttles DynamoDB
CAUSE_TAIL: Final = 4000
_WAKE: Final = "lighthpc-pool-wake"  # ShardPool.wake's marker: no worker sends a str
_PARENT_CHECK_SECONDS: Final = 1.0
# The worker's own deadline is ``timeoutSeconds + graceSeconds`` plus this margin, so the
# command workload's SIGTERM-then-SIGKILL (at the same two options) ends its shard first.
TIMEOUT_MARGIN_SECONDS: Final = 1.0

OutcomeKind = Literal["done", "stopped", "failed"]


@dataclass(frozen=True)
class ShardTask:
    """Everything a worker needs to run one shard (picklable)."""

    workload: str
    shard: ShardRange
    inputs: WorkInputs
    work_dir: Path
    resume: bytes | None = None
    checkpoint_every: int = 250


@dataclass(frozen=True)
class WorkerOutcome:
    shard_id: str
    kind: OutcomeKind
    seconds: float
    result: Path | None = None
    stats: Mapping[str, Any] = field(default_factory=dict)
    checkpoint: bytes = b""
    position: int = 0
    cause: str = ""


@dataclass(frozen=True)
class CheckpointEvent:
    shard_id: str
    data: bytes
    position: int


@dataclass(frozen=True)
class ProgressEvent:
    shard_id: str
    position: int


@dataclass(frozen=True)
class WorkerStarted:
    pid: int


PoolEvent = CheckpointEvent | ProgressEvent | WorkerStarted

# ---- worker side (runs in the spawned processes) ------------------------------------------

_stop: Any = None
_events: Any = None
_workloads: dict[str, Workload] = {}


def _ignore_signal(_signum: int, _frame: object) -> None:
    """A handler, not SIG_IGN: handlers reset on exec, so command shards keep SIGTERM."""


def _watch_parent(parent: int) -> None:
    """Exit (and take our children along) when the agent is gone: no orphan computation.

    Polling ``getppid`` is the portable way to notice; PR_SET_PDEATHSIG would kill this
    worker but not the session a ``command`` shard starts.
    """
    while os.getppid() == parent:
        time.sleep(_PARENT_CHECK_SECONDS)
    proctree.kill_tree(os.getpid(), include_root=False)
    os._exit(70)


def init_worker(stop: Any, events: Any, parent: int) -> None:
    global _stop, _events  # per-process state, set once by the pool initializer
    _stop, _events = stop, events
    signal.signal(signal.SIGTERM, _ignore_signal)
    signal.signal(signal.SIGINT, _ignore_signal)
    threading.Thread(target=_watch_parent, args=(parent,), daemon=True).start()
    events.put(WorkerStarted(os.getpid()))


def _workload(name: str) -> Workload:
    if name not in _workloads:
        _workloads[name] = load_workload(name)
    return _workloads[name]


def _context(task: ShardTask) -> ShardContext:
    shard_id = task.shard.shard_id
    last = [0.0]

    def progress(position: int) -> None:
        now = time.monotonic()
        if now - last[0] >= PROGRESS_EVERY_SECONDS:
            last[0] = now
            _events.put(ProgressEvent(shard_id, position))

    def save_checkpoint(data: bytes, position: int) -> None:
        _events.put(CheckpointEvent(shard_id, bytes(data), position))

    return ShardContext(
        work_dir=task.work_dir,
        resume=task.resume,
        stop_requested=_stop.is_set,
        save_checkpoint=save_checkpoint,
        progress=progress,
        checkpoint_every=task.checkpoint_every,
    )


def shard_timeout(options: Mapping[str, Any]) -> float | None:
    """Seconds a shard may run (``shardTimeoutSeconds`` reaches workloads as the options
    ``timeoutSeconds``/``graceSeconds``); None: no per-shard bound, the unit's timeout rules."""
    limit = options.get("timeoutSeconds")
    if not isinstance(limit, int | float) or isinstance(limit, bool) or limit <= 0:
        return None
    grace = options.get("graceSeconds", 0)
    grace = grace if isinstance(grace, int | float) and not isinstance(grace, bool) else 0
    return float(limit) + float(grace) + TIMEOUT_MARGIN_SECONDS


@contextmanager
def _deadline(seconds: float | None) -> Iterator[None]:
    """Raise ``Shard.Timeout`` in this worker's main thread after ``seconds`` (SIGALRM: the
    workload needs no cooperation; a C call finishes first, which the input limits keep short)."""
    if seconds is None:
        yield
        return

    def expire(_signum: int, _frame: object) -> None:
        raise ShardTimedOut(f"shard ran past its {seconds - TIMEOUT_MARGIN_SECONDS:g} s limit")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def _warm_up() -> None:
    """A worker's first task: nothing (the process start and the initializer are the point)."""


def run_task(task: ShardTask) -> WorkerOutcome:
    """Run one shard in this worker; every way it can end becomes a ``WorkerOutcome``."""
    began = time.monotonic()
    shard_id = task.shard.shard_id
    task.work_dir.mkdir(parents=True, exist_ok=True)
    try:
        with _deadline(shard_timeout(task.inputs.options)):
            outcome = _workload(task.workload).run(task.shard, task.inputs, _context(task))
    except ShardTimedOut as exc:
        proctree.kill_tree(os.getpid(), include_root=False)  # a command shard's processes too
        cause = f"{exc.error_name}: {exc}"
        return WorkerOutcome(shard_id, "failed", time.monotonic() - began, cause=cause)
    except ShardFailed as exc:
        return WorkerOutcome(shard_id, "failed", time.monotonic() - began, cause=str(exc))
    except Exception as exc:  # noqa: BLE001 - a workload crash is this shard's failure, named
        tail = "".join(traceback.format_exception(exc))[-CAUSE_TAIL:]
        return WorkerOutcome(
            shard_id, "failed", time.monotonic() - began, cause=f"workload crashed: {tail}"
        )
    seconds = time.monotonic() - began
    if isinstance(outcome, ShardStopped):
        return WorkerOutcome(
            shard_id, "stopped", seconds, checkpoint=outcome.checkpoint, position=outcome.position
        )
    if isinstance(outcome, ShardDone):
        return WorkerOutcome(shard_id, "done", seconds, result=outcome.result, stats=outcome.stats)
    return WorkerOutcome(
        shard_id, "failed", seconds, cause=f"workload returned {type(outcome).__name__}"
    )


# ---- agent side ---------------------------------------------------------------------------


class ShardPool:
    """``slots`` worker processes, a shared stop flag and an event stream."""

    def __init__(self, slots: int, *, start_method: str = "spawn") -> None:
        self.slots = max(1, slots)
        context = multiprocessing.get_context(start_method)
        self._stop = context.Event()
        self._events = context.Queue()
        self._executor = ProcessPoolExecutor(
            max_workers=self.slots,
            mp_context=context,
            initializer=init_worker,
            initargs=(self._stop, self._events, os.getpid()),
        )
        self.worker_pids: set[int] = set()
        self.woken = False  # ``wake``'s marker was read: every event sent before it was too

    def submit(self, task: ShardTask) -> Future[WorkerOutcome]:
        return self._executor.submit(run_task, task)

    def warm(self) -> None:
        """Start every worker now (each is a new interpreter: ~0.3 s), while the agent
        stages its inputs, instead of at the first shard."""
        for _ in range(self.slots):
            self._executor.submit(_warm_up)

    def request_stop(self) -> None:
        """Every running shard checkpoints at its next check and returns ``ShardStopped``."""
        self._stop.set()

    @property
    def stop_requested(self) -> bool:
        return bool(self._stop.is_set())

    def wake(self) -> None:
        """Send a marker behind every event already in the stream: a ``next_events`` waiting
        for one returns at once, and ``woken`` then says the stream before it is read."""
        self._events.put(_WAKE)

    def next_events(self, timeout: float) -> list[PoolEvent]:
        """What arrived within ``timeout``: blocks for the first event, then drains."""
        read: list[PoolEvent | str] = []
        try:
            read.append(self._events.get(timeout=timeout))
            while True:
                read.append(self._events.get_nowait())
        except queue.Empty:
            pass
        out = [event for event in read if not isinstance(event, str)]
        self.woken = self.woken or len(out) < len(read)  # the only str is the marker
        for event in out:
            if isinstance(event, WorkerStarted):
                self.worker_pids.add(event.pid)
        return out

    def close(self, grace: float = 5.0) -> None:
        """Shut the workers down, draining their events so they can flush and exit; after
        ``grace`` seconds, kill the stragglers (and their children)."""
        self._executor.shutdown(wait=False, cancel_futures=True)
        deadline = time.monotonic() + grace
        self.next_events(0.05)
        while time.monotonic() < deadline and any(proctree.is_alive(p) for p in self.worker_pids):
            self.next_events(0.05)
        for pid in sorted(self.worker_pids):
            if proctree.is_alive(pid):
                proctree.kill_tree(pid)
        self._events.close()
        self._events.cancel_join_thread()


class EventPump(threading.Thread):
    """Feeds the pool's events to ``handle`` until stopped (after a last drain)."""

    def __init__(self, pool: ShardPool, handle: Callable[[PoolEvent], None]) -> None:
        super().__init__(name="shard-events", daemon=True)
        self._pool = pool
        self._handle = handle
        self._halt = threading.Event()

    def stop(self) -> None:
        """The pump returns once it has handled every event sent before this call: at once,
        not after a last wait of its poll (up to 0.2 s at the end of every unit, on the way
        to its report)."""
        self._halt.set()
        with contextlib.suppress(ValueError, OSError):  # closed: it ends on an empty poll
            self._pool.wake()

    def run(self) -> None:
        while True:
            halted = self._halt.is_set()
            events = self._pool.next_events(0.1)
            for event in coalesce(events):
                self._handle(event)
            if self._pool.woken:
                break  # the marker: every event sent before stop() is handled
            if halted and not events:
                # No marker (a worker killed while writing holds the stream's write lock):
                # a poll begun after the stop and finding nothing ends the pump, as before.
                return
        for event in coalesce(self._pool.next_events(0.0)):  # what arrived behind the marker
            self._handle(event)


def coalesce(events: list[PoolEvent]) -> list[PoolEvent]:
    """Keep only the newest checkpoint and progress per shard (uploads are the slow part)."""
    newest: dict[tuple[str, str], PoolEvent] = {}
    others: list[PoolEvent] = []
    for event in events:
        if isinstance(event, CheckpointEvent | ProgressEvent):
            key = (type(event).__name__, event.shard_id)
            previous = newest.get(key)
            if previous is None or _position(event) >= _position(previous):
                newest[key] = event
        else:
            others.append(event)
    return [*others, *newest.values()]


def _position(event: PoolEvent) -> int:
    return event.position if isinstance(event, CheckpointEvent | ProgressEvent) else -1
