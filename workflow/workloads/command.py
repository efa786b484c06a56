"""``command``: run any executable per shard, never through a shell.

The argv comes from the mission options; sample paths and S3-derived names reach the child only
as argv elements or environment values, so nothing in them is ever interpreted. The child gets
the shard through ``LIGHTHPC_SHARD_*`` variables and the ``{start}``/``{end}``/``{input}``/
``{output}``/``{checkpoint}``/``{shard}`` placeholders (single-pass plain replacement: a
substituted value is never scanned again). It must write ``LIGHTHPC_SHARD_OUTPUT``; it may write
``LIGHTHPC_SHARD_CHECKPOINT`` at any time (atomically: write a temporary file, then rename), and
the file holds the previous attempt's payload when the shard resumes. A JSON checkpoint with a
``"position"`` field reports progress; any other payload resumes from the shard start.

The child never runs as root: an agent running as root (on a node, under systemd) starts it
as the unprivileged work user (``LIGHTHPC_NODE_WORK_USER``, default ``lighthpc-work``, created
by the node's user data) with no supplementary group, and refuses (``Command.RunsAsRoot``)
when that user is missing; an agent that is not root runs it as itself.

Options: ``argv`` (required list of strings), ``timeoutSeconds`` per shard (default 3600),
``graceSeconds`` between SIGTERM and SIGKILL (default 10), ``items`` (index-space size; default
one item per non-empty sample line), ``reduce`` (``concat``, the default, or ``sumCsv``).
A job bundle (``workflow.bundles``) supplies ``argv`` from its manifest.
"""

from __future__ import annotations

import contextlib
import json
import os
import pwd
import re
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, ClassVar, Final, Literal

from workflow.errors import CommandRunsAsRoot, MissionInvalidInput, ShardFailed
from workflow.workloads.base import (
    SampleReport,
    ShardContext,
    ShardDone,
    ShardOutcome,
    ShardRange,
    ShardStopped,
    WorkInputs,
)
from workflow.workloads.csv_sum import sum_csv

DEFAULT_TIMEOUT_SECONDS = 3600.0
DEFAULT_GRACE_SECONDS = 10.0
TAIL_BYTES = 4096
PLACEHOLDER = re.compile(r"\{(start|end|input|output|checkpoint|shard)\}")
# How often the supervisor looks at the child, the stop flag and the deadline.
_POLL_SECONDS = 0.05
# How often a checkpoint the child rewrote is forwarded to the agent (an upload each time).
_CHECKPOINT_SCAN_SECONDS = 1.0
# Reader threads get this long to drain the pipes once the process group is gone.
_DRAIN_SECONDS = 5.0

WaitResult = Literal["exited", "stopped", "timeout"]

WORK_USER_ENV: Final = "LIGHTHPC_NODE_WORK_USER"
DEFAULT_WORK_USER: Final = "lighthpc-work"
# Set only by the local pool when the developer runs it as root on their own machine (the
# interpreter and their programs may sit under /root, out of any other user's reach). A node's
# user data never sets it.
LOCAL_ROOT_ENV: Final = "LIGHTHPC_LOCAL_COMMAND_AS_ROOT"


@dataclass(frozen=True)
class WorkUser:
    """The unprivileged account a root agent starts the child as."""

    name: str
    uid: int
    gid: int
    home: str

    def environment(self) -> dict[str, str]:
        return {"HOME": self.home, "USER": self.name, "LOGNAME": self.name}


def work_user(
    euid: int,
    name: str,
    lookup: Callable[[str], pwd.struct_passwd] = pwd.getpwnam,
    *,
    local_root: bool = False,
) -> WorkUser | None:
    """Who the child runs as: ``None`` is "as the agent" (it is not root, or it is the local
    pool of a developer working as root); a root agent gets ``name``'s account, or
    ``Command.RunsAsRoot`` if there is none (or it is uid 0)."""
    if euid != 0 or local_root:
        return None
    try:
        entry = lookup(name)
    except KeyError:
        entry = None
    if entry is None or entry.pw_uid == 0:
        raise CommandRunsAsRoot(
            f"{CommandRunsAsRoot.error_name}: the node agent runs as root and work user "
            f"{name!r} is {'missing' if entry is None else 'uid 0'}; refusing to run the "
            f"command as root (the node's user data creates it; {WORK_USER_ENV} names it)"
        )
    return WorkUser(entry.pw_name, entry.pw_uid, entry.pw_gid, entry.pw_dir)


