"""RsltProc's reduce at N shards: peak RSS, /tmp bytes and time against the Lambda's limits.

Writes N molsim shard results (``--queries`` queries x ``--top-k`` rows each, as a node
writes them) into a local object directory, then runs, each in a fresh process so that peak
RSS is its own:

* ``read``   the baseline: the same objects fetched the way RsltProc fetches them
  (``aggregation.stream_merge``: FETCH_WORKERS in flight, each deleted after use), read and
  dropped: the bare cost of reading them;
* ``stream`` what RsltProc runs: ``stream_merge`` into ``MolsimMerger``;
* ``batch``  (``--batch``) the former path: every file on /tmp, then ``MolsimWorkload.reduce``.

The object store is a directory, not S3: what is measured is the reduce itself; the S3 GETs
(~20 ms each, FETCH_WORKERS at a time) are the same for every mode and are modelled in the
report as ``N x 20 ms / FETCH_WORKERS``. Memory is RSS growth over the process's own
baseline after imports, as the local Lambda runtime charges it. The limits are RsltProc's in
``localcloud/function_limits.json`` (the template's).

    .venv/bin/python benchmarks/reduce.py --shards 10000,100000
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._common import emit, log, quiet_stdout, table
from localcloud.lambda_runtime import load_function_limits
from workflow.aggregation import FETCH_WORKERS, stream_merge
from workflow.records import ShardRecord
from workflow.result_packs import ResultReader
from workflow.states import ShardStatus
from workflow.workloads.base import WorkInputs
from workflow.workloads.molsim import (
    SHARD_HEADER,
    MolsimMerger,
    MolsimWorkload,
    default_library_path,
)

S3_GET_SECONDS = 0.020  # one small GET from Lambda (benchmarks/README.md)
MIB = 1024 * 1024


class DirectoryObjects:
    """The ObjectStore calls stream_merge makes, on a local directory (bucket = subdir)."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def fetch(self, bucket: str, key: str, dest: Path) -> None:
        shutil.copyfile(self.root / bucket / key, dest)


class ReadOnly:
    """The baseline merger: reads each file and keeps nothing."""

    def __init__(self) -> None:
        self.bytes = 0

    def add(self, result: Path) -> None:
        self.bytes += len(result.read_bytes())

    def finish(self, out: Path) -> dict[str, Any]:
        out.write_text("")
        return {"bytes": self.bytes}


def write_inputs(root: Path, shards: int, queries: int, top_k: int) -> tuple[Path, list[str]]:
    lines = default_library_path().read_text(encoding="utf-8").splitlines()
    sample = root / "queries.smi"
    sample.write_text("\n".join(lines[1000 : 1000 + queries]) + "\n", encoding="utf-8")
    ids = [line.split()[1] for line in lines[1000 : 1000 + queries]]
    bucket = root / "objects" / "results"
    bucket.mkdir(parents=True)
    keys = []
    for s in range(shards):
        key = f"s{s:06d}.molsim.csv"
        with (bucket / key).open("w", encoding="utf-8", newline="") as handle:
            writer = csv.writer(handle, lineterminator="\n")
            writer.writerow(SHARD_HEADER)
            for q, q_id in enumerate(ids):
                for rank in range(1, top_k + 1):
                    sim = ((s * 7919 + q * 104729 + rank * 31) % 100_000) / 100_000
                    writer.writerow((q_id, rank, f"NSC{s}-{rank}", repr(sim), q, s * top_k + rank))
        keys.append(key)
    return sample, keys


def rss() -> int:
    with open("/proc/self/statm", encoding="ascii") as handle:
        return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def tree_bytes(path: Path) -> int:
    total = 0
    for dirpath, _dirs, files in os.walk(path):
        for name in files:
            with contextlib.suppress(FileNotFoundError):  # deleted while walking
                total += os.stat(os.path.join(dirpath, name)).st_size
    return total


