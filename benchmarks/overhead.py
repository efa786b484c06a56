"""Scheduling overhead of local missions of ``noop`` shards versus a ProcessPoolExecutor.

For each N in ``--shards`` (default 100,1000) this runs, in the same process and one after
the other:

* the baseline: the same N noop shards (same items, same per-item sleep) through
  ``concurrent.futures.ProcessPoolExecutor(max_workers=W)``, no AWS at all;
* a local mission (``LocalSession(workers=W)``, ``maxNodes=W``: W units, one node each, one
  slot per node on 2 cores) started by a manual StartExecution, timed from StartExecution
  to the end of the execution.

Figures: wall times and their ratio, per-shard scheduling overhead
``(mission wall - baseline wall) / N`` in ms, execution history events and billed state
transitions of the parent and of the Distributed Map children (recorded by
``instruments.ChildHistory``), Lambda invocations (counted by wrapping the handlers in
``EmbeddedCloud.lambdas``), DynamoDB write units and read requests (counted at moto's
request dispatcher), each per shard and per work unit.

    .venv/bin/python benchmarks/overhead.py --shards 100,1000
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks._common import MACHINE, Observer, emit, log, quiet_stdout, table
from benchmarks._model import (
    add_revert_fix_option,
    instrumented,
    measure,
    noop_params,
    save_model,
)
from benchmarks.instruments import Sampler, enable_node_profiles, merge_node_profiles
from workflow.states import ExecutionStatus


def _noop_shard(args: tuple[int, int, int, int, str]) -> int:
    from workflow.workloads.base import ShardContext, ShardRange, WorkInputs
    from workflow.workloads.noop import NoopWorkload

    index, start, end, sleep_ms, work = args
    work_dir = Path(work) / f"s{index}"
    work_dir.mkdir(parents=True, exist_ok=True)
    inputs = WorkInputs(sample=Path(work) / "sample", options={"sleepMs": sleep_ms})
    NoopWorkload().run(ShardRange(f"s{index}", index, start, end), inputs, ShardContext(work_dir))
    return end - start


def baseline(shards: int, items_per_shard: int, sleep_ms: int, workers: int) -> tuple[float, int]:
    """Wall seconds (pool start included) and items run by a plain process pool."""
    with tempfile.TemporaryDirectory(prefix="lighthpc-baseline-") as work:
        jobs = [
            (i, i * items_per_shard, (i + 1) * items_per_shard, sleep_ms, work)
            for i in range(shards)
        ]
        started = time.perf_counter()
        with ProcessPoolExecutor(max_workers=workers) as pool:
            items = sum(pool.map(_noop_shard, jobs, chunksize=1))
        return time.perf_counter() - started, items


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--shards", default="100,1000", help="comma-separated shard counts")
    ap.add_argument("--workers", type=int, default=2, help="nodes = baseline processes (2)")
    ap.add_argument("--items-per-shard", type=int, default=2)
    ap.add_argument("--sleep-ms", type=int, default=10, help="noop sleep per item (ms)")
    ap.add_argument("--heartbeat", type=int, default=30, help="heartbeatSeconds of the missions")
    ap.add_argument("--profile", action="store_true", help="sample this process's threads")
    ap.add_argument(
        "--profile-nodes",
        action="store_true",
        help="wall-clock profile of the node agents' main threads (_nodeprof/)",
    )
    add_revert_fix_option(ap)
    ap.add_argument("--no-save", action="store_true", help="do not update results/model.json")
    return ap.parse_args(argv)


def run_case(
    session: Any, observer: Observer, inst: Any, n: int, args: argparse.Namespace
) -> dict[str, Any]:
    shard_ms = args.items_per_shard * args.sleep_ms
    log(f"N={n}: baseline ProcessPoolExecutor({args.workers}), {shard_ms} ms per shard")
    base_wall, base_items = baseline(n, args.items_per_shard, args.sleep_ms, args.workers)
    log(f"N={n}: baseline {base_wall:.2f} s; local mission ...")
    params = noop_params(
        n,
        items_per_shard=args.items_per_shard,
        sleep_ms=args.sleep_ms,
        maxNodes=args.workers,
        heartbeatSeconds=args.heartbeat,
    )

    def tick(elapsed: float) -> None:
        done = inst.server.calls.get(("dynamodb", "TransactWriteItems"))
        log(f"N={n}: mission running {elapsed:.0f} s, {done.count if done else 0} commits")

    sampler = Sampler() if args.profile else None
    if sampler:
        sampler.__enter__()
    try:
        fig = measure(session, observer, inst, params, on_tick=tick)
    finally:
        if sampler:
            sampler.__exit__(None, None, None)
    fig["baselineWallSeconds"] = round(base_wall, 3)
    fig["baselineItems"] = base_items
    fig["shardMs"] = shard_ms
    fig["ratio"] = round(fig["wallSeconds"] / base_wall, 2)
    fig["overheadMsPerShard"] = round((fig["wallSeconds"] - base_wall) / n * 1000, 1)
    # The pool models an instance's boot (pending, nothing on it yet) as a wait: AWS's cost
    # (~30 s there), not the scheduler's. Reported apart; the headline above includes it.
    fig["modelledBootSeconds"] = session.boot_seconds
    fig["overheadMsPerShardBesideModelledBoot"] = round(
        (fig["wallSeconds"] - base_wall - session.boot_seconds) / n * 1000, 1
    )
    fig["resultCorrect"] = fig["resultItems"] == n * args.items_per_shard
    if sampler:
        fig["profile"] = sampler.top(12)
        for kind, rows in fig["profile"].items():
            log(f"profile ({kind}, {sampler.samples} samples):")
            for name, count in rows:
                log(f"  {count / max(sampler.samples, 1):6.1%}  {name}")
    log(
        f"N={n}: mission {fig['wallSeconds']:.1f} s, ratio {fig['ratio']}, "
        f"{fig['overheadMsPerShard']} ms/shard overhead"
    )
    return fig


def _node_profile(out_dir: str) -> dict[str, Any]:
    time.sleep(1.0)  # node processes write their profile at exit
    merged = merge_node_profiles(out_dir)
    log(f"node main-thread wall-clock profile ({merged['processes']} nodes):")
    for name, share in merged["inclusive"]:
        log(f"  {share:6.1%}  {name}")
    for name in os.listdir(out_dir):
        os.unlink(os.path.join(out_dir, name))
    return merged


def rows_of(fig: dict[str, Any]) -> list[tuple[str, Any]]:
    calls = fig["serverCalls"]
    tx = calls.get("dynamodb:TransactWriteItems", {"count": 0, "seconds": 0.0})
    return [
        ("shards / units", f"{fig['shards']} / {fig['units']}"),
        ("shard work (ms)", fig["shardMs"]),
        ("baseline wall (s)", fig["baselineWallSeconds"]),
        ("mission wall (s)", fig["wallSeconds"]),
        (
            "  phases (s)",
            " ".join(f"{k.removesuffix('Seconds')} {v}" for k, v in fig["phases"].items()),
        ),
        ("ratio mission / baseline", fig["ratio"]),
        ("overhead per shard (ms)", fig["overheadMsPerShard"]),
        (
            f"  beside the modelled {fig['modelledBootSeconds']} s node boot (ms)",
            fig["overheadMsPerShardBesideModelledBoot"],
        ),
        ("result total correct", fig["resultCorrect"]),
        ("parent events / transitions", f"{fig['parentEvents']} / {fig['parentTransitions']}"),
        ("child events per unit", fig["childEventsPerUnit"]),
        ("child transitions per unit", fig["childTransitionsPerUnit"]),
        ("events per shard (all)", fig["eventsPerShard"]),
        ("transitions per shard (all)", fig["transitionsPerShard"]),
        ("Lambda invocations (total)", fig["lambdaInvocations"]),
        ("Lambda invocations per shard", fig["lambdaInvocationsPerShard"]),
        ("DynamoDB WRU per shard", fig["ddbWriteUnitsPerShard"]),
        ("DynamoDB read requests per shard", fig["ddbReadRequestsPerShard"]),
        ("TransactWriteItems: n / server s", f"{tx['count']} / {tx['seconds']}"),
    ]


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    quiet_stdout()
    counts = [int(x) for x in args.shards.split(",") if x.strip()]
    from localcloud.session import LocalSession

    node_profiles = tempfile.mkdtemp(prefix="lighthpc-nodeprof-") if args.profile_nodes else None
    if node_profiles:
        enable_node_profiles(node_profiles)
    results: dict[str, Any] = {}
    log(f"starting the local stack ({MACHINE})")
    with (
        LocalSession(workers=args.workers) as session,
        instrumented(session, revert_fixes=args.revert_fix) as inst,
    ):
        observer = Observer(session)
        for n in counts:
            results[str(n)] = run_case(session, observer, inst, n, args)
            if node_profiles:
                results[str(n)]["nodeProfile"] = _node_profile(node_profiles)
    tables = [
        table(f"overhead: N={n} noop shards, {args.workers} workers", rows_of(fig))
        for n, fig in results.items()
    ]
    figures = {
        "benchmark": "overhead",
        "machine": MACHINE,
        "revertedFixes": args.revert_fix,
        "counting": {
            "transitions": "1 per execution start + 1 per *StateEntered event + 1 per task retry",
            "childEvents": "Distributed Map children recorded by instruments.ChildHistory",
            "lambda": "handler wrappers in EmbeddedCloud.lambdas (every invocation)",
            "ddbWriteUnits": "1 per Put/Update/Delete item, 2 per transactional item, <1 KB",
        },
        "cases": results,
    }
    if not args.no_save and not args.revert_fix:
        save_model(figures)
    emit(tables, figures)
    ok = all(
        f["status"] == ExecutionStatus.SUCCEEDED and f["resultCorrect"] for f in results.values()
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
