"""``lighthpc local run --bundle`` as a user runs it: the k-mer example as a real local
mission (real node processes extracting and running the bundle), its summed result checked
against the same script run once over the whole file; hostile bundles refused by name."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
from click.testing import CliRunner

from cli.main import main
from tests.e2e.test_local_cli import ROOT, port_open, run_cli
from workflow.bundles import MANIFEST_NAME, pack_directory

pytestmark = pytest.mark.e2e

KMER = ROOT / "examples" / "kmer"
READS = KMER / "reads.txt"
JOB = KMER / "job"


def one_piece(reads: Path, work: Path) -> str:
    """The bundle's script over every line of ``reads`` in one process: no shards, no reduce."""
    manifest = json.loads((JOB / MANIFEST_NAME).read_text())
    args = manifest["entry"][2:]  # after {python} {bundle}/kmer_count.py
    env = {
        **os.environ,
        "LIGHTHPC_SHARD_INPUT": str(reads),
        "LIGHTHPC_SHARD_START": "0",
        "LIGHTHPC_SHARD_END": str(len(reads.read_text().splitlines())),
        "LIGHTHPC_SHARD_OUTPUT": str(work / "whole.csv"),
        "LIGHTHPC_SHARD_CHECKPOINT": str(work / "whole.ckpt"),
    }
    subprocess.run([sys.executable, str(JOB / "kmer_count.py"), *args], env=env, check=True)
    return (work / "whole.csv").read_text()


def test_the_kmer_bundle_runs_as_a_local_mission_and_equals_the_one_piece_count(
    tmp_path: Path,
) -> None:
    out = tmp_path / "out"
    proc = run_cli(
        "local", "run", str(READS), "--bundle", str(JOB), "--out", str(out), "--json",
        "--param", "shards=5", "--param", "heartbeatSeconds=60",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(proc.stdout)
    assert not port_open(report["endpoint"])
    assert report["status"] == "SUCCEEDED" and report["shardsDone"] == 5
    result = (out / "result.out").read_text()
    assert result == one_piece(READS, tmp_path)
    assert result.count("kmer,count") == 1  # summed, not concatenated


def _refused(tmp_path: Path, bundle: Path) -> dict[str, str]:
    """The CLI in-process (a subprocess per case costs a minute of imports on a busy box):
    the same click command, exit code and JSON object a user gets."""
    result = CliRunner().invoke(
        main,
        ["local", "run", str(READS), "--bundle", str(bundle), "--json", "--out", str(tmp_path)],
    )
    assert result.exit_code == 2, (result.output, result.exception)
    assert not isinstance(result.exception, Exception) or isinstance(result.exception, SystemExit)
    assert not (tmp_path / "result.out").exists(), "nothing ran"
    return json.loads(result.stdout)  # type: ignore[no-any-return]


def _job_copy(tmp_path: Path) -> Path:
    job = tmp_path / "job"
    job.mkdir(parents=True)
    for path in JOB.iterdir():
        if path.is_file():
            (job / path.name).write_bytes(path.read_bytes())
    return job


def test_hostile_bundles_get_one_named_error_and_exit_2_before_anything_starts(
    tmp_path: Path,
) -> None:
    escape = tmp_path / "escape.tar.gz"
    pack_directory(JOB, escape)
    with tarfile.open(tmp_path / "evil.tar.gz", "w:gz") as tar, tarfile.open(escape) as good:
        for member in good.getmembers():
            tar.addfile(member, good.extractfile(member) if member.isfile() else None)
        info = tarfile.TarInfo("../../outside.txt")
        tar.addfile(info)
    cases: dict[str, tuple[Path, str]] = {"path escape": (tmp_path / "evil.tar.gz", "escapes")}

    linked = _job_copy(tmp_path / "l")
    (linked / "passwd").symlink_to("/etc/passwd")
    cases["link in the directory"] = (linked, "is a link")

    bad_manifest = _job_copy(tmp_path / "m")
    (bad_manifest / MANIFEST_NAME).write_text('{"entry": ["{python}"], "timeoutSeconds": 0}')
    cases["bad manifest"] = (bad_manifest, "lighthpc-job.json.timeoutSeconds")

    no_entry = _job_copy(tmp_path / "e")
    (no_entry / "kmer_count.py").unlink()
    cases["missing entry"] = (no_entry, "names {bundle}/kmer_count.py, not in the bundle")

    cases["not an archive"] = (READS, "not a .zip or .tar.gz")
    for what, (bundle, says) in cases.items():
        error = _refused(tmp_path / what.replace(" ", "-"), bundle)
        assert error["error"] == "Mission.InvalidInput", what
        assert says in error["message"], (what, error)


def test_a_bundle_the_node_cannot_satisfy_fails_the_mission_with_its_named_error(
    tmp_path: Path,
) -> None:
    job = _job_copy(tmp_path)
    manifest = json.loads((job / MANIFEST_NAME).read_text())
    (job / MANIFEST_NAME).write_text(json.dumps({**manifest, "requirements": ["no-such-dist"]}))
    proc = run_cli(
        "local", "run", str(READS), "--bundle", str(job), "--out", str(tmp_path / "out"),
        "--param", "shards=2", "--workers", "1", "--param", "heartbeatSeconds=60",
    )  # fmt: skip
    assert proc.returncode == 1, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr
    assert "Bundle.Invalid" in proc.stderr and "no-such-dist" in proc.stderr, proc.stderr