def measure(mode: str, root: Path, sample: Path, top_k: int) -> dict[str, Any]:
    """One mode in this process: peak RSS growth (the shard records RsltProc reads from
    tblTrans included), peak /tmp bytes, seconds."""
    base = rss()
    keys = sorted(p.name for p in (root / "objects" / "results").iterdir())
    shards = [
        ShardRecord("m", k.split(".")[0], "u0", i, i, i + 1, ShardStatus.DONE, 1, result_key=k)
        for i, k in enumerate(keys)
    ]
    inputs = WorkInputs(sample=sample, options={"topK": top_k})
    tmp = Path(tempfile.mkdtemp(prefix=f"reduce-{mode}-", dir=root))
    peak = {"rss": 0, "tmp": 0}
    stop = threading.Event()

    def sample_loop() -> None:
        while not stop.wait(0.02):
            peak["rss"] = max(peak["rss"], rss() - base)
            peak["tmp"] = max(peak["tmp"], tree_bytes(tmp))

    watcher = threading.Thread(target=sample_loop, daemon=True)
    watcher.start()
    started = time.perf_counter()
    out = tmp / "result.csv"
    objects = DirectoryObjects(root / "objects")
    if mode == "batch":
        files = []
        for s in shards:
            local = tmp / str(s.result_key)
            objects.fetch("results", str(s.result_key), local)
            files.append(local)
        MolsimWorkload().reduce(files, out, inputs)
    else:
        merger = ReadOnly() if mode == "read" else MolsimMerger(inputs)
        reader = ResultReader(objects, "results", tmp, FETCH_WORKERS)
        stream_merge(merger, reader, shards, out)
    seconds = time.perf_counter() - started
    stop.set()
    watcher.join()
    peak["rss"] = max(peak["rss"], resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - base)
    peak["tmp"] = max(peak["tmp"], tree_bytes(tmp))
    return {"mode": mode, "seconds": seconds, "rssBytes": peak["rss"], "tmpBytes": peak["tmp"]}


def run_child(mode: str, root: Path, sample: Path, top_k: int) -> dict[str, Any]:
    cmd = [sys.executable, __file__, "--child", mode, str(root), str(sample), str(top_k)]
    done = subprocess.run(cmd, check=True, capture_output=True, text=True)
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--shards", default="10000,100000")
    parser.add_argument("--queries", type=int, default=12)
    parser.add_argument("--top-k", type=int, default=10)
    parser.add_argument("--batch", action="store_true", help="also run the former batch path")
    parser.add_argument("--child", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        mode, root, sample, top_k = args.child
        print(json.dumps(measure(mode, Path(root), Path(sample), int(top_k))))
        return
    quiet_stdout()
    limits = load_function_limits()["rslt_proc"]
    tables, figures = [], {}
    for n in (int(x) for x in args.shards.split(",")):
        with tempfile.TemporaryDirectory(prefix="bench-reduce-") as tmp:
            root = Path(tmp)
            log(f"writing {n} shard results")
            sample, _keys = write_inputs(root, n, args.queries, args.top_k)
            modes = ["read", "stream", *(["batch"] if args.batch else [])]
            runs = {}
            for mode in modes:
                log(f"{n} shards: {mode}")
                runs[mode] = run_child(mode, root, sample, args.top_k)
        gets = n * S3_GET_SECONDS / FETCH_WORKERS
        s, r = runs["stream"], runs["read"]
        rows: list[tuple[str, Any]] = [
            ("stream: seconds / read baseline", f"{s['seconds']:.2f} / {r['seconds']:.2f}"),
            ("stream: ratio to baseline (time)", s["seconds"] / max(r["seconds"], 1e-9)),
            (
                "stream: peak RSS MB / baseline",
                f"{s['rssBytes'] / MIB:.1f} / {r['rssBytes'] / MIB:.1f}",
            ),
            (
                "stream: peak /tmp MB / baseline",
                f"{s['tmpBytes'] / MIB:.2f} / {r['tmpBytes'] / MIB:.2f}",
            ),
            ("modelled S3 GET time (s)", gets),
            ("limit: memory MB", limits.memory_mb),
            ("limit: /tmp MB", limits.ephemeral_mb),
            ("limit: timeout s", limits.timeout_seconds),
            ("within memory", s["rssBytes"] / MIB < limits.memory_mb),
            ("within /tmp", s["tmpBytes"] / MIB < limits.ephemeral_mb),
            ("within timeout (with GETs)", s["seconds"] + gets < limits.timeout_seconds),
        ]
        if "batch" in runs:
            b = runs["batch"]
            rows += [
                ("batch: seconds", b["seconds"]),
                ("batch: peak RSS MB", b["rssBytes"] / MIB),
                ("batch: peak /tmp MB", b["tmpBytes"] / MIB),
            ]
        tables.append(table(f"RsltProc reduce, {n:,} molsim shards", rows))
        figures[str(n)] = {**runs, "modelledGetSeconds": gets}
    emit(tables, figures)


if __name__ == "__main__":
    main()
