"""``lighthpc local run`` as a user runs it: a real CLI process, real node processes.

Each test starts the CLI as a subprocess and checks what a user would notice: the exit code,
the one-line errors, the summary, the result file — and that nothing (emulator port, node
process) is left running afterwards, whatever the exit path.
"""

from __future__ import annotations

import csv
import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from rdkit import DataStructs, RDConfig, rdBase
from rdkit.Chem import MolFromSmiles, rdFingerprintGenerator

ROOT = Path(__file__).parents[2]
QUERIES = ROOT / "examples" / "molsim" / "queries.smi"
NCI = Path(RDConfig.RDDataDir) / "NCI" / "first_5K.smi"
CLI = [sys.executable, "-m", "cli.entry"]  # what the `lighthpc` script runs
RUN_TIMEOUT = 240


def read_smiles(path: Path) -> list[tuple[str, str]]:
    """(smiles, id) per molecule line; id = 2nd column, else the 0-based line index."""
    out = []
    for index, line in enumerate(path.read_text().splitlines()):
        parts = line.split()
        if not parts or parts[0].startswith("#"):
            continue
        out.append((parts[0], parts[1] if len(parts) > 1 else str(index)))
    return out


def one_piece(queries: Path, library: Path, top_k: int) -> list[list[str]]:
    """The whole search in one loop, written independently of the workload's code."""
    gen = rdFingerprintGenerator.GetMorganGenerator(radius=2, fpSize=2048)
    with rdBase.BlockLogs():
        refs = [
            (pos, rid, MolFromSmiles(smi)) for pos, (smi, rid) in enumerate(read_smiles(library))
        ]
        qs = [(qid, MolFromSmiles(smi)) for smi, qid in read_smiles(queries)]
    ref_fps = [(pos, rid, gen.GetFingerprint(m)) for pos, rid, m in refs if m is not None]
    fps = [fp for _, _, fp in ref_fps]
    rows: list[list[str]] = []
    for qid, mol in sorted((q for q in qs if q[1] is not None), key=lambda q: q[0]):
        sims = DataStructs.BulkTanimotoSimilarity(gen.GetFingerprint(mol), fps)
        ranked = sorted(zip(sims, ref_fps, strict=True), key=lambda x: (-x[0], x[1][1], x[1][0]))
        for rank, (sim, (_, rid, _)) in enumerate(ranked[:top_k], start=1):
            rows.append([qid, str(rank), rid, f"{sim:.6f}"])
    return rows


# Every CLI this module starts carries this marker in its environment, and node processes
# inherit it: leftovers are found by marker, so other work on the machine never counts.
MARKER_NAME, MARKER_VALUE = "LIGHTHPC_TEST_RUN", uuid.uuid4().hex
RUN_MARKER = f"{MARKER_NAME}={MARKER_VALUE}"
CLI_ENV = {**os.environ, MARKER_NAME: MARKER_VALUE}


def node_processes() -> set[int]:
    """Pids of live node-agent processes started (indirectly) by this test module."""
    pids = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
            environ = (entry / "environ").read_bytes()
        except OSError:
            continue
        is_node = any(
            marker in cmdline
            for marker in (b"node_agent.main", b"localcloud.iam.node", b"lighthpc-node")
        )
        if is_node and RUN_MARKER.encode() in environ.split(b"\0"):
            pids.add(int(entry.name))
    return pids


def port_open(endpoint: str) -> bool:
    host, port = endpoint.removeprefix("http://").split(":")
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, int(port))) == 0


@pytest.fixture
def no_leftovers() -> Iterator[None]:
    before = node_processes()
    yield
    deadline = time.monotonic() + 10
    while node_processes() - before and time.monotonic() < deadline:
        time.sleep(0.1)
    assert node_processes() - before == set(), "node processes outlived the CLI"


def run_cli(*args: str, timeout: float = RUN_TIMEOUT) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*CLI, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
        check=False,
        env=CLI_ENV,
    )


