"""Parallel efficiency of a local molsim mission versus the same search done in one piece.

Queries are molecules taken from the reference library itself (the 4,999 NCI molecules RDKit
ships, ``default_library_path()``): the first Q molecule lines, renamed ``q<id>``. With
``--queries auto`` (the default) Q is calibrated so that the one-process direct search
(``search_library``, one core) takes at least ``--min-direct`` seconds (30): a 300-query probe
is timed and extrapolated with a 25 % margin (past the library size the molecules repeat
under new ids).

In the same script run:

1. direct: ``search_library(queries, library, topK)`` + ``write_hits_csv`` in this process;
2. local mission: ``LocalSession(workers=2)`` (2 nodes, 1 slot each on 2 cores), manual
   StartExecution with ``workload=molsim, shards=S, maxNodes=2``; e2e = StartExecution to the
   end of the execution (the stack's start-up is reported apart).

Figures: direct seconds, e2e seconds, ratio e2e / direct (ideal on 2 cores: 0.5), and whether
the mission's result CSV is byte-identical to the direct one. ``search_library`` sorts all
4,999 similarities of every query while a shard keeps a running top-K behind a similarity
floor, so the direct reference is slower per query than the mission's own code: a third
figure runs that code in one process (one shard over the whole library + reduce) and gives
the ratio e2e / same-code, the honest parallel-efficiency figure.

    .venv/bin/python benchmarks/efficiency.py
"""

from __future__ import annotations

import argparse
import hashlib
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks._common import MACHINE, Observer, emit, log, quiet_stdout, run_mission, table
from benchmarks.instruments import LambdaCounter
from workflow.states import ExecutionStatus

PROBE_QUERIES = 300
MARGIN = 1.25


def write_queries(path: Path, count: int) -> int:
    """The first ``count`` library molecules as queries; past the library's end it starts
    over with ids ``q<id>r<k>`` (distinct ids, same molecules)."""
    from workflow.workloads.molsim import default_library_path, read_smiles_file

    entries = read_smiles_file(default_library_path(), "reference library")
    lines = []
    for i in range(count):
        e = entries[i % len(entries)]
        lap = i // len(entries)
        lines.append(f"{e.smiles} q{e.ident}{f'r{lap}' if lap else ''}\n")
    path.write_text("".join(lines))
    return count


def same_code_one_process(queries: Path, top_k: int, out: Path) -> float:
    """The mission's own code path in one process: one shard over the whole library, then
    the workload's reduce (what a 1-shard, 1-node mission computes, without orchestration)."""
    from workflow.params import MissionParams
    from workflow.workloads.base import ShardContext, ShardRange, WorkInputs
    from workflow.workloads.molsim import MolsimWorkload

    workload = MolsimWorkload()
    inputs = WorkInputs(sample=queries, options={"topK": top_k})
    started = time.perf_counter()
    n = workload.count_items(inputs)
    work = out.parent / "one-shard"
    work.mkdir(parents=True, exist_ok=True)
    every = MissionParams().checkpoint_every  # the block size a mission's shards use (250)
    done = workload.run(
        ShardRange("s000000", 0, 0, n), inputs, ShardContext(work, checkpoint_every=every)
    )
    workload.reduce([done.result], out, inputs)  # type: ignore[union-attr]
    return time.perf_counter() - started


def direct(queries: Path, top_k: int, out: Path) -> float:
    from workflow.workloads.molsim import default_library_path, search_library, write_hits_csv

    started = time.perf_counter()
    hits = search_library(queries, default_library_path(), top_k)
    write_hits_csv(hits, out)
    return time.perf_counter() - started