def _hand_over(files: ShardFiles, work_dir: Path, user: WorkUser | None) -> None:
    """Give the work user the shard directory and the resume checkpoint it rewrites."""
    if user is None:
        return
    for path in (work_dir, files.checkpoint):
        if path.exists():
            os.chown(path, user.uid, user.gid)


@dataclass(frozen=True)
class CommandOptions:
    """The checked ``command`` options of a mission."""

    argv: tuple[str, ...]
    timeout_seconds: float = DEFAULT_TIMEOUT_SECONDS
    grace_seconds: float = DEFAULT_GRACE_SECONDS


def _number(options: Mapping[str, Any], key: str, default: float, minimum: float) -> float:
    value = options.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or value < minimum:
        raise MissionInvalidInput(f"{key} must be a number >= {minimum:g}, got {value!r}")
    return float(value)


def parse_options(options: Mapping[str, Any]) -> CommandOptions:
    """Check the options up front so a bad mission fails at validation, not on a node."""
    argv = options.get("argv")
    if (
        not isinstance(argv, list | tuple)
        or not argv
        or not all(isinstance(arg, str) for arg in argv)
        or not argv[0]
    ):
        raise MissionInvalidInput("argv must be a non-empty list of strings (no shell is used)")
    timeout = _number(options, "timeoutSeconds", DEFAULT_TIMEOUT_SECONDS, 0.001)
    grace = _number(options, "graceSeconds", DEFAULT_GRACE_SECONDS, 0.0)
    return CommandOptions(tuple(argv), timeout, grace)


@dataclass(frozen=True)
class ShardFiles:
    """The files a shard's command reads and writes."""

    input: Path
    output: Path
    checkpoint: Path

    @classmethod
    def for_shard(cls, shard: ShardRange, sample: Path, work_dir: Path) -> ShardFiles:
        stem = re.sub(r"[^A-Za-z0-9._-]", "_", shard.shard_id) or "shard"
        return cls(sample, work_dir / f"{stem}.out", work_dir / f"{stem}.checkpoint")


def placeholder_values(shard: ShardRange, files: ShardFiles) -> dict[str, str]:
    return {
        "start": str(shard.start),
        "end": str(shard.end),
        "input": str(files.input),
        "output": str(files.output),
        "checkpoint": str(files.checkpoint),
        "shard": shard.shard_id,
    }


def substitute(argv: Sequence[str], values: Mapping[str, str]) -> list[str]:
    """Replace placeholders in one pass, so text inside a value is never expanded again."""
    return [PLACEHOLDER.sub(lambda m: values[m.group(1)], arg) for arg in argv]


def shard_env(shard: ShardRange, files: ShardFiles, base: Mapping[str, str]) -> dict[str, str]:
    return {
        **base,
        "LIGHTHPC_SHARD_ID": shard.shard_id,
        "LIGHTHPC_SHARD_START": str(shard.start),
        "LIGHTHPC_SHARD_END": str(shard.end),
        "LIGHTHPC_SHARD_INPUT": str(files.input),
        "LIGHTHPC_SHARD_OUTPUT": str(files.output),
        "LIGHTHPC_SHARD_CHECKPOINT": str(files.checkpoint),
    }


def checkpoint_position(payload: bytes, shard: ShardRange) -> int:
    """The ``position`` of a JSON checkpoint inside the range, else the shard start."""
    try:
        position = json.loads(payload)["position"]
    except (ValueError, TypeError, KeyError):
        return shard.start
    in_range = isinstance(position, int) and shard.start <= position <= shard.end
    return position if in_range and not isinstance(position, bool) else shard.start


