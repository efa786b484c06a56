"""``lighthpc local run``: one mission on the local stack, with live progress and a summary."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType, TracebackType
from typing import Any, Final

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

from cli.timeline import write_beside_result
from cli.views import execution_table, failure_line, state_runs, summary_table, units_table
from localcloud.pool import LocalNodePool
from localcloud.session import LocalSession, MissionRequestLocal
from localcloud.session import Progress as Snapshot
from node_agent import proctree
from workflow.aggregation import STOPPED_BY_BUDGET
from workflow.asl import state_names
from workflow.budget import stopped_by_budget
from workflow.errors import MissionInvalidInput, MissionOverBudget
from workflow.records import MissionRecord
from workflow.states import MissionStatus, ShardStatus

EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT = 0, 1, 2
BAD_INPUT_ERRORS = frozenset({MissionInvalidInput.error_name, MissionOverBudget.error_name})
DEFAULT_OUT = Path("lighthpc-out")
INTERRUPTS: Final = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
NODES_GONE_SECONDS: Final = 15.0


class Interrupted(BaseException):
    """The run was told to stop (Ctrl-C, SIGTERM, a closed terminal): unwind and clean up.

    A ``BaseException`` like ``KeyboardInterrupt``: no ``except Exception`` may swallow it."""


class _Interrupts:
    """SIGINT, SIGTERM and SIGHUP all stop the run like Ctrl-C. Only the first one unwinds;
    one that comes during the cleanup (a second, third Ctrl-C) is said, not obeyed, so the
    nodes are still stopped. ``defer()`` makes the first one wait too (the normal cleanup)."""

    def __init__(self) -> None:
        self.signum: int | None = None
        self._raising = True
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> _Interrupts:
        for sig in INTERRUPTS:
            self._previous[sig] = signal.signal(sig, self._on_signal)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        for sig, previous in self._previous.items():
            signal.signal(sig, previous)

    def defer(self) -> None:
        self._raising = False

    def _on_signal(self, signum: int, _frame: FrameType | None) -> None:
        name = signal.Signals(signum).name
        if self.signum is None:
            self.signum = signum
            if self._raising:
                self._raising = False
                raise Interrupted(name)
        _say_now(f"lighthpc: {name}: stopping the emulator and nodes first; please wait\n")


def _say_now(text: str) -> None:
    """Write from a signal handler (no reentrant rich print); a closed terminal is fine."""
    with contextlib.suppress(OSError):
        os.write(2, text.encode())


@contextmanager
def _run_log(log_dir: Path) -> Iterator[None]:
    """Everything the emulator, the pool and their threads log (moto's 1.2 KB state dump per
    failed state, werkzeug, a thread dying at teardown) goes to ``<log_dir>/emulator.log``,
    never to the user's terminal, whose stderr keeps our one-line errors. Entered before the
    session starts and left after it stopped, so its teardown is covered too."""
    log_dir.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(log_dir / "emulator.log", encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    saved_handlers, saved_level = root.handlers[:], root.level
    saved_hook = threading.excepthook
    root.handlers = [handler]
    root.setLevel(logging.INFO)

    def log_thread_death(args: threading.ExceptHookArgs) -> None:
        thread = args.thread.name if args.thread else "?"
        exc = (args.exc_type, args.exc_value, args.exc_traceback)
        root.error("thread %s died", thread, exc_info=exc)  # type: ignore[arg-type]

    threading.excepthook = log_thread_death
    try:
        yield
    finally:
        threading.excepthook = saved_hook
        root.handlers, root.level = saved_handlers, saved_level
        handler.close()


def run_local(
    request: MissionRequestLocal, out: Path | None, *, as_json: bool, console: Console, err: Console
) -> int:
    """The mission's exit code; 128+signum once an interrupt has stopped every node."""
    pools: list[LocalNodePool] = []
    with _Interrupts() as interrupts:
        code = EXIT_FAILED
        # The handle is the session's cleanup: it has already run when this catches.
        with contextlib.suppress(Interrupted):
            code = _run(
                request, out, as_json=as_json, console=console, err=err, hooks=(interrupts, pools)
            )
        if interrupts.signum is None:
            return code
        return _report_interrupt(
            interrupts.signum, pools, as_json=as_json, console=console, err=err
        )


