"""What every ``lighthpc`` command shares: exit codes, the one-line error, ``--param``."""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

from rich.console import Console

from workflow.errors import MissionInvalidInput

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
err_console = Console(stderr=True, soft_wrap=True)
out_console = Console()


def fail(error: str, message: str, code: int = EXIT_USAGE, *, as_json: bool = False) -> NoReturn:
    """One ``lighthpc: Name: message`` line on stderr; with ``--json`` also a JSON object on
    stdout, so a script reading stdout never gets nothing."""
    line = " ".join(message.split())
    if as_json:
        sys.stdout.write(json.dumps({"error": error, "message": line, "exitCode": code}) + "\n")
    err_console.print(f"lighthpc: {error}: {line}", markup=False, highlight=False)
    sys.exit(code)


# 24 local nodes held 4.7 GB (issue 14): about 200 MB each (agent, worker, RDKit, boto3).
NODE_MEMORY_BYTES = 200 * 1024 * 1024
MAX_LOCAL_WORKERS = 256  # a pool past this spends its time starting processes on any laptop


def max_local_workers(meminfo: Path = Path("/proc/meminfo")) -> int:
    """Local nodes this machine's available memory holds (at least 1, at most 256)."""
    try:
        for line in meminfo.read_text(encoding="ascii").splitlines():
            if line.startswith("MemAvailable:"):
                available = int(line.split()[1]) * 1024
                return max(1, min(MAX_LOCAL_WORKERS, available // NODE_MEMORY_BYTES))
    except (OSError, ValueError, IndexError):
        pass
    return MAX_LOCAL_WORKERS


def check_workers(workers: int) -> None:
    """``--workers`` in [1, what memory holds]: ``Mission.InvalidInput`` otherwise."""
    cap = max_local_workers()
    if not 1 <= workers <= cap:
        raise MissionInvalidInput(
            f"--workers must be from 1 to {cap} here (about {NODE_MEMORY_BYTES >> 20} MB of "
            f"available memory per local node), got {workers}"
        )


def parse_param_options(items: Sequence[str]) -> dict[str, Any]:
    """``k=v`` pairs; ``v`` is JSON when it parses (numbers, lists), else a plain string."""
    out: dict[str, Any] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise MissionInvalidInput(f"--param needs key=value, got {item!r}")
        try:
            out[key] = json.loads(raw)
        except json.JSONDecodeError:
            out[key] = raw
    return out


def check_out_dir(out: Path | None) -> None:
    """``--out`` must be a directory we can create: a file there, or a path under a file or
    an unwritable place, is ``Mission.InvalidInput`` before the emulator starts."""
    if out is None:
        return
    if out.exists() and not out.is_dir():
        raise MissionInvalidInput(f"--out {str(out)!r} is a file, not a directory")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise MissionInvalidInput(
            f"--out {str(out)!r} cannot be created: {exc.strerror or exc}"
        ) from exc


def check_file_name(path: Path) -> None:
    """A sample's name becomes an S3 key and a log line: no control characters (a newline
    would split the one-line error and the key)."""
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in path.name):
        raise MissionInvalidInput(f"file name {path.name!r} contains a control character")
