"""Orchestration cost per shard, measured, versus the compute cost of the shard itself.

Usage figures come from a measured local mission (overhead.py's ``results/model.json``, the
largest case; ``--remeasure`` runs a small instrumented mission now): billed state
transitions (parent + Distributed Map children), Lambda invocations and their in-process
duration, DynamoDB write request units and read requests, each per shard. They are priced
with ``workflow.cost.PriceList`` (list prices as parameters) and set beside the compute cost
of one shard of ``--shard-minutes`` (10) on a Spot instance (``--instance-type`` c6i.large at
``PriceList.spot_fraction`` of On-Demand unless ``--spot-hourly`` is given), with
``--slots`` shards sharing one instance (2 vCPUs: 2).

A second table re-packs the same per-unit and per-shard counts for other shard-per-unit
ratios (e.g. 10 shards per unit: a 10,000-shard mission on 1,000 nodes).

    .venv/bin/python benchmarks/cost.py
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks._common import MACHINE, emit, log, quiet_stdout, table
from benchmarks._model import load_model, measure_small


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    from workflow.cost import PriceList

    d = PriceList()
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--remeasure", action="store_true", help="ignore results/model.json")
    ap.add_argument("--shard-minutes", type=float, default=10.0)
    ap.add_argument("--instance-type", default="c6i.large")
    ap.add_argument("--slots", type=int, default=2, help="shards running at once per instance")
    ap.add_argument("--spot-hourly", type=float, default=None, help="$/h (default: fraction)")
    ap.add_argument("--sfn-per-1k", type=float, default=d.sfn_per_1k_transitions)
    ap.add_argument("--lambda-gb-s", type=float, default=d.lambda_per_gb_second)
    ap.add_argument("--lambda-per-m", type=float, default=d.lambda_per_million_requests)
    ap.add_argument("--ddb-write-per-m", type=float, default=d.ddb_per_million_writes)
    ap.add_argument("--ddb-read-per-m", type=float, default=d.ddb_per_million_reads)
    ap.add_argument("--lambda-gb", type=float, default=0.5, help="memory of the functions")
    ap.add_argument(
        "--lambda-seconds",
        type=float,
        default=None,
        help="billed seconds per invocation (default: the measured in-process durations)",
    )
    ap.add_argument("--spu", default="1,10,100", help="shards per unit for the re-pack table")
    return ap.parse_args(argv)


def prices(args: argparse.Namespace) -> Any:
    from workflow.cost import PriceList

    spot = {args.instance_type: args.spot_hourly} if args.spot_hourly is not None else {}
    return PriceList(
        sfn_per_1k_transitions=args.sfn_per_1k,
        lambda_per_gb_second=args.lambda_gb_s,
        lambda_per_million_requests=args.lambda_per_m,
        ddb_per_million_writes=args.ddb_write_per_m,
        ddb_per_million_reads=args.ddb_read_per_m,
        spot_hourly=spot,
    )


def orchestration(
    model: dict[str, Any], args: argparse.Namespace, spu: float | None = None
) -> dict[str, float]:
    """USD per shard; with ``spu`` the per-unit counts are spread over ``spu`` shards."""
    from workflow.cost import Usage, estimate

    shards, units = int(model["shards"]), int(model["units"])
    per_unit_share = units / shards if spu is None else 1 / spu
    parent_share = 1 / shards  # one parent execution per mission (as measured)
    transitions = (
        model["parentTransitions"] * parent_share
        + model["childTransitionsPerUnit"] * per_unit_share
    )
    invocations = model["lambdaInvocations"]
    launches = model["lambdaByAction"].get("lighthpc-light-scheduler:launch", units)
    per_mission_calls = invocations - launches
    calls = per_mission_calls * parent_share + launches / units * per_unit_share
    by_action = model.get("lambdaSecondsByAction") or {}
    launch_key = "lighthpc-light-scheduler:launch"
    if launch_key in by_action:  # measured per action (in-process, emulator-bound: high)
        launch_s = by_action[launch_key] / max(launches, 1)
        mission_s = sum(v for k, v in by_action.items() if k != launch_key)
    else:
        launch_s = model["lambdaSeconds"] / max(invocations, 1)
        mission_s = launch_s * per_mission_calls
    if args.lambda_seconds is not None:
        launch_s, mission_s = args.lambda_seconds, args.lambda_seconds * per_mission_calls
    seconds = mission_s * parent_share + launch_s * launches / units * per_unit_share
    usage = Usage(
        state_transitions=0,
        lambda_invocations=0,
        lambda_gb_seconds=seconds * args.lambda_gb,
        ddb_writes=float(model["ddbWriteUnitsPerShard"]),
        ddb_reads=float(model["ddbReadRequestsPerShard"]),
    )
    cost = estimate(usage, prices(args))
    sfn = transitions / 1000.0 * args.sfn_per_1k
    lam_requests = calls / 1e6 * args.lambda_per_m
    return {
        "transitionsPerShard": round(transitions, 4),
        "lambdaCallsPerShard": round(calls, 4),
        "stepFunctions": sfn,
        "lambda": cost.lambda_ + lam_requests,
        "dynamodb": cost.dynamodb,
        "total": sfn + cost.lambda_ + lam_requests + cost.dynamodb,
    }


def compute(args: argparse.Namespace) -> tuple[float, float]:
    hourly = prices(args).hourly(args.instance_type, "spot")
    return hourly, hourly * args.shard_minutes / 60.0 / args.slots


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    quiet_stdout()
    doc = None if args.remeasure else load_model()
    if doc:
        model = max(doc["cases"].values(), key=lambda c: c["shards"])
        source = (
            f"results/model.json: overhead.py, {model['shards']} shards / {model['units']} units"
        )
    else:
        model = measure_small()
        source = f"measured now: {model['shards']} shards / {model['units']} units"
    log(f"usage from {source}")
    orch = orchestration(model, args)
    hourly, shard_compute = compute(args)
    ratio = orch["total"] / shard_compute
    rows = [
        ("usage source", source),
        ("transitions per shard", orch["transitionsPerShard"]),
        ("Lambda invocations per shard", orch["lambdaCallsPerShard"]),
        ("DynamoDB WRU per shard", model["ddbWriteUnitsPerShard"]),
        ("DynamoDB read requests per shard", model["ddbReadRequestsPerShard"]),
        ("Step Functions $/shard", f"{orch['stepFunctions']:.3e}"),
        ("Lambda $/shard", f"{orch['lambda']:.3e}"),
        ("DynamoDB $/shard", f"{orch['dynamodb']:.3e}"),
        ("orchestration $/shard", f"{orch['total']:.3e}"),
        (f"Spot {args.instance_type} $/h", f"{hourly:.5f}"),
        (
            f"compute $/shard ({args.shard_minutes:g} min, {args.slots} per instance)",
            f"{shard_compute:.3e}",
        ),
        ("ratio orchestration / compute", f"{ratio:.2%}"),
    ]
    repack = {}
    for spu in (float(x) for x in args.spu.split(",")):
        o = orchestration(model, args, spu)
        repack[f"{spu:g}"] = {**o, "ratio": o["total"] / shard_compute}
    rows2 = [
        (
            f"{k} shards/unit",
            f"${v['total']:.3e}/shard, {v['transitionsPerShard']} transitions, "
            f"ratio {v['ratio']:.2%}",
        )
        for k, v in repack.items()
    ]
    figures = {
        "benchmark": "cost",
        "machine": MACHINE,
        "usageSource": source,
        "prices": {k: v for k, v in vars(args).items() if k not in {"remeasure", "spu"}},
        "orchestrationPerShard": orch,
        "spotHourly": hourly,
        "computePerShard": shard_compute,
        "ratio": ratio,
        "repack": repack,
    }
    emit(
        [
            table("cost: orchestration vs compute, per shard", rows),
            table("cost: the same counts re-packed", rows2),
        ],
        figures,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
