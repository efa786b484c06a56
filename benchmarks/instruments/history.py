"""``ChildHistory``: the event history moto keeps, then discards, for Distributed Map children.

moto runs the children of a Distributed Map on one ``EventManager`` per Map Run that it then
discards (``distributed_iteration_component.py``: ``env.event_manager = EventManager()``).
We replace that module's ``EventManager`` name with a recording subclass and wrap
``DistributedItemProcessorWorker._eval_job`` (one child per call, on a Map worker thread) to
attribute events to the child; threads that moto starts while evaluating a child (task
timeouts, callbacks) inherit its record. Events no child claims are counted as
``unattributed`` (reported, expected 0). moto emits no ExecutionStarted/ExecutionSucceeded
for children; AWS does, so the record adds them.
"""

from __future__ import annotations

import collections
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

_DMAP_MODULE = (
    "moto.stepfunctions.parser.asl.component.state.exec.state_map.iteration."
    "distributed_iteration_component"
)

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
