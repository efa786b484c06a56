"""A local molsim mission against what a chemist would run instead, on the same search.

Queries are molecules taken from the reference library itself (the 4,999 NCI molecules RDKit
ships, ``default_library_path()``): the first Q molecule lines, renamed ``q<id>``. With
``--queries auto`` (the default) Q is calibrated so that the plain script takes at least
``--min-script`` seconds (30): 300- and 600-query probes are timed and extrapolated with a
25 % margin (past the library size the molecules repeat under new ids).

In the same script run:

1. **plain script** (``plain_script`` below): the ten lines a chemist would write: Morgan
   r2/2048 fingerprints, ``DataStructs.BulkTanimotoSimilarity``, ``heapq.nlargest`` top-K, one
   process. The references are sorted by id once, so ``nlargest``'s stable ties give molsim's
   tie order (ref_id, then library position) and the two results can be compared byte for
   byte;
2. **FPSim2** (``fpsim2==0.7.4``, the ``bench`` extra), when installed: ``FPSim2Engine.top_k``
   per query, one worker; the database build is timed apart;
3. **shard code, one process**: the mission's own shard code on one core (one shard over the
   whole library, cold fingerprint cache), then the workload's reduce, timed apart (it runs
   in RsltProc and parses the queries again). The shard's time over the script's is the
   per-core efficiency of the shard code; the time spent encoding and handing
   over checkpoints and progress is measured inside that run;
4. **local mission**: ``LocalSession(workers=2)`` (2 nodes, 1 slot each on 2 cores), manual
   StartExecution with ``workload=molsim, shards=S, maxNodes=2``; e2e = StartExecution to the
   end of the execution (the stack's start-up is reported apart).

Figures: e2e / script, e2e / FPSim2, shard code / script (per core), and whether the
mission's and the shard code's result CSVs are byte-identical to the script's. The fixed costs
are reported apart: PlanMission, the launches and RsltProc (the in-process Lambdas' seconds),
node start-up (per unit, from its attempt's ``launchedAt`` to its first shard's claim: the
agent process, its imports, identity and staging), the workload's warm-up on a node (cold
fingerprint caches of its share of the partitioned file and of the other file whole, timed in
this process: each node pays it in its first shards), and the stack start-up (not in e2e).

    .venv/bin/python benchmarks/efficiency.py
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import heapq
import pickle
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks._common import MACHINE, Observer, emit, log, quiet_stdout, run_mission, table
from benchmarks.instruments import LambdaCounter
from workflow.input_limits import MAX_SAMPLE_LINES
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


def _smiles_lines(path: Path) -> list[tuple[str, str]]:
    """(smiles, id) of a SMILES file's molecule lines; the id defaults to the line index."""
    rows = []
    for number, line in enumerate(path.read_text().splitlines()):
        fields = line.split()
        if fields and not fields[0].startswith("#"):
            rows.append((fields[0], fields[1] if len(fields) > 1 else str(number)))
    return rows


