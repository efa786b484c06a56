"""Measurement hooks for the benchmarks (in-process: the embedded cloud runs in this process).

Nothing here changes what the product does; each hook counts and is removed on exit.

* ``ChildHistory`` — moto runs the children of a Distributed Map on one ``EventManager`` per
  Map Run that it then discards (``distributed_iteration_component.py``:
  ``env.event_manager = EventManager()``). We replace that module's ``EventManager`` name with
  a recording subclass and wrap ``DistributedItemProcessorWorker._eval_job`` (one child per
  call, on a Map worker thread) to attribute events to the child; threads that moto starts
  while evaluating a child (task timeouts, callbacks) inherit its record. Events no child
  claims are counted as ``unattributed`` (reported, expected 0). moto emits no
  ExecutionStarted/ExecutionSucceeded for children; AWS does, so the record adds them.
* ``LambdaCounter`` — wraps the handlers registered in ``EmbeddedCloud.lambdas`` and counts
  invocations, in-process seconds and errors per function and ``action``.
* ``ServerCalls`` — wraps moto's ``BaseResponse.call_action`` (the JSON/query protocol
  services: DynamoDB, Step Functions, EC2, Lambda, SNS, ...; not S3, which routes its own
  way) and counts requests and server time per (service, action), plus DynamoDB write
  request units. Requests from the benchmark's own observer clients (marked with the
  ``x-lighthpc-bench`` header, see ``mark_observer``) are excluded.
* ``Sampler`` — a statistical profiler over every thread of this process
  (``sys._current_frames`` every ``interval`` s).
* ``ProcessMemory`` — RSS of this process (``VmHWM``) and the peak of the summed RSS of the
  node processes and their children (sampled from ``/proc``).
"""

from __future__ import annotations

import collections
import json
import os
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Self

OBSERVER_HEADER = "x-lighthpc-bench"
_DMAP_MODULE = (
    "moto.stepfunctions.parser.asl.component.state.exec.state_map.iteration."
    "distributed_iteration_component"
)

# ---------------------------------------------------------------- child execution history

_WORKER_MODULE = (
    "moto.stepfunctions.parser.asl.component.state.exec.state_map.iteration.itemprocessor."
    "distributed_item_processor_worker"
)


@dataclass
class ChildRecord:
    """The events of one child execution (one Map item = one work unit, all its attempts).

    moto emits no ExecutionStarted/ExecutionSucceeded for a Distributed Map child (AWS does:
    each child is a real STANDARD execution), so those two are added here, the terminal one
    from the child program's end state.
    """

    index: int
    events: list[str] = field(default_factory=lambda: ["ExecutionStarted"])

    @property
    def state_entered(self) -> int:
        return sum(1 for e in self.events if e.endswith("StateEntered"))

    @property
    def retries(self) -> int:
        """Task attempts beyond the first of each state entry (each Retry is billed)."""
        scheduled = sum(1 for e in self.events if e == "TaskScheduled")
        return max(0, scheduled - sum(1 for e in self.events if e == "TaskStateEntered"))

    @property
    def transitions(self) -> int:
        """Billed state transitions: execution start + every state entered + every retry."""
        return 1 + self.state_entered + self.retries