def run_json(
    tmp_path: Path, *extra: str, timeout: float = RUN_TIMEOUT
) -> tuple[dict[str, Any], Path]:
    out = tmp_path / "out"
    proc = run_cli(
        "local", "run", str(QUERIES), "--out", str(out), "--json", *extra, timeout=timeout
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(proc.stdout)
    assert not port_open(report["endpoint"]), "the emulator port is still open"
    return report, out


def result_rows(path: Path) -> list[list[str]]:
    with path.open() as fh:
        rows = list(csv.reader(fh))
    assert rows[0] == ["query_id", "rank", "ref_id", "similarity"]
    return rows[1:]


@pytest.fixture(scope="module")
def expected() -> list[list[str]]:
    return one_piece(QUERIES, NCI, 10)


def test_readme_run_completes_and_equals_the_one_piece_search(
    tmp_path: Path, expected: list[list[str]], no_leftovers: None
) -> None:
    report, out = run_json(tmp_path)
    assert report["status"] == "SUCCEEDED"
    assert report["shards"] >= 8 and report["units"] >= 2
    assert report["shardsDone"] == report["shards"] and report["shardsFailed"] == 0
    assert result_rows(out / "result.csv") == expected
    assert json.loads((out / "summary.json").read_text())["missionId"] == report["missionId"]
    billed = report["instanceSeconds"]  # every node billed its run time: type|capacity|node
    assert billed and all(k.split("|")[1] == "spot" and v > 0 for k, v in billed.items())


def test_chaos_interrupt_keeps_the_result_identical(
    tmp_path: Path, expected: list[list[str]], no_leftovers: None
) -> None:
    report, out = run_json(tmp_path, "--chaos", "interrupt=0.3,seed=3", "--param", "maxNodes=4")
    assert report["status"] == "SUCCEEDED"
    assert report["chaos"]["interrupted"] >= 1
    assert report["interruptions"] == report["chaos"]["interrupted"]
    assert report["retries"] >= report["interruptions"]
    assert result_rows(out / "result.csv") == expected


def test_chaos_kill_and_duplicate_event_keep_one_identical_mission(
    tmp_path: Path, expected: list[list[str]], no_leftovers: None
) -> None:
    report, out = run_json(tmp_path, "--chaos", "kill=1,dup=1")
    assert report["status"] == "SUCCEEDED"
    assert report["chaos"]["killed"] == 1 and report["retries"] >= 1
    assert report["executions"] == 2 and report["duplicatesIgnored"] == 1
    assert result_rows(out / "result.csv") == expected


def test_chaos_run_draws_a_timeline_of_its_records(tmp_path: Path, no_leftovers: None) -> None:
    """Interruptions and a kill: timeline.png beside the result, and in summary.json what it
    shows, which is what the records say (RsltProc's counts, from the same tables): a row per
    launch, a relaunch per retry, a mark per interrupted attempt, a bar per done shard.

    noop shards of 3 s (light next to RDKit on a loaded machine); every first attempt that is
    not the killed one is interrupted once busy."""
    noop = ("workload=noop", "items=400", "sleepMs=60", "shards=8", "maxNodes=4")
    params = [arg for p in (*noop, "heartbeatSeconds=30") for arg in ("--param", p)]
    report, out = run_json(tmp_path, *params, "--chaos", "interrupt=1,kill=1", timeout=600)
    assert report["status"] == "SUCCEEDED"
    assert report["chaos"]["killed"] == 1 and report["chaos"]["interrupted"] >= 1
    timeline = report["timeline"]
    assert Path(timeline["file"]) == (out / "timeline.png").resolve()
    assert (out / "timeline.png").read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    rows = timeline["rows"]
    keys = [(r["unitId"], r["attempt"]) for r in rows]
    assert len(set(keys)) == len(keys) == report["units"] + report["retries"]
    for unit in {u for u, _ in keys}:
        attempts = [a for u, a in keys if u == unit]
        assert attempts == list(range(1, len(attempts) + 1))
    marks = [(r["unitId"], r["attempt"], m["kind"]) for r in rows for m in r["marks"]]
    kinds = [kind for _, _, kind in marks]
    assert kinds.count("Spot interruption") == report["interruptions"]
    assert kinds.count("relaunch") == report["retries"]
    assert kinds.count("failed shard") == report["shardsFailed"] == 0
    assert sum(r["bars"] for r in rows) == report["shardsDone"] == report["shards"]
    # The killed node's unit: relaunched after an attempt that no Spot notice ended.
    interrupted = {(u, a) for u, a, kind in marks if kind == "Spot interruption"}
    after_loss = [(u, a) for u, a in keys if a > 1 and (u, a - 1) not in interrupted]
    assert len(after_loss) >= report["chaos"]["killed"]
    billed = {key.split("|")[2] for key in report["instanceSeconds"]}
    on_rows = {r["instanceId"] for r in rows} & billed
    assert on_rows | set(timeline["unplacedNodes"]) == billed


def _bad_inputs(tmp_path: Path) -> dict[str, tuple[list[str], str]]:
    empty = tmp_path / "empty.smi"
    empty.write_text("")
    junk = tmp_path / "junk.smi"
    junk.write_text("this-is-not-smiles\n%%%%\nC1CC\n")
    return {
        "missing file": ([str(tmp_path / "nope.smi")], "sample file not found"),
        "unknown param": (
            [str(QUERIES), "--param", "colour=red"],
            "params.colour: unknown parameter",
        ),
        "missing library": (
            [str(QUERIES), "--library", str(tmp_path / "x.smi")],
            "library file not found",
        ),
        "empty file": ([str(empty)], "is empty"),
        "invalid SMILES": ([str(junk)], "no valid SMILES"),
    }


@pytest.mark.parametrize(
    "case", ["missing file", "unknown param", "missing library", "empty file", "invalid SMILES"]
)
def test_bad_input_is_one_clear_line(tmp_path: Path, case: str, no_leftovers: None) -> None:
    args, needle = _bad_inputs(tmp_path)[case]
    proc = run_cli("local", "run", *args, "--out", str(tmp_path / "out"))
    assert proc.returncode != 0
    errors = [line for line in proc.stderr.splitlines() if line.startswith("lighthpc:")]
    assert len(errors) == 1, proc.stderr
    assert needle in errors[0]
    assert "Traceback" not in proc.stderr


def test_ctrl_c_stops_everything(tmp_path: Path, no_leftovers: None) -> None:
    before = node_processes()
    proc = subprocess.Popen(
        [
            *CLI,
            "local",
            "run",
            str(QUERIES),
            "--out",
            str(tmp_path / "out"),
            "--param",
            "sleepMs=0",
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=CLI_ENV,
    )
    try:
        deadline = time.monotonic() + 120
        while not node_processes() - before:
            assert proc.poll() is None, proc.communicate()[1][-2000:]
            assert time.monotonic() < deadline, "no node process started"
            time.sleep(0.1)
        proc.send_signal(signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, stderr[-2000:]
    assert [line for line in stderr.splitlines() if line.strip()] == [
        "lighthpc: Interrupted: SIGINT; emulator and nodes stopped"
    ], stderr[-2000:]
    starts = [line for line in stdout.splitlines() if line.startswith("local stack at")]
    assert starts, stdout[-2000:]
    endpoint = starts[0].split()[3]
    assert not port_open(endpoint)


def test_every_command_has_help() -> None:
    for args in (
        ["--help"],
        ["local", "--help"],
        ["local", "run", "--help"],
        ["local", "up", "--help"],
        ["show", "--help"],
    ):
        proc = run_cli(*args, timeout=60)
        assert proc.returncode == 0 and "Usage:" in proc.stdout, args
    assert os.path.exists(QUERIES)


def _ignore_sigint() -> None:
    """As a shell starts a background job (`lighthpc local up &`): SIGINT ignored."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def test_local_up_serves_the_stock_api_until_ctrl_c(tmp_path: Path, no_leftovers: None) -> None:
    """Started as a background job, as `local up` often is: SIGINT still stops it (it once
    did not: Python raises no KeyboardInterrupt for a signal ignored at its start)."""
    import boto3

    proc = subprocess.Popen(
        [*CLI, "local", "up"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=CLI_ENV,
        preexec_fn=_ignore_sigint,  # noqa: PLW1509 -- only a signal disposition, no threads yet
    )
    try:
        assert proc.stdout is not None
        lines: list[str] = []
        deadline = time.monotonic() + 90
        while not any("AWS_ENDPOINT_URL=" in line for line in lines):
            assert time.monotonic() < deadline and proc.poll() is None, lines
            lines.append(proc.stdout.readline())
        endpoint = next(
            part.split("=", 1)[1]
            for line in lines
            for part in line.split()
            if part.startswith("AWS_ENDPOINT_URL=")
        )
        session = boto3.session.Session(
            aws_access_key_id="testing", aws_secret_access_key="testing", region_name="us-east-1"
        )
        s3 = session.client("s3", endpoint_url=endpoint)
        sfn = session.client("stepfunctions", endpoint_url=endpoint)
        s3.put_object(Bucket="lighthpc-source", Key="incoming/up.smi", Body=QUERIES.read_bytes())
        machine = sfn.list_state_machines()["stateMachines"][0]["stateMachineArn"]

        def finished() -> str | None:
            runs = sfn.list_executions(stateMachineArn=machine)["executions"]
            return runs[0]["status"] if runs and runs[0]["status"] != "RUNNING" else None

        deadline = time.monotonic() + 180
        while (status := finished()) is None:
            assert time.monotonic() < deadline, "the uploaded mission did not finish"
            time.sleep(0.5)
        assert status == "SUCCEEDED"
        proc.send_signal(signal.SIGINT)
        try:
            proc.communicate(timeout=60)
        except subprocess.TimeoutExpired:  # a hung shutdown: its stacks, then the failure
            proc.send_signal(signal.SIGUSR2)
            time.sleep(2)
            proc.kill()
            _, stderr = proc.communicate(timeout=30)
            pytest.fail(
                f"local up did not stop within 60 s of Ctrl-C; its threads:\n{stderr[-8000:]}"
            )
    finally:
        if proc.poll() is None:
            proc.kill()
    assert not port_open(endpoint)