def calibrate(work: Path, min_direct: float, top_k: int) -> int:
    probe = work / "probe.smi"
    write_queries(probe, PROBE_QUERIES)
    seconds = direct(probe, top_k, work / "probe.csv")
    wanted = int(min_direct * MARGIN / seconds * PROBE_QUERIES)
    log(f"probe: {PROBE_QUERIES} queries in {seconds:.2f} s -> {wanted} queries wanted")
    return max(PROBE_QUERIES, wanted)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--queries", default="auto", help="query count, or 'auto' (calibrate)")
    ap.add_argument("--min-direct", type=float, default=30.0, help="seconds (auto mode)")
    ap.add_argument("--shards", type=int, default=4)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--top-k", type=int, default=10)
    return ap.parse_args(argv)


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:16]


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    quiet_stdout()
    from localcloud.session import LocalSession

    work = Path(tempfile.mkdtemp(prefix="lighthpc-efficiency-"))
    q = (
        calibrate(work, args.min_direct, args.top_k)
        if args.queries == "auto"
        else int(args.queries)
    )
    queries = work / "queries.smi"
    q = write_queries(queries, q)
    log(f"direct search: {q} queries x 4,999 molecules, one process ...")
    direct_csv = work / "direct.csv"
    direct_s = direct(queries, args.top_k, direct_csv)
    log(f"direct: {direct_s:.1f} s; the mission's code path in one process ...")
    same_csv = work / "same-code.csv"
    same_s = same_code_one_process(queries, args.top_k, same_csv)
    log(f"same code, one process: {same_s:.1f} s")
    log("starting the local stack ...")
    setup_started = time.monotonic()
    with LocalSession(workers=args.workers) as session, LambdaCounter(session.cloud.lambdas) as lam:
        setup_s = time.monotonic() - setup_started
        observer = Observer(session)
        params: dict[str, Any] = {
            "workload": "molsim",
            "shards": args.shards,
            "maxNodes": args.workers,
            "topK": args.top_k,
            "heartbeatSeconds": 60,
        }
        log(f"local mission: {args.shards} shards on {args.workers} nodes ...")
        run = run_mission(
            session,
            observer,
            queries,
            params,
            on_tick=lambda t: log(f"mission running {t:.0f} s"),
            tick_seconds=10,
        )
        mission_csv = session.download_result(run.mission, work / "mission")
    identical = mission_csv is not None and mission_csv.read_bytes() == direct_csv.read_bytes()
    ratio = run.wall / direct_s
    figures = {
        "benchmark": "efficiency",
        "machine": MACHINE,
        "queries": q,
        "libraryMolecules": 4999,
        "shards": args.shards,
        "workers": args.workers,
        "topK": args.top_k,
        "directSeconds": round(direct_s, 2),
        "e2eSeconds": round(run.wall, 2),
        "stackSetupSeconds": round(setup_s, 2),
        "ratio": round(ratio, 3),
        "sameCodeOneProcessSeconds": round(same_s, 2),
        "ratioVsSameCode": round(run.wall / same_s, 3),
        "sameCodeIdentical": same_csv.read_bytes() == direct_csv.read_bytes(),
        "idealRatio": round(1 / args.workers, 3),
        "efficiency": round(direct_s / (args.workers * run.wall), 3),
        "status": run.status,
        "lambdaSeconds": {k: round(v, 2) for k, v in lam.seconds.items()},
        "identical": identical,
        "directSha256": sha(direct_csv)[:16],
        "missionSha256": sha(mission_csv)[:16] if mission_csv else None,
        "directAtLeastMin": direct_s >= args.min_direct,
    }
    rows = [
        ("queries x library", f"{q} x 4,999"),
        ("shards / nodes", f"{args.shards} / {args.workers}"),
        ("direct one-process (s)", figures["directSeconds"]),
        ("local mission e2e (s)", figures["e2eSeconds"]),
        ("ratio e2e / direct", figures["ratio"]),
        ("ideal ratio", figures["idealRatio"]),
        ("same code path, one process (s)", figures["sameCodeOneProcessSeconds"]),
        ("ratio e2e / same code path", figures["ratioVsSameCode"]),
        ("parallel efficiency", figures["efficiency"]),
        ("result byte-identical", identical),
        ("stack start-up, not in e2e (s)", figures["stackSetupSeconds"]),
        *[(f"in e2e: Lambda {k} (s)", v) for k, v in figures["lambdaSeconds"].items()],
    ]
    emit([table("efficiency: molsim, local mode vs one piece", rows)], figures)
    return 0 if identical and run.status == ExecutionStatus.SUCCEEDED else 1


if __name__ == "__main__":
    sys.exit(main())
