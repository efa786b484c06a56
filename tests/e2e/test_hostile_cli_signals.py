"""``lighthpc local run`` killed or interrupted mid-mission leaves no process behind.

The CLI runs a slow noop mission as a real subprocess; once its node agents and their shard
workers run, it gets SIGINT, SIGTERM, SIGHUP (a closed terminal) or SIGKILL. Every process
below it (collected from /proc before the signal, since an orphan is re-parented and a tree
walk would miss it) must be gone within a timeout. A caught signal must also exit 128+signum
with one ``lighthpc: Interrupted:`` line, said only once the nodes are checked gone.
"""

from __future__ import annotations

import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from node_agent import proctree
from tests.e2e.test_local_cli import CLI, CLI_ENV, QUERIES, ROOT
from tests.waiting import wait_for

pytestmark = pytest.mark.e2e

START_TIMEOUT = 120.0
EXIT_TIMEOUT = 60.0  # the CLI's own cleanup, on 2 shared cores
GONE_TIMEOUT = 5.0  # after the CLI: an agent dies at once, its workers within a poll
NODE_MARKERS = ("node_agent.main", "localcloud.iam.node")


def _start_time(pid: int) -> str | None:
    """The process's start time in clock ticks: a pid reused by another process differs."""
    try:
        return (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def _cmdline(pid: int) -> str:
    try:
        return (Path("/proc") / str(pid) / "cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def _survivors(started: dict[int, str]) -> list[int]:
    return [
        pid for pid, when in started.items() if proctree.is_alive(pid) and _start_time(pid) == when
    ]


def _agents_with_workers(cli: int) -> dict[int, str] | None:
    """Every descendant of the CLI, once some node agent has a shard worker below it."""
    below = proctree.descendants(cli)
    agents = [p for p in below if any(m in _cmdline(p) for m in NODE_MARKERS)]
    if not any(proctree.descendants(a) for a in agents):
        return None
    return {pid: when for pid in below if (when := _start_time(pid)) is not None}


@pytest.fixture
def cli_run(tmp_path: Path) -> Iterator[subprocess.Popen[str]]:
    process = subprocess.Popen(
        [
            *CLI,
            "local",
            "run",
            str(QUERIES),
            "--workload",
            "noop",
            "--param",
            "sleepMs=5000",
            "--workers",
            "2",
            "--out",
            str(tmp_path / "out"),
        ],
        cwd=ROOT,
        env=CLI_ENV,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # the signal reaches the CLI alone, as from another shell
    )
    try:
        yield process
    finally:
        if process.poll() is None:
            proctree.kill_tree(process.pid)
        process.communicate(timeout=30)


@pytest.mark.parametrize(
    ("sig", "times"),
    [
        (signal.SIGINT, 1),
        (signal.SIGTERM, 1),
        (signal.SIGHUP, 1),
        (signal.SIGKILL, 1),
        (signal.SIGINT, 3),  # three quick Ctrl-C: the cleanup must not be skipped
    ],
    ids=["SIGINT", "SIGTERM", "SIGHUP", "SIGKILL", "SIGINTx3"],
)
def test_no_process_survives_the_cli(
    cli_run: subprocess.Popen[str], sig: signal.Signals, times: int
) -> None:
    started = wait_for(
        lambda: None if cli_run.poll() is not None else _agents_with_workers(cli_run.pid),
        START_TIMEOUT,
        "node agents with shard workers below the CLI",
        interval=0.2,
    )
    assert cli_run.poll() is None, cli_run.communicate()[1][-3000:]
    for _ in range(times):
        cli_run.send_signal(sig)
        time.sleep(0.2)  # quick, yet each one reaches the CLI on its own
    try:
        wait_for(lambda: cli_run.poll() is not None, EXIT_TIMEOUT, f"the CLI to end on {sig.name}")
        wait_for(
            lambda: not _survivors(started),
            GONE_TIMEOUT,
            f"the CLI's {len(started)} descendants to end after {sig.name}",
            interval=0.1,
        )
    finally:
        for pid in _survivors(started):  # do not leak into the next case
            proctree.kill_tree(pid)
    _, stderr = cli_run.communicate(timeout=30)
    if sig is signal.SIGKILL:
        assert cli_run.returncode == -signal.SIGKILL
        return
    assert cli_run.returncode == 128 + sig, stderr[-3000:]
    lines = [line for line in stderr.splitlines() if line.startswith("lighthpc: ")]
    final = [line for line in lines if line.startswith("lighthpc: Interrupted: ")]
    assert final == [f"lighthpc: Interrupted: {sig.name}; emulator and nodes stopped"], stderr[
        -3000:
    ]
    assert lines[-1] == final[0], "the final line comes once the cleanup is done"
    # Each later signal is said plainly, none skips the cleanup silently.
    assert len(lines) <= times, lines


def _default_sigint() -> None:
    """As in a terminal: SIGINT not ignored, even if this test runner's parent ignores it."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


# When the SIGINT lands: seconds after the process starts (Python still importing the CLI on
# a busy machine), or once a file of the run exists (the stack is starting; a node is booting).
MOMENTS = {
    "at-start": 0.0,
    "importing": 0.5,
    "importing-late": 1.5,
    "stack-starting": "logs/*/emulator.log",
    "node-launching": "logs/*/i-*.log",
}


@pytest.mark.parametrize("moment", list(MOMENTS))
def test_a_ctrl_c_at_any_moment_is_one_line_and_exit_130(tmp_path: Path, moment: str) -> None:
    """The emulator's and the pool's teardown (werkzeug, moto dumps, dying threads) must not
    reach stderr either: only the one line."""
    process = subprocess.Popen(
        [*CLI, "local", "run", str(QUERIES), "--workload", "noop", "--out", str(tmp_path)],
        cwd=ROOT,
        env=CLI_ENV,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
        preexec_fn=_default_sigint,  # noqa: PLW1509 -- only a signal disposition, no threads yet
    )
    try:
        when = MOMENTS[moment]
        if isinstance(when, float):
            time.sleep(when)  # the input: a moment, not a wait for a condition
        else:
            wait_for(lambda: any(tmp_path.glob(when)), START_TIMEOUT, f"{when} to exist", 0.05)
        below = {p: w for p in proctree.descendants(process.pid) if (w := _start_time(p))}
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=EXIT_TIMEOUT)
        wait_for(lambda: not _survivors(below), GONE_TIMEOUT, "the CLI's processes to end")
    finally:
        if process.poll() is None:
            proctree.kill_tree(process.pid)
            process.communicate(timeout=30)
    if process.returncode == 0:  # the mission won the race: nothing to interrupt
        return
    lines = [line for line in stderr.splitlines() if line.strip()]
    # Python aborting its own start-up: KeyboardInterrupt while importing ``site`` is a fatal
    # error with exit 1 (CPython's init_import_site), before any code of ours can run.
    site_aborted = process.returncode == 1 and "Fatal Python error: init_import_site" in stderr
    if (process.returncode == -signal.SIGINT or site_aborted) and not any(
        "lighthpc: " in line for line in lines
    ):  # the OS default (before the interpreter took the signal), or Python's own start-up
        # (site, the editable-install hooks, on a slow machine): no module of ours ran yet.
        if site_aborted:
            assert lines[-1] == "KeyboardInterrupt", stderr[-3000:]
        ours = ("/cli/", "/localcloud/", "/workflow/", "/node_agent/")
        assert not any(p in line for line in lines for p in ours), stderr[-3000:]
        return
    # Died by SIGINT or exit 130: a shell shows both as 130. Either way, our one line.
    assert process.returncode in {128 + signal.SIGINT, -signal.SIGINT}, stderr[-3000:]
    assert len(lines) == 1 and lines[0].startswith("lighthpc: Interrupted: SIGINT"), stderr[-3000:]
