"""The local CLI given careless arguments, as a subprocess: one named line, exit 2, and with
``--json`` a JSON object on stdout. Only the empty sample reaches the emulator (PlanMission
rejects it); it must exit 2 like the ones the CLI refuses itself (it exited 1)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from cli.options import max_local_workers
from tests.e2e.test_local_cli import QUERIES, run_cli

pytestmark = pytest.mark.e2e


def _cases(tmp_path: Path) -> dict[str, tuple[list[str], str, str]]:
    empty = tmp_path / "empty.smi"
    empty.write_text("")
    a_file = tmp_path / "a-file"
    a_file.write_text("x")
    newline = tmp_path / "two\nlines.smi"
    newline.write_text("CCO\n")
    return {
        "workers 0": ([str(QUERIES), "--workers", "0"], "Mission.InvalidInput", "--workers"),
        "workers past memory": (
            [str(QUERIES), "--workers", str(2 * max_local_workers() + 10)],
            "Mission.InvalidInput",
            "available memory",
        ),
        "shards=true": (
            [str(QUERIES), "--param", "shards=true"],
            "Mission.InvalidInput",
            "params.shards: must be a number, not bool",
        ),
        "graceSeconds passes": (
            [str(QUERIES), "--param", "graceSeconds=5", "--param", "colour=red"],
            "Mission.InvalidInput",
            "params.colour: unknown parameter",  # graceSeconds itself is not refused
        ),
        "empty sample": ([str(empty)], "Mission.InvalidInput", "is empty"),
        "--out is a file": (
            [str(QUERIES), "--out", str(a_file)],
            "Mission.InvalidInput",
            "is a file",
        ),
        "--out under a file": (
            [str(QUERIES), "--out", str(a_file / "sub")],
            "Mission.InvalidInput",
            "cannot be created",
        ),
        "newline in the name": ([str(newline)], "Mission.InvalidInput", "control character"),
        "missing file": (
            [str(tmp_path / "nope.smi")],
            "Mission.InvalidInput",
            "sample file not found",
        ),
    }


CASES = [
    "empty sample",
    "workers 0",
    "workers past memory",
    "shards=true",
    "graceSeconds passes",
    "--out is a file",
    "--out under a file",
    "newline in the name",
    "missing file",
]


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("as_json", [False, True], ids=["text", "json"])
def test_careless_local_run_is_one_named_line(tmp_path: Path, case: str, as_json: bool) -> None:
    args, error, needle = _cases(tmp_path)[case]
    proc = run_cli("local", "run", *args, *(["--json"] if as_json else []), timeout=60)
    assert proc.returncode == 2, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith(f"lighthpc: {error}: ") and needle in lines[0]
    if as_json:
        body = json.loads(proc.stdout)
        assert (body["error"], body["exitCode"]) == (error, 2) and needle in body["message"]
    else:
        assert proc.stdout == ""


def test_a_failed_mission_names_its_first_failed_shard_and_its_stderr_tail(
    tmp_path: Path,
) -> None:
    """The mission fails (every shard exits 3): exit 1, the summary on stdout, and one named
    line on stderr with the shard and the last lines its program wrote to stderr."""
    script = (
        "import sys; print('first', file=sys.stderr); "
        "print('boom 42', file=sys.stderr); sys.exit(3)"
    )
    argv = json.dumps([sys.executable, "-c", script])
    proc = run_cli(
        "local", "run", str(QUERIES), "--out", str(tmp_path / "out"),
        "--param", "workload=command", "--param", f"argv={argv}", "--param", "shards=2",
        timeout=240,
    )  # fmt: skip
    assert proc.returncode == 1, proc.stderr[-3000:]
    named = [line for line in proc.stderr.splitlines() if line.startswith("lighthpc: ")]
    assert len(named) == 1, proc.stderr[-3000:]
    line = named[0]
    assert line.startswith("lighthpc: Mission.TooManyFailures: 2 shard(s) failed; first s0"), line
    assert "boom 42" in line, line