class ChildHistory:
    """Records the discarded event history of Distributed Map children (see module doc).

    The Map Run's ``EventManager`` is replaced by a recording subclass; every child runs on a
    Map worker thread inside ``DistributedItemProcessorWorker._eval_job``, which is wrapped to
    open and close the child's record on that thread.
    """

    def __init__(self) -> None:
        self.children: list[ChildRecord] = []
        self.unattributed: collections.Counter[str] = collections.Counter()
        self._current: dict[int, ChildRecord] = {}
        self._lock = threading.Lock()
        self._undo: list[Callable[[], None]] = []

    def __enter__(self) -> ChildHistory:
        import importlib

        from moto.stepfunctions.parser.asl.eval.event.event_manager import EventManager
        from moto.stepfunctions.parser.asl.eval.program_state import ProgramError, ProgramStopped

        recorder = self

        class RecordingEventManager(EventManager):  # type: ignore[misc]
            def add_event(self, context: Any, event_type: Any, *args: Any, **kwargs: Any) -> int:
                recorder.record(str(getattr(event_type, "value", event_type)))
                return int(super().add_event(context, event_type, *args, **kwargs))

        dmap = importlib.import_module(_DMAP_MODULE)
        original_manager = dmap.EventManager
        dmap.EventManager = RecordingEventManager
        self._undo.append(lambda: setattr(dmap, "EventManager", original_manager))

        worker_cls = importlib.import_module(_WORKER_MODULE).DistributedItemProcessorWorker
        original_eval_job = worker_cls._eval_job

        def _eval_job(worker: Any, env: Any, job: Any) -> None:
            recorder.open(int(job.job_index))
            outcome = "ExecutionFailed"
            try:
                original_eval_job(worker, env, job)
                state = env.program_state()
                if isinstance(state, ProgramStopped):
                    outcome = "ExecutionAborted"
                elif not isinstance(state, ProgramError) and job.job_output is not None:
                    outcome = "ExecutionSucceeded"
            finally:
                recorder.close(outcome)

        worker_cls._eval_job = _eval_job
        self._undo.append(lambda: setattr(worker_cls, "_eval_job", original_eval_job))
        self._inherit_across_threads()
        return self

    def _inherit_across_threads(self) -> None:
        """moto evaluates a task on helper threads (timeouts, callbacks): a thread started by
        a thread that has a child record works for the same child."""
        original_start = threading.Thread.start
        original_run = threading.Thread.run
        recorder = self

        def start(thread: threading.Thread) -> None:
            thread._bench_parent = threading.get_ident()  # type: ignore[attr-defined]
            original_start(thread)

        def run(thread: threading.Thread) -> None:
            parent = getattr(thread, "_bench_parent", None)
            me = threading.get_ident()
            with recorder._lock:
                rec = recorder._current.get(parent) if parent is not None else None
                if rec is not None:
                    recorder._current[me] = rec
            try:
                original_run(thread)
            finally:
                with recorder._lock:
                    if rec is not None and recorder._current.get(me) is rec:
                        del recorder._current[me]

        threading.Thread.start = start  # type: ignore[method-assign]
        threading.Thread.run = run  # type: ignore[method-assign]
        self._undo.append(lambda: setattr(threading.Thread, "start", original_start))
        self._undo.append(lambda: setattr(threading.Thread, "run", original_run))

    def __exit__(self, *exc: object) -> None:
        while self._undo:
            self._undo.pop()()

    def reset(self) -> None:
        with self._lock:
            self.children = []
            self.unattributed.clear()
            self._current.clear()

    def open(self, index: int) -> None:
        with self._lock:
            rec = ChildRecord(index=index)
            self.children.append(rec)
            self._current[threading.get_ident()] = rec

    def close(self, outcome: str) -> None:
        with self._lock:
            rec = self._current.pop(threading.get_ident(), None)
            if rec is not None:
                rec.events.append(outcome)

    def record(self, event_type: str) -> None:
        with self._lock:
            rec = self._current.get(threading.get_ident())
            if rec is None:
                self.unattributed[event_type] += 1
            else:
                rec.events.append(event_type)

    def summary(self) -> dict[str, Any]:
        with self._lock:
            kids = list(self.children)
        if not kids:
            return {"children": 0, "unattributed": dict(self.unattributed)}
        events = [len(k.events) for k in kids]
        trans = [k.transitions for k in kids]
        types: collections.Counter[str] = collections.Counter()
        for k in kids:
            types.update(k.events)
        return {
            "children": len(kids),
            "eventsTotal": sum(events),
            "eventsPerChildMean": sum(events) / len(kids),
            "eventsPerChildMax": max(events),
            "transitionsTotal": sum(trans),
            "transitionsPerChildMean": sum(trans) / len(kids),
            "retries": sum(k.retries for k in kids),
            "eventTypes": dict(sorted(types.items())),
            "unattributed": dict(self.unattributed),
        }


def parent_history(sfn: Any, execution_arn: str) -> list[dict[str, Any]]:
    """Every event of an execution (paginated GetExecutionHistory)."""
    events: list[dict[str, Any]] = []
    kwargs: dict[str, Any] = {"executionArn": execution_arn, "maxResults": 1000}
    while True:
        page = sfn.get_execution_history(**kwargs)
        events.extend(page["events"])
        token = page.get("nextToken")
        if not token:
            return events
        kwargs["nextToken"] = token