def _report_interrupt(
    signum: int, pools: list[LocalNodePool], *, as_json: bool, console: Console, err: Console
) -> int:
    """Say what was stopped, after checking (with a timeout) that no node process remains."""
    name = signal.Signals(signum).name
    pids = {p for pool in pools for h in pool.nodes() for p in (h.pid, *h.killed_pids)}
    deadline = time.monotonic() + NODES_GONE_SECONDS
    while (
        alive := sorted(p for p in pids if proctree.is_alive(p))
    ) and time.monotonic() < deadline:
        time.sleep(0.1)
    if alive:
        message = f"{name}; {len(alive)} node process(es) still running: {alive}"
    else:
        message = f"{name}; emulator and nodes stopped"
    code = 128 + signum
    with contextlib.suppress(OSError):  # after SIGHUP the terminal may be gone
        if as_json:
            console.print_json(data={"error": "Interrupted", "message": message, "exitCode": code})
        err.print(f"lighthpc: Interrupted: {message}", markup=False, highlight=False)
    return code


def _run(
    request: MissionRequestLocal,
    out: Path | None,
    *,
    as_json: bool,
    console: Console,
    err: Console,
    hooks: tuple[_Interrupts, list[LocalNodePool]],
) -> int:
    interrupts, pools = hooks
    started = time.monotonic()
    log_dir = ((out or DEFAULT_OUT) / "logs" / time.strftime("%Y%m%d-%H%M%S")).resolve()
    with (
        _run_log(log_dir),
        LocalSession(
            workers=request.workers, log_dir=log_dir, boot_seconds=request.boot_seconds
        ) as session,
    ):
        if session.pool is not None:
            pools.append(session.pool)
        try:
            return _mission(
                session, request, out, as_json=as_json, console=console, err=err, started=started
            )
        finally:
            interrupts.defer()  # a signal now waits for the session's cleanup


def _mission(
    session: LocalSession,
    request: MissionRequestLocal,
    out: Path | None,
    *,
    as_json: bool,
    console: Console,
    err: Console,
    started: float,
) -> int:
    if not as_json:  # information, on stdout: stderr carries only the one error line
        console.print(
            f"local stack at {session.cloud.endpoint_url} · node logs in {session.log_dir}",
            markup=False,
            highlight=False,
            soft_wrap=True,
        )
    first, key = _start(session, request)
    arn = session.owning_execution(first)
    desc = _watch(session, arn, err)
    mission_id = session.mission_id(arn)
    if mission_id is None:
        error = str(desc.get("error") or "Mission.Failed")
        cause = " ".join(str(desc.get("cause") or "no mission was planned").split())
        # A rejected input exits 2 here as it does when the CLI refuses it itself.
        code = EXIT_BAD_INPUT if error in BAD_INPUT_ERRORS else EXIT_FAILED
        if as_json:
            console.print_json(data={"error": error, "message": cause, "exitCode": code})
        err.print(f"lighthpc: {error}: {cause}", markup=False, highlight=False)
        return code
    mission = session.services.store.get_mission(mission_id)
    wall = time.monotonic() - started
    target = (out or DEFAULT_OUT / mission_id).resolve()
    result = session.download_result(mission, target)
    report = _report(session, mission=mission, desc=desc, wall=wall, result=result, key=key)
    report["timeline"] = write_beside_result(session.services.store, mission, target, err)
    (target / "summary.json").parent.mkdir(parents=True, exist_ok=True)
    (target / "summary.json").write_text(json.dumps(report, indent=2, default=str) + "\n")
    if as_json:
        console.print_json(data=report)
    else:
        _print(console, session, mission=mission, desc=desc, wall=wall, report=report)
    if mission.status in {MissionStatus.SUCCEEDED, MissionStatus.PARTIAL}:
        return EXIT_OK
    error, message = failure_line(mission, desc)
    err.print(f"lighthpc: {error}: {message}", markup=False, highlight=False)
    return EXIT_FAILED