def plain_script(queries: Path, library: Path, top_k: int, out: Path) -> float:
    """The script a chemist would write: one process, RDKit's bulk call, heapq top-K."""
    from rdkit import Chem, DataStructs, RDLogger
    from rdkit.Chem import rdFingerprintGenerator

    started = time.perf_counter()
    RDLogger.DisableLog("rdApp.*")
    gen = rdFingerprintGenerator.GetMorganGenerator(radius=2, fpSize=2048)
    refs = []
    for position, (smiles, ident) in enumerate(_smiles_lines(library)):
        mol = Chem.MolFromSmiles(smiles)
        if mol is not None:
            refs.append((ident, position, gen.GetFingerprint(mol)))
    refs.sort(key=lambda r: (r[0], r[1]))  # stable nlargest ties then follow (ref_id, position)
    ref_fps = [fp for _, _, fp in refs]
    hits = []
    for order, (smiles, qid) in enumerate(_smiles_lines(queries)):
        mol = Chem.MolFromSmiles(smiles)
        if mol is None:
            continue
        sims = DataStructs.BulkTanimotoSimilarity(gen.GetFingerprint(mol), ref_fps)
        best = heapq.nlargest(top_k, range(len(sims)), key=sims.__getitem__)
        hits.append((qid, order, [(refs[i][0], sims[i]) for i in best]))
    hits.sort(key=lambda h: (h[0], h[1]))
    with out.open("w", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(("query_id", "rank", "ref_id", "similarity"))
        for qid, _, top in hits:
            for rank, (ref_id, sim) in enumerate(top, start=1):
                writer.writerow((qid, rank, ref_id, f"{sim:.6f}"))
    return time.perf_counter() - started


def fpsim2_search(queries: Path, library: Path, top_k: int, work: Path) -> tuple[float, float]:
    """(database build seconds, search seconds) with FPSim2, one worker."""
    from FPSim2 import FPSim2Engine
    from FPSim2.io import create_db_file
    from rdkit import Chem, RDLogger

    RDLogger.DisableLog("rdApp.*")
    db = work / "library.h5"
    started = time.perf_counter()
    create_db_file(
        [[smiles, int(ident)] for smiles, ident in _smiles_lines(library)],
        str(db),
        mol_format="smiles",
        fp_type="Morgan",
        fp_params={"radius": 2, "fpSize": 2048},
    )
    engine = FPSim2Engine(str(db))
    built = time.perf_counter() - started
    started = time.perf_counter()
    for smiles, _ in _smiles_lines(queries):
        mol = Chem.MolFromSmiles(smiles)
        if mol is not None:  # FPSim2 raises on an unparsable query; the script skips it too
            engine.top_k(mol, k=top_k, threshold=0.0, n_workers=1)
    return built, time.perf_counter() - started


@contextmanager
def timed(owner: Any, name: str, into: list[float]) -> Iterator[None]:
    """Add the seconds spent in ``owner.name`` calls to ``into[0]`` while inside."""
    original: Callable[..., Any] = getattr(owner, name)

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            return original(*args, **kwargs)
        finally:
            into[0] += time.perf_counter() - started

    setattr(owner, name, wrapper)
    try:
        yield
    finally:
        setattr(owner, name, original)


def shard_code_one_process(queries: Path, top_k: int, out: Path) -> tuple[float, float, float]:
    """The mission's shard code in one process: one shard over the whole index space (cold
    fingerprint cache), then the workload's reduce. Returns (shard seconds, reduce seconds,
    seconds of the shard spent encoding checkpoints and in the checkpoint/progress
    callbacks)."""
    from workflow.params import MissionParams
    from workflow.workloads import molsim
    from workflow.workloads.base import ShardContext, ShardRange, WorkInputs

    workload = molsim.MolsimWorkload()
    inputs = WorkInputs(sample=queries, options={"topK": top_k})
    work = out.parent / "one-shard" / "shards" / "s000000"
    work.mkdir(parents=True, exist_ok=True)
    spent = [0.0]

    def callback(*args: object) -> None:
        """What the node's worker does with a callback: pickle it onto the agent's queue."""
        started = time.perf_counter()
        pickle.dumps(args)
        spent[0] += time.perf_counter() - started

    every = MissionParams().checkpoint_every  # the block size a mission's shards use
    context = ShardContext(
        work, save_checkpoint=callback, progress=callback, checkpoint_every=every
    )
    started = time.perf_counter()
    with timed(molsim, "_encode_checkpoint", spent):
        n = workload.count_items(inputs)
        done = workload.run(ShardRange("s000000", 0, 0, n), inputs, context)
    shard_s = time.perf_counter() - started
    started = time.perf_counter()
    workload.reduce([done.result], out, inputs)  # type: ignore[union-attr]
    return shard_s, time.perf_counter() - started, spent[0]


def warm_up(queries: Path, work: Path, nodes: int) -> tuple[float, float]:
    """(queries, library) seconds to build one node's fingerprint caches, cold: what each node
    pays in its first shards before any similarity is computed. The partitioned file's share
    is ``1 / nodes`` of it (the shards' ranges), the other file is whole (``molsim.partition``
    picks the axis: the query axis at these sizes)."""
    from workflow.workloads import molsim
    from workflow.workloads.base import WorkInputs

    extent = molsim.partition(WorkInputs(sample=queries))
    share = (0, extent.items // nodes)
    on_queries = extent.axis is molsim.Axis.QUERIES
    cache = work / "warm-up"
    started = time.perf_counter()
    molsim.query_index(queries, cache, share if on_queries else None)
    queries_s = time.perf_counter() - started
    started = time.perf_counter()
    molsim.library_index(molsim.default_library_path(), cache, None if on_queries else share)
    return queries_s, time.perf_counter() - started


def node_start_seconds(store: Any, mission_id: str) -> list[float]:
    """Per unit: its attempt's ``launchedAt`` (the launch Lambda) to the first claim of one of
    its shards (the agent started, read its identity, staged the inputs)."""
    first_claim: dict[str, float] = {}
    for shard in store.list_shards(mission_id):
        if shard.claimed_at is not None:
            first_claim[shard.unit_id] = min(
                shard.claimed_at, first_claim.get(shard.unit_id, shard.claimed_at)
            )
    return [
        round(first_claim[u.unit_id] - u.launched_at, 2)
        for u in store.list_units(mission_id)
        if u.launched_at is not None and u.unit_id in first_claim
    ]


def calibrate(work: Path, min_script: float, top_k: int) -> int:
    """Queries for ``min_script`` seconds of script: two probes split the fixed cost (the
    library's fingerprints) from the per-query cost."""
    from workflow.workloads.molsim import default_library_path

    seconds = []
    for count in (PROBE_QUERIES, 2 * PROBE_QUERIES):
        probe = work / f"probe{count}.smi"
        write_queries(probe, count)
        seconds.append(plain_script(probe, default_library_path(), top_k, work / "probe.csv"))
    if seconds[1] > seconds[0]:
        per_query = (seconds[1] - seconds[0]) / PROBE_QUERIES
    else:  # the load made the larger probe faster: charge its whole time to its queries
        per_query = seconds[1] / (2 * PROBE_QUERIES)
    fixed = max(seconds[0] - per_query * PROBE_QUERIES, 0.0)
    wanted = int((min_script * MARGIN - fixed) / per_query)
    log(f"probe: {per_query * 1000:.2f} ms per query + {fixed:.2f} s -> {wanted} queries wanted")
    return min(max(PROBE_QUERIES, wanted), MAX_SAMPLE_LINES)  # a mission takes no more


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--queries", default="auto", help="query count, or 'auto' (calibrate)")
    ap.add_argument("--min-script", type=float, default=30.0, help="seconds (auto mode)")
    ap.add_argument("--shards", type=int, default=4)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--top-k", type=int, default=10)
    return ap.parse_args(argv)


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:16]


def _baselines(args: argparse.Namespace, work: Path, queries: Path) -> dict[str, Any]:
    """Everything measured without the local stack, in this process, one core."""
    from workflow.workloads.molsim import default_library_path

    library = default_library_path()
    q = sum(1 for _ in queries.open())
    log(f"plain script: {q} queries x 4,999 molecules, one process ...")
    cpu = time.process_time()
    script_s = plain_script(queries, library, args.top_k, work / "script.csv")
    script_cpu = time.process_time() - cpu
    log(f"plain script: {script_s:.1f} s; FPSim2 ...")
    try:
        fps_build, fps_s = fpsim2_search(queries, library, args.top_k, work)
    except ImportError:
        log("FPSim2 not installed (pip install -e '.[bench]'): skipped")
        fps_build, fps_s = None, None
    log(f"FPSim2: {fps_s} s; the shard code in one process ...")
    cpu = time.process_time()
    shard_s, reduce_s, callbacks_s = shard_code_one_process(
        queries, args.top_k, work / "shard-code.csv"
    )
    shard_cpu = time.process_time() - cpu  # shard + reduce: CPU time is robust to load
    log(f"shard code, one process: {shard_s:.1f} s + reduce {reduce_s:.1f} s")
    warm_queries_s, warm_library_s = warm_up(queries, work, args.workers)
    return {
        "queries": q,
        "scriptSeconds": round(script_s, 2),
        "fpsim2Seconds": round(fps_s, 2) if fps_s is not None else None,
        "fpsim2BuildSeconds": round(fps_build, 2) if fps_build is not None else None,
        "shardCodeSeconds": round(shard_s, 2),
        "shardCodePerCoreVsScript": round(shard_s / script_s, 3),
        "reduceSeconds": round(reduce_s, 2),
        "shardAndReduceVsScript": round((shard_s + reduce_s) / script_s, 3),
        "scriptCpuSeconds": round(script_cpu, 2),
        "shardAndReduceCpuSeconds": round(shard_cpu, 2),
        "shardAndReduceCpuVsScript": round(shard_cpu / script_cpu, 3),
        "checkpointProgressSeconds": round(callbacks_s, 3),
        "warmUpQueriesSeconds": round(warm_queries_s, 2),
        "warmUpLibrarySeconds": round(warm_library_s, 2),
        "checkpointProgressShare": round(callbacks_s / shard_s, 4),
        "shardCodeIdentical": sha(work / "shard-code.csv") == sha(work / "script.csv"),
        "scriptAtLeastMin": script_s >= args.min_script,
    }


def warm_up_text(base: dict[str, Any]) -> str:
    return f"{base['warmUpQueriesSeconds']} / {base['warmUpLibrarySeconds']}"


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    quiet_stdout()
    from localcloud.session import LocalSession

    work = Path(tempfile.mkdtemp(prefix="lighthpc-efficiency-"))
    wanted = (
        calibrate(work, args.min_script, args.top_k)
        if args.queries == "auto"
        else int(args.queries)
    )
    queries = work / "queries.smi"
    write_queries(queries, wanted)
    base = _baselines(args, work, queries)
    log("starting the local stack ...")
    setup_started = time.monotonic()
    with LocalSession(workers=args.workers) as session, LambdaCounter(session.cloud.lambdas) as lam:
        setup_s = time.monotonic() - setup_started
        params: dict[str, Any] = {
            "workload": "molsim",
            "shards": args.shards,
            "maxNodes": args.workers,
            "topK": args.top_k,
            "heartbeatSeconds": 60,
        }
        log(f"local mission: {args.shards} shards on {args.workers} nodes ...")
        observer = Observer(session)
        run = run_mission(
            session,
            observer,
            queries,
            params,
            on_tick=lambda t: log(f"mission running {t:.0f} s"),
            tick_seconds=10,
        )
        record = observer.store.get_mission(run.mission_id) if run.mission_id else None
        node_starts = node_start_seconds(observer.store, record.mission_id) if record else []
        mission_csv = session.download_result(record, work / "mission") if record else None
    script_csv = work / "script.csv"
    identical = mission_csv is not None and sha(mission_csv) == sha(script_csv)
    fps_s = base["fpsim2Seconds"]
    figures = {
        "benchmark": "efficiency",
        "machine": MACHINE,
        **base,
        "libraryMolecules": 4999,
        "shards": args.shards,
        "workers": args.workers,
        "topK": args.top_k,
        "e2eSeconds": round(run.wall, 2),
        "stackSetupSeconds": round(setup_s, 2),
        "e2eVsScript": round(run.wall / base["scriptSeconds"], 3),
        "e2eVsFpsim2": round(run.wall / fps_s, 3) if fps_s else None,
        "idealVsScript": round(1 / args.workers, 3),
        "status": run.status,
        "lambdaSeconds": {k: round(v, 2) for k, v in lam.seconds.items()},
        "nodeStartSeconds": node_starts,
        "identical": identical,
        "scriptSha256": sha(script_csv),
        "missionSha256": sha(mission_csv) if mission_csv else None,
    }
    rows = [
        ("queries x library", f"{base['queries']} x 4,999"),
        ("shards / nodes", f"{args.shards} / {args.workers}"),
        ("plain script, one process (s)", base["scriptSeconds"]),
        ("FPSim2 top_k, one worker (s)", fps_s if fps_s is not None else "not installed"),
        ("FPSim2 database build, apart (s)", base["fpsim2BuildSeconds"] or "-"),
        ("shard code, one process (s)", base["shardCodeSeconds"]),
        ("shard code / script, per core", base["shardCodePerCoreVsScript"]),
        ("reduce of that shard, apart (s)", base["reduceSeconds"]),
        ("(shard code + reduce) / script", base["shardAndReduceVsScript"]),
        ("same, in CPU seconds (robust to load)", base["shardAndReduceCpuVsScript"]),
        ("checkpoints + progress, share of shard", base["checkpointProgressShare"]),
        ("shard code result = script's", base["shardCodeIdentical"]),
        ("local mission e2e (s)", figures["e2eSeconds"]),
        ("e2e / script", figures["e2eVsScript"]),
        ("e2e / FPSim2", figures["e2eVsFpsim2"] or "-"),
        ("ideal e2e / script", figures["idealVsScript"]),
        ("mission result = script's", identical),
        ("fixed: stack start-up, not in e2e (s)", figures["stackSetupSeconds"]),
        *[(f"fixed, in e2e: Lambda {k} (s)", v) for k, v in figures["lambdaSeconds"].items()],
        ("fixed, in e2e: node start-up per unit (s)", ", ".join(map(str, node_starts)) or "-"),
        ("fixed, in e2e: node warm-up, queries / library (s)", warm_up_text(base)),
    ]
    emit([table("efficiency: molsim, local mission vs the plain script", rows)], figures)
    ok = identical and base["shardCodeIdentical"] and run.status == ExecutionStatus.SUCCEEDED
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