def transitions_of(events: Iterable[dict[str, Any]]) -> int:
    """Billed transitions of a parent history: start + states entered + task retries."""
    types = [str(e["type"]) for e in events]
    entered = sum(1 for t in types if t.endswith("StateEntered"))
    scheduled = sum(1 for t in types if t == "TaskScheduled")
    task_entered = sum(1 for t in types if t == "TaskStateEntered")
    return 1 + entered + max(0, scheduled - task_entered)


# ---------------------------------------------------------------------- Lambda invocations


class LambdaCounter:
    """Counts in-process Lambda invocations per (function, action) by wrapping handlers."""

    def __init__(self, registry: Any) -> None:
        self.registry = registry
        self.counts: collections.Counter[str] = collections.Counter()
        self.seconds: collections.Counter[str] = collections.Counter()
        self.errors: collections.Counter[str] = collections.Counter()
        self._saved: dict[str, Any] = {}
        self._lock = threading.Lock()

    def __enter__(self) -> LambdaCounter:
        for name in self.registry.registered():
            inner = self.registry.handler_for(name)
            self._saved[name] = inner
            self.registry.register(name, self._wrap(name, inner))
        return self

    def __exit__(self, *exc: object) -> None:
        for name, inner in self._saved.items():
            self.registry.register(name, inner)

    def _wrap(self, name: str, inner: Callable[[Any, Any], Any]) -> Callable[[Any, Any], Any]:
        def counted(event: Any, context: Any) -> Any:
            action = event.get("action") if isinstance(event, dict) else None
            label = f"{name}:{action}" if action else name
            if action == "unitFailed":  # the error the unit was given up for
                err = event.get("error") or {}
                with self._lock:
                    self.errors[f"unit failed with {err.get('Error')}: {_cause(err)}"] += 1
            started = time.perf_counter()
            try:
                return inner(event, context)
            except Exception as exc:
                with self._lock:
                    self.errors[f"{label} raised {type(exc).__name__}: {str(exc)[:160]}"] += 1
                raise
            finally:
                with self._lock:
                    self.counts[label] += 1
                    self.seconds[label] += time.perf_counter() - started

        return counted

    def reset(self) -> None:
        with self._lock:
            self.counts.clear()
            self.seconds.clear()
            self.errors.clear()

    @property
    def total(self) -> int:
        return sum(self.counts.values())


def _cause(error: Any) -> str:
    cause = str(error.get("Cause", ""))
    try:
        parsed = json.loads(cause)
        cause = f"{parsed.get('errorType')}: {parsed.get('errorMessage')}"
    except (ValueError, AttributeError):
        pass
    return cause[:160]


def wrap_handler(
    registry: Any, function_name: str, wrapper: Callable[[Any], Any]
) -> Callable[[], None]:
    """Replace ``function_name``'s handler with ``wrapper(inner)``; returns an undo callable."""
    inner = registry.handler_for(function_name)
    registry.register(function_name, wrapper(inner))
    return lambda: registry.register(function_name, inner)


# ------------------------------------------------------------------------- server requests

_DDB_WRITE_ACTIONS = {"PutItem", "UpdateItem", "DeleteItem", "BatchWriteItem", "TransactWriteItems"}


@dataclass
class CallStats:
    count: int = 0
    seconds: float = 0.0
    items: int = 0