def _start(session: LocalSession, request: MissionRequestLocal) -> tuple[str, str]:
    profile = request.profile()
    if request.library is not None:
        profile["library"] = session.upload_library(request.library)
    if request.bundle_archive is not None:
        profile["bundle"] = session.upload_bundle(request.bundle_archive)
    store = session.services.store
    store.put_profile(session.services.settings.default_profile, profile, time.time())
    if request.params:
        key = session.upload_sample(request.sample, trigger=False)
        arn = session.start_manual(key, request.params)
    else:
        key = session.upload_sample(request.sample, trigger=True)
        arn = session.wait_first_execution()
    if request.chaos.active:
        session.start_chaos(request.chaos)
        for _ in range(request.chaos.dup):
            session.redeliver_upload_event(key)
    return arn, key


def _watch(session: LocalSession, arn: str, err: Console) -> dict[str, Any]:
    columns = (
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn(
            "shards · nodes {task.fields[nodes]} · retries {task.fields[retries]} · "
            "interruptions {task.fields[interruptions]} · {task.fields[pace]}"
        ),
    )
    with Progress(*columns, console=err, transient=True) as bar:
        task = bar.add_task("mission", total=None, nodes=0, retries=0, interruptions=0, pace="")

        def tick(p: Snapshot) -> None:
            bar.update(
                task,
                total=p.shards or None,
                completed=p.done + p.failed,
                nodes=p.nodes,
                retries=p.retries,
                interruptions=p.interruptions,
                pace=p.pace.line(p.spent_usd, p.max_cost_usd),
            )

        return session.wait(arn, tick)


def _report(
    session: LocalSession,
    *,
    mission: MissionRecord,
    desc: dict[str, Any],
    wall: float,
    result: Path | None,
    key: str,
) -> dict[str, Any]:
    executions = session.executions()
    monkey = session.monkey
    return {
        "missionId": mission.mission_id,
        "status": mission.status.value,
        "execution": desc["executionArn"],
        "endpoint": session.cloud.endpoint_url,
        "logDir": str(session.log_dir),
        "executionStatus": desc["status"],
        "sample": key,
        "shards": mission.shards,
        "shardsDone": mission.shards_done,
        "shardsFailed": mission.shards_failed,
        "failedShards": [f.to_item() for f in mission.failed_shards or ()],
        "units": mission.units,
        "retries": mission.retries or 0,
        "interruptions": mission.interruptions or 0,
        "invalidSampleLines": list(mission.invalid_sample_lines),
        "wallSeconds": round(wall, 2),
        "modelledCostUsd": mission.cost,
        "maxCostUsd": mission.mission_params().max_cost_usd,
        "stoppedBy": STOPPED_BY_BUDGET if stopped_by_budget(mission) else None,
        "instanceSeconds": dict(mission.instance_seconds),
        "result": str(result) if result else None,
        "executions": len(executions),
        "duplicatesIgnored": len(executions) - 1,
        "chaos": {
            "interrupted": len(monkey.log.interrupted) if monkey else 0,
            "killed": len(monkey.log.killed) if monkey else 0,
        },
    }


def _print(
    console: Console,
    session: LocalSession,
    *,
    mission: MissionRecord,
    desc: dict[str, Any],
    wall: float,
    report: dict[str, Any],
) -> None:
    store = session.services.store
    history = session.services.sfn.get_execution_history(
        executionArn=desc["executionArn"], maxResults=1000
    )["events"]
    definition = json.loads(
        session.services.sfn.describe_state_machine_for_execution(
            executionArn=desc["executionArn"]
        )["definition"]
    )
    shards = store.list_shards(mission.mission_id)
    counts: dict[str, tuple[int, int]] = {}
    for s in shards:
        done, total = counts.get(s.unit_id, (0, 0))
        counts[s.unit_id] = (done + (s.status is ShardStatus.DONE), total + 1)
    console.print(summary_table(mission, wall))
    console.print(execution_table(state_runs(history), state_names(definition)))
    console.print(units_table(store.list_units(mission.mission_id), counts))
    chaos = report["chaos"]
    if chaos["interrupted"] or chaos["killed"] or report["duplicatesIgnored"]:
        console.print(
            f"Chaos: {chaos['interrupted']} node(s) interrupted, {chaos['killed']} killed, "
            f"{report['duplicatesIgnored']} duplicate execution(s) ignored"
        )
    if report["result"]:
        console.print(f"Result: {report['result']}")
    if report["timeline"]:
        console.print(f"Timeline: {report['timeline']['file']}")