class _Tail(threading.Thread):
    """Drains one pipe (so the child never blocks on it) and keeps only its last bytes."""

    def __init__(self, stream: IO[bytes]) -> None:
        super().__init__(daemon=True)
        self._stream = stream
        self._buffer = bytearray()

    def run(self) -> None:
        with self._stream:
            while chunk := os.read(self._stream.fileno(), 65536):
                self._buffer += chunk
                del self._buffer[:-TAIL_BYTES]

    def text(self) -> str:
        return bytes(self._buffer).decode("utf-8", errors="replace")


def _signal_group(pid: int, sig: signal.Signals) -> None:
    # The group may already be gone, which is the state we want.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)


def _terminate(proc: subprocess.Popen[bytes], grace: float) -> None:
    """SIGTERM the group, give it ``grace`` seconds to checkpoint, then SIGKILL."""
    _signal_group(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        _signal_group(proc.pid, signal.SIGKILL)
        proc.wait()


@dataclass
class _CheckpointWatch:
    """Forwards checkpoints the child rewrites while running (survives a lost node)."""

    files: ShardFiles
    shard: ShardRange
    ctx: ShardContext
    seen: tuple[int, int, int] | None = None
    next_scan: float = field(default_factory=time.monotonic)

    def __post_init__(self) -> None:
        self.seen = self._stamp()

    def _stamp(self) -> tuple[int, int, int] | None:
        try:
            info = self.files.checkpoint.stat()
        except FileNotFoundError:
            return None
        return (info.st_ino, info.st_mtime_ns, info.st_size)

    def poll(self) -> None:
        now = time.monotonic()
        if now < self.next_scan:
            return
        self.next_scan = now + _CHECKPOINT_SCAN_SECONDS
        stamp = self._stamp()
        if stamp is None or stamp == self.seen:
            return
        self.seen = stamp
        data = read_checkpoint(self.files)
        if data:
            position = checkpoint_position(data, self.shard)
            self.ctx.save_checkpoint(data, position)
            self.ctx.progress(position)


def read_checkpoint(files: ShardFiles) -> bytes:
    try:
        return files.checkpoint.read_bytes()
    except FileNotFoundError:
        return b""


def _prepare_files(files: ShardFiles, resume: bytes | None) -> None:
    """Remove a stale output; write the resume payload (or remove a stale checkpoint)."""
    files.output.unlink(missing_ok=True)
    if resume:
        files.checkpoint.write_bytes(resume)
    else:
        files.checkpoint.unlink(missing_ok=True)


def _wait(
    proc: subprocess.Popen[bytes], opts: CommandOptions, ctx: ShardContext, watch: _CheckpointWatch
) -> WaitResult:
    deadline = time.monotonic() + opts.timeout_seconds
    while True:
        try:
            proc.wait(timeout=_POLL_SECONDS)
        except subprocess.TimeoutExpired:
            pass
        else:
            return "exited"
        if ctx.stop_requested():
            return "stopped"
        if time.monotonic() >= deadline:
            return "timeout"
        watch.poll()


def _exit_cause(returncode: int) -> str:
    if returncode < 0:
        return f"was killed by {signal.Signals(-returncode).name}"
    return f"exited with code {returncode}"


def _stopped(files: ShardFiles, shard: ShardRange, ctx: ShardContext) -> ShardStopped:
    data = read_checkpoint(files)
    if not data:
        return ShardStopped(checkpoint=b"", position=shard.start)
    position = checkpoint_position(data, shard)
    ctx.save_checkpoint(data, position)
    return ShardStopped(checkpoint=data, position=position)


def _finished(
    proc: subprocess.Popen[bytes], files: ShardFiles, tails: tuple[_Tail, _Tail], seconds: float
) -> ShardDone:
    stdout, stderr = (tail.text() for tail in tails)
    if proc.returncode != 0:
        raise ShardFailed(f"command {_exit_cause(proc.returncode)}; stderr tail: {stderr}")
    if not files.output.is_file():
        raise ShardFailed(
            f"command exited 0 but wrote no output file {files.output.name} "
            f"(LIGHTHPC_SHARD_OUTPUT); stderr tail: {stderr}"
        )
    stats = {
        "seconds": round(seconds, 3),
        "outputBytes": files.output.stat().st_size,
        "stdoutTail": stdout,
        "stderrTail": stderr,
    }
    return ShardDone(result=files.output, stats=stats)


def _start(
    argv: list[str], env: Mapping[str, str], cwd: Path, user: WorkUser | None
) -> subprocess.Popen[bytes]:
    identity: dict[str, Any] = {}
    if user is not None:  # no supplementary groups: root's group 0 must not follow
        identity = {"user": user.uid, "group": user.gid, "extra_groups": []}
        env = {**env, **user.environment()}
    try:
        return subprocess.Popen(
            argv,
            shell=False,
            env=dict(env),
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
            **identity,
        )
    except OSError as exc:
        raise ShardFailed(f"cannot start {argv[0]!r}: {exc.strerror or exc}") from exc


class CommandWorkload:
    """Any executable as a shard; the agent never builds a shell command line."""

    name: ClassVar[str] = "command"

    def validate(self, inputs: WorkInputs) -> SampleReport:
        parse_options(inputs.options)
        return SampleReport(items=self.count_items(inputs))

    def count_items(self, inputs: WorkInputs) -> int:
        explicit = inputs.options.get("items")
        if explicit is not None:
            if isinstance(explicit, bool) or not isinstance(explicit, int) or explicit < 0:
                raise MissionInvalidInput(f"items must be an integer >= 0, got {explicit!r}")
            return explicit
        try:
            text = inputs.sample.read_bytes().decode("utf-8")
        except UnicodeDecodeError as exc:
            raise MissionInvalidInput(
                f"sample is not UTF-8 text ({exc.reason} at byte {exc.start})"
            ) from exc
        except OSError as exc:
            raise MissionInvalidInput(f"sample cannot be read: {exc.strerror or exc}") from exc
        return sum(1 for line in text.splitlines() if line.strip())

    def run(self, shard: ShardRange, inputs: WorkInputs, ctx: ShardContext) -> ShardOutcome:
        opts = parse_options(inputs.options)
        user = work_user(
            os.geteuid(),
            os.environ.get(WORK_USER_ENV) or DEFAULT_WORK_USER,
            local_root=os.environ.get(LOCAL_ROOT_ENV) == "1",
        )
        files = ShardFiles.for_shard(shard, inputs.sample, ctx.work_dir)
        _prepare_files(files, ctx.resume)
        _hand_over(files, ctx.work_dir, user)
        argv = substitute(opts.argv, placeholder_values(shard, files))
        watch = _CheckpointWatch(files, shard, ctx)  # before the child can write one
        began = time.monotonic()
        proc = _start(argv, shard_env(shard, files, os.environ), ctx.work_dir, user)
        tails = (_Tail(proc.stdout), _Tail(proc.stderr))  # type: ignore[arg-type]
        for tail in tails:
            tail.start()
        try:
            result = _wait(proc, opts, ctx, watch)
            if result != "exited":
                _terminate(proc, opts.grace_seconds)
        finally:
            # Orphaned grandchildren would hold the pipes open and outlive the shard.
            _signal_group(proc.pid, signal.SIGKILL)
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            for tail in tails:
                tail.join(_DRAIN_SECONDS)
        if result == "stopped":
            return _stopped(files, shard, ctx)
        if result == "timeout":
            raise ShardFailed(
                f"timed out after {opts.timeout_seconds:g} s; stderr tail: {tails[1].text()}"
            )
        return _finished(proc, files, tails, time.monotonic() - began)

    def reduce(self, results: Sequence[Path], out: Path, inputs: WorkInputs) -> Mapping[str, Any]:
        """Concatenate the shard outputs, in shard order, byte for byte (or, with the option
        ``reduce: sumCsv``, sum their ``key,count`` rows)."""
        if inputs.options.get("reduce") == "sumCsv":
            return sum_csv(results, out)
        with out.open("wb") as sink:
            for path in results:
                try:
                    with path.open("rb") as source:
                        shutil.copyfileobj(source, sink)
                except OSError as exc:
                    raise ShardFailed(f"shard result {path.name} is unreadable: {exc}") from exc
        return {"shards": len(results), "bytes": out.stat().st_size}