class ServerCalls:
    """Requests served by moto per (service, action), excluding the benchmark's observers."""

    def __init__(self) -> None:
        self.calls: dict[tuple[str, str], CallStats] = collections.defaultdict(CallStats)
        self._lock = threading.Lock()
        self._original: Any = None

    def __enter__(self) -> ServerCalls:
        from moto.core.responses import BaseResponse

        self._original = BaseResponse.call_action
        original = self._original
        stats = self

        def call_action(response: Any) -> Any:
            headers = getattr(response, "headers", None) or {}
            if headers.get(OBSERVER_HEADER):
                return original(response)
            started = time.perf_counter()
            try:
                return original(response)
            finally:
                elapsed = time.perf_counter() - started
                stats._record(response, elapsed)

        BaseResponse.call_action = call_action
        return self

    def __exit__(self, *exc: object) -> None:
        from moto.core.responses import BaseResponse

        if self._original is not None:
            BaseResponse.call_action = self._original

    def _record(self, response: Any, elapsed: float) -> None:
        try:
            action = str(response._get_action())
            service = str(getattr(response, "service_name", "?"))
            items = 0
            if service == "dynamodb" and action in _DDB_WRITE_ACTIONS:
                items = _write_units(action, getattr(response, "body", None))
        except Exception:  # noqa: BLE001 - a counting hook must never break a request
            action, service, items = "?", "?", 0
        with self._lock:
            s = self.calls[(service, action)]
            s.count += 1
            s.seconds += elapsed
            s.items += items

    def reset(self) -> None:
        with self._lock:
            self.calls.clear()

    def snapshot(self) -> dict[str, dict[str, float]]:
        with self._lock:
            return {
                f"{svc}:{act}": {"count": s.count, "seconds": round(s.seconds, 3), "wru": s.items}
                for (svc, act), s in sorted(self.calls.items())
            }

    def count(self, service: str, actions: Iterable[str] | None = None) -> int:
        with self._lock:
            return sum(
                s.count
                for (svc, act), s in self.calls.items()
                if svc == service and (actions is None or act in set(actions))
            )

    def ddb_write_units(self) -> int:
        with self._lock:
            return sum(s.items for (svc, _), s in self.calls.items() if svc == "dynamodb")

    def ddb_read_requests(self) -> int:
        reads = ("GetItem", "Query", "Scan", "BatchGetItem", "TransactGetItems")
        return self.count("dynamodb", reads)


def _write_units(action: str, body: Any) -> int:
    """Write request units of one request, counting 1 per item (items < 1 KB) and 2 per
    transactional item (AWS bills transactional writes double)."""
    if action in ("PutItem", "UpdateItem", "DeleteItem"):
        return 1
    data = body
    if isinstance(body, bytes | bytearray | str):
        try:
            data = json.loads(body)
        except ValueError:
            return 0
    if not isinstance(data, dict):
        return 0
    if action == "BatchWriteItem":
        return sum(len(v) for v in data.get("RequestItems", {}).values())
    return 2 * len(data.get("TransactItems", []))


def mark_observer(client: Any) -> Any:
    """Tag every request of ``client`` so ``ServerCalls`` leaves it out of the counts."""

    def add_header(request: Any, **_: Any) -> None:
        request.headers[OBSERVER_HEADER] = "1"

    client.meta.events.register("before-send.*", add_header)
    return client


# ------------------------------------------------------------------------------- sampler


class _Periodic:
    """A daemon thread calling ``_sample()`` every ``interval`` seconds inside a ``with``."""

    def __init__(self, interval: float, name: str) -> None:
        self.interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self._sample()

    def _sample(self) -> None:
        raise NotImplementedError


class Sampler(_Periodic):
    """Samples every thread's stack; ``top()`` gives the hottest frames (self and inclusive)."""

    def __init__(
        self, interval: float = 0.01, *, main_only: bool = False, include_blocked: bool = False
    ) -> None:
        """``main_only`` + ``include_blocked`` gives a wall-clock profile of the main thread."""
        super().__init__(interval, "bench-sampler")
        self.main_only = main_only
        self.include_blocked = include_blocked
        self.samples = 0
        self.inclusive: collections.Counter[str] = collections.Counter()
        self.leaf: collections.Counter[str] = collections.Counter()

    def _sample(self) -> None:
        me = threading.get_ident()
        main = threading.main_thread().ident
        for tid, frame in sys._current_frames().items():
            if tid == me or (self.main_only and tid != main):
                continue
            if not self.include_blocked and _blocked(frame):
                continue
            names = []
            f: Any = frame
            while f is not None:
                code = f.f_code
                names.append(f"{_short(code.co_filename)}:{code.co_name}")
                f = f.f_back
            if not names:
                continue
            self.samples += 1
            self.leaf[names[0]] += 1
            for n in set(names):
                self.inclusive[n] += 1

    def top(self, n: int = 15) -> dict[str, list[tuple[str, int]]]:
        return {"inclusive": self.inclusive.most_common(n), "self": self.leaf.most_common(n)}


_BLOCKING_CALLS = (
    "sleep(",
    ".wait(",
    "wait(",
    "select(",
    ".recv",
    "readinto(",
    "accept(",
    ".acquire(",
    "join(",
    ".poll(",
    "_wait_for_tstate_lock",
    ".get(block",
    "getresponse(",
    "sendall(",
)


def _blocked(frame: Any) -> bool:
    """True when the thread sits in a blocking call (sleep, lock, socket, select): the line
    its innermost Python frame executes calls one. Heuristic, good enough to rank hot code."""
    import linecache

    line = linecache.getline(frame.f_code.co_filename, frame.f_lineno or 0)
    return any(call in line for call in _BLOCKING_CALLS)


def _short(path: str) -> str:
    for marker in ("site-packages/", "/work/main/", "lib/python3.11/"):
        if marker in path:
            return path.split(marker, 1)[1]
    return path


# ------------------------------------------------------------------------------- memory


def _status_kb(pid: int | str, key: str) -> int:
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except (OSError, ValueError):
        return 0
    return 0


def self_peak_rss_mb() -> float:
    """This process's RSS high-water mark (VmHWM)."""
    return _status_kb("self", "VmHWM") / 1024.0


def descendants(root: int) -> list[int]:
    children: dict[int, list[int]] = collections.defaultdict(list)
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", encoding="ascii") as fh:
                stat = fh.read()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children[ppid].append(int(entry))
    out: list[int] = []
    stack = [root]
    while stack:
        for kid in children.get(stack.pop(), []):
            out.append(kid)
            stack.append(kid)
    return out


class ProcessMemory(_Periodic):
    """Peak of the summed RSS of this process's descendants (node agents, their workers)."""

    def __init__(self, interval: float = 0.5) -> None:
        super().__init__(interval, "bench-memory")
        self.peak_children_mb = 0.0
        self.peak_children_count = 0

    def _sample(self) -> None:
        kids = descendants(os.getpid())
        total = sum(_status_kb(pid, "VmRSS") for pid in kids) / 1024.0
        self.peak_children_mb = max(self.peak_children_mb, total)
        self.peak_children_count = max(self.peak_children_count, len(kids))


@contextmanager
def stopwatch() -> Iterator[Callable[[], float]]:
    started = time.perf_counter()
    yield lambda: time.perf_counter() - started


# ------------------------------------------------------------------ node process profiles

NODE_PROFILE_ENV = "LIGHTHPC_BENCH_NODE_PROFILE"


def enable_node_profiles(out_dir: str) -> None:
    """Make every Python process started from now on (node agents) write a wall-clock
    profile of its main thread to ``out_dir`` (see ``_nodeprof/sitecustomize.py``)."""
    here = os.path.join(os.path.dirname(os.path.abspath(__file__)), "_nodeprof")
    path = os.environ.get("PYTHONPATH", "")
    os.environ["PYTHONPATH"] = here + (os.pathsep + path if path else "")
    os.environ[NODE_PROFILE_ENV] = out_dir


def merge_node_profiles(out_dir: str, match: str = "node_agent/main.py:main") -> dict[str, Any]:
    """Sum the profiles of the processes whose stacks show ``match`` (the agents, not their
    shard workers); figures are shares of the agents' main-thread wall time."""
    inclusive: collections.Counter[str] = collections.Counter()
    leaf: collections.Counter[str] = collections.Counter()
    samples = processes = 0
    for entry in os.listdir(out_dir):
        with open(os.path.join(out_dir, entry), encoding="utf-8") as fh:
            data = json.load(fh)
        if not any(name == match for name, _ in data["inclusive"]):
            continue
        processes += 1
        samples += int(data["samples"])
        inclusive.update(dict(data["inclusive"]))
        leaf.update(dict(data["self"]))
    share = (lambda c: round(c / samples, 3)) if samples else (lambda c: 0.0)
    return {
        "processes": processes,
        "samples": samples,
        "inclusive": [(k, share(v)) for k, v in inclusive.most_common(40)],
        "self": [(k, share(v)) for k, v in leaf.most_common(15)],
    }
