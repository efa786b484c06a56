"""Planning at scale (10,000 and 100,000 shards) against the AWS quotas of DESIGN §9, then a
10,000-shard noop mission in local mode.

Part 1 — plan only (no AWS): ``plan_shards`` + ``pack_units`` exactly as
``workflow/planning.py`` calls them, the manifest as ``_write_plan`` serialises it, and the
state payloads computed from the ASL itself: the PlanMission state output (its
``ResultSelector`` applied to ``PlanResult.as_output()``), the largest Map item input (the
``RunWorkUnits`` ``ItemSelector`` applied to a manifest item) and the LaunchNode Lambda payload
(with a 1,024-character task token, a generous size). Child-execution history events and
transitions use the per-unit figures measured by overhead.py (``results/model.json``, or a
small mission measured now). EC2 launch time under the RunInstances throttle (token bucket:
1,000 burst, 2 launches/s refill) for the unit count.

Quota lines (pass/fail): history <= 25,000 events per execution (parent and each child),
payload <= 256 KiB (PlanMission output, Map item, LaunchNode payload), launch throttle (all
first launches within the burst, i.e. no throttling wait). Two informational lines: the
inline-Map alternative (~8 events per item, DESIGN §9) and the Map's collected child outputs
(no ResultWriter: ``ResultPath: null`` drops them, but they are assembled first).

Part 2 — ``--local-shards 10000`` noop shards on ``--local-units`` units in local mode
(the Map runs as many units at once as the node pool has room for: 2 on 2 cores), with
a wall-time cap ``--local-timeout`` (s). Reports wall time (or the projection from the
measured rate when capped), this process's peak RSS (VmHWM: emulator + Lambdas + state
machine) and the peak of the summed RSS of the node processes (sampled from /proc every
0.5 s), and where the time goes (moto request time per action, a thread sampler).

    .venv/bin/python benchmarks/scale.py
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks._common import (
    MACHINE,
    Observer,
    emit,
    log,
    quiet_stdout,
    sample_file,
    table,
    wait_execution,
)
from benchmarks._model import (
    add_revert_fix_option,
    instrumented,
    load_model,
    measure_small,
    noop_params,
)
from benchmarks.instruments import ProcessMemory, Sampler, self_peak_rss_mb
from localcloud.moto_compat import FIXES_BY_NAME
from workflow.states import ShardStatus

KIB = 1024
PAYLOAD_LIMIT = 256 * KIB
HISTORY_LIMIT = 25_000
LAUNCH_BURST = 1_000
LAUNCH_REFILL_PER_S = 2.0
INLINE_EVENTS_PER_ITEM = 8
TOKEN_CHARS = 1024


def _jsonpath(doc: Any, path: str) -> Any:
    """The simple paths the ASL uses: ``$.a.b`` (state input) or ``$$.Map.Item.Value.a``."""
    node = doc
    for part in path.lstrip("$").strip(".").split("."):
        if part:
            node = node[part]
    return node


def apply_template(template: dict[str, Any], state: Any, context: dict[str, Any]) -> Any:
    out: dict[str, Any] = {}
    for key, value in template.items():
        if key.endswith(".$"):
            src = context if value.startswith("$$") else state
            out[key[:-2]] = _jsonpath(src, value[1:] if value.startswith("$$") else value)
        elif isinstance(value, dict):
            out[key] = apply_template(value, state, context)
        else:
            out[key] = value
    return out


def state_output(state: dict[str, Any], state_input: Any, result: Any) -> Any:
    """A state's output from its input and result: ``ResultPath`` then ``OutputPath``."""
    result_path = state.get("ResultPath", "$")
    if result_path is None:
        doc = state_input
    elif result_path == "$":
        doc = result
    else:
        doc = {**state_input, result_path.removeprefix("$."): result}
    return _jsonpath(doc, state.get("OutputPath", "$"))


def size(doc: Any) -> int:
    return len(json.dumps(doc, separators=(",", ":")).encode())


def launch_wait_seconds(launches: int) -> float:
    return max(0.0, (launches - LAUNCH_BURST) / LAUNCH_REFILL_PER_S)


def plan_case(shards: int, max_nodes: int, model: dict[str, Any]) -> dict[str, Any]:
    from workflow.params import parse_params
    from workflow.planner import pack_units, plan_shards
    from workflow.planning import PlanResult, map_concurrency

    started = time.perf_counter()
    items = shards
    plan = plan_shards(items, shards)
    units = pack_units(plan, max_nodes)
    manifest = json.dumps([u.manifest_item() for u in units], separators=(",", ":")).encode()
    plan_seconds = time.perf_counter() - started

    asl = json.loads((Path(__file__).resolve().parent.parent / "statemachine.asl.json").read_text())
    states = asl["States"]
    params = parse_params(
        {"workload": "noop", "shards": shards, "items": items, "maxNodes": max_nodes}
    )
    result = PlanResult(
        mission_id="m-0123456789abcdef",
        duplicate=False,
        units=len(units),
        shards=shards,
        manifest_bucket="lighthpc-results-123456789012-us-east-1",
        manifest_key="missions/m-0123456789abcdef/manifest.json",
        params=params,
        max_concurrency=map_concurrency(max_nodes, len(units)),
    )
    plan_output = apply_template(
        states["PlanMission"]["ResultSelector"], {"Payload": result.as_output()}, {}
    )
    biggest_item = max((u.manifest_item() for u in units), key=size)  # all the same shape
    map_state = states["RunWorkUnits"]
    item_input = apply_template(
        map_state["ItemSelector"], plan_output, {"Map": {"Item": {"Value": biggest_item}}}
    )
    launch = map_state["ItemProcessor"]["States"]["LaunchNode"]["Parameters"]["Payload"]
    launch_payload = apply_template(
        launch,
        item_input,
        {
            "State": {"RetryCount": 0},
            "Task": {"Token": "t" * TOKEN_CHARS},
            "Execution": {"Id": "arn:aws:states:us-east-1:123456789012:execution:x:" + "y" * 80},
        },
    )
    report = {  # the node's SendTaskSuccess summary (node_agent.agent._summary), wide values
        "unitId": "u0000",
        "attempt": 1,
        "instanceId": "i-0123456789abcdef0",
        "instanceType": "c6i.large",
        "shards": 10_000,
        "shardsRun": 10_000,
        "shardsResumed": 0,
        "redoItems": 0,
        "nodeSeconds": 123456.789,
        "shardSeconds": 123456.789,
        "bytesDownloaded": 123456789,
        "bytesUploaded": 123456789,
    }
    processor = map_state["ItemProcessor"]["States"]
    child_output = max(  # what each child returns to the Map, success or caught failure
        (
            state_output(st, item_input, report if st["Type"] == "Task" else item_input)
            for st in processor.values()
            if st.get("End") or st["Type"] in {"Succeed", "Fail"}  # where a child ends
        ),
        key=size,
    )
    n_units = len(units)
    per_unit_events = float(model["childEventsPerUnit"])
    per_unit_trans = float(model["childTransitionsPerUnit"])
    parent_events = int(model["parentEvents"])
    max_child_events = per_unit_events + 19 * 5  # every retry budget used (19 retries)
    return {
        "shards": shards,
        "units": n_units,
        "shardsPerUnit": round(shards / n_units, 1),
        "planSeconds": round(plan_seconds, 3),
        "manifestBytes": len(manifest),
        "planOutputBytes": size(plan_output),
        "mapItemInputBytes": size(item_input),
        "launchPayloadBytes": size(launch_payload),
        "largestStatePayloadBytes": max(size(plan_output), size(item_input), size(launch_payload)),
        "childOutputBytes": size(child_output),
        "mapCollectedOutputBytes": n_units * (size(child_output) + 1) + 1,
        "parentEvents": parent_events,
        "childEventsPerUnit": per_unit_events,
        "childEventsPerUnitWorstCase": max_child_events,
        "childEventsTotal": round(per_unit_events * n_units),
        "childTransitionsTotal": round(per_unit_trans * n_units),
        "inlineMapEvents": INLINE_EVENTS_PER_ITEM * shards,
        "launchWaitSeconds": launch_wait_seconds(n_units),
        "quota": {
            "history": parent_events <= HISTORY_LIMIT and max_child_events <= HISTORY_LIMIT,
            "payload": max(size(plan_output), size(item_input), size(launch_payload))
            <= PAYLOAD_LIMIT,
            "launchThrottle": n_units <= LAUNCH_BURST,
            "inlineMapWouldPass": INLINE_EVENTS_PER_ITEM * shards <= HISTORY_LIMIT,
            "mapCollectedOutputUnder256KiB": n_units * (size(child_output) + 1) + 1
            <= PAYLOAD_LIMIT,
        },
    }


def plan_rows(c: dict[str, Any]) -> list[tuple[str, Any]]:
    q = c["quota"]
    mark = {True: "PASS", False: "FAIL"}
    return [
        (
            "shards / units (shards per unit)",
            f"{c['shards']:,} / {c['units']:,} ({c['shardsPerUnit']})",
        ),
        ("plan + pack + manifest (s)", c["planSeconds"]),
        ("manifest size (bytes)", c["manifestBytes"]),
        ("PlanMission output (bytes)", c["planOutputBytes"]),
        ("Map item input (bytes)", c["mapItemInputBytes"]),
        ("LaunchNode payload (bytes)", c["launchPayloadBytes"]),
        ("parent history events", c["parentEvents"]),
        (
            "child events per unit (worst case)",
            f"{c['childEventsPerUnit']} ({c['childEventsPerUnitWorstCase']})",
        ),
        ("child events, all units", c["childEventsTotal"]),
        ("child transitions, all units", c["childTransitionsTotal"]),
        ("EC2 launch wait beyond burst (s)", c["launchWaitSeconds"]),
        ("quota: history 25,000/execution", mark[q["history"]]),
        ("quota: payload 256 KiB", mark[q["payload"]]),
        ("quota: launch throttle (burst 1,000)", mark[q["launchThrottle"]]),
        ("info: inline Map (8 events/item)", mark[q["inlineMapWouldPass"]]),
        (
            "info: Map collected child outputs",
            f"{c['mapCollectedOutputBytes']:,} B {mark[q['mapCollectedOutputUnder256KiB']]}",
        ),
    ]


# --------------------------------------------------------------------- local 10,000 shards


def local_run(args: argparse.Namespace) -> dict[str, Any]:
    from localcloud.session import LocalSession

    log(f"local: {args.local_shards:,} noop shards on {args.local_units} units ...")
    with (
        ProcessMemory() as mem,
        LocalSession(workers=2) as session,
        instrumented(session, revert_fixes=args.revert_fix) as inst,
    ):
        observer = Observer(session)
        params = noop_params(
            args.local_shards,
            items_per_shard=1,
            sleep_ms=args.local_sleep_ms,
            maxNodes=args.local_units,
            heartbeatSeconds=60,
        )
        key = session.upload_sample(sample_file(), trigger=False)
        started = time.monotonic()
        arn = session.start_manual(key, params)
        progress: list[tuple[float, int]] = []

        def tick(elapsed: float) -> None:
            done = inst.server.calls.get(("dynamodb", "TransactWriteItems"))
            count = done.count if done else 0
            progress.append((elapsed, count))
            fleets = inst.server.calls.get(("ec2", "CreateFleet"))
            launched = fleets.count if fleets else 0
            log(
                f"local: {elapsed:.0f} s, {count:,} shard transactions (DONE/FAILED), "
                f"{launched} nodes launched"
            )

        with Sampler(0.02) as sampler:
            try:
                status = wait_execution(
                    observer, arn, timeout=args.local_timeout, on_tick=tick, tick_seconds=15
                )
                capped = False
            except TimeoutError:
                status, capped = "CAPPED", True
        wall = time.monotonic() - started
        tx = inst.server.calls.get(("dynamodb", "TransactWriteItems"))
        committed = tx.count if tx else 0
        fleets = inst.server.calls.get(("ec2", "CreateFleet"))
        nodes_started = fleets.count if fleets else 0
        mission: dict[str, Any] = {}
        done = failed = 0
        mission_id = observer.store.mission_for_execution(arn)
        if mission_id:
            mission = observer.store.get_mission(mission_id).to_item()
            states = Counter(s.status.value for s in observer.store.list_shards(mission_id))
            done, failed = states.get(ShardStatus.DONE, 0), states.get(ShardStatus.FAILED, 0)
        if capped:
            observer.sfn.stop_execution(executionArn=arn)
        out = {
            "shards": args.local_shards,
            "units": args.local_units,
            "revertedFixes": args.revert_fix,
            "mapConcurrency": session.stack.settings.max_concurrent_nodes,
            "status": status,
            "missionStatus": mission.get("status"),
            "resultItems": (mission.get("reduce") or {}).get("items"),
            "wallSeconds": round(wall, 1),
            "capped": capped,
            "shardTransactions": committed,
            "shardsDone": done,
            "shardsFailed": failed,
            "nodesStarted": nodes_started,
            "progress": progress,
            "serverCalls": inst.server.snapshot(),
            "lambdaByAction": dict(inst.lambdas.counts),
            "lambdaSeconds": {k: round(v, 2) for k, v in inst.lambdas.seconds.items()},
            "lambdaErrors": dict(inst.lambdas.errors.most_common(8)),
            "profile": sampler.top(15),
            "samples": sampler.samples,
        }
    out["peakRssSelfMb"] = round(self_peak_rss_mb(), 1)
    out["peakRssNodesMb"] = round(mem.peak_children_mb, 1)
    out["peakNodeProcesses"] = mem.peak_children_count
    out["projectedWallSeconds"] = _projection(out)
    first = [t for t, n in out["progress"] if n > 0]
    out["firstCommitSeconds"] = round(first[0], 0) if first else None
    return out


def _projection(out: dict[str, Any]) -> float | None:
    """Wall time to finish at the commit rate of the last third of the run (capped runs)."""
    if not out["capped"]:
        return out["wallSeconds"]
    prog = out["progress"]
    if len(prog) < 3 or prog[-1][1] == 0:
        return None
    t0, n0 = prog[len(prog) * 2 // 3 - 1]
    t1, n1 = prog[-1]
    rate = (n1 - n0) / (t1 - t0) if t1 > t0 else 0
    if rate <= 0:
        return None
    return round(t1 + (out["shards"] - n1) / rate, 0)


def transact_cost(
    sizes: tuple[int, ...] = (100, 1_000, 10_000), *, fixed: bool
) -> dict[str, float]:
    """ms per TransactWriteItems (1 item) in moto's backend vs table size, in-process, with
    moto_compat's ``transaction_item_snapshot`` applied (``fixed``) or as moto ships."""
    import boto3
    from moto import mock_aws

    from localcloud.emulator import LOCAL_REGION

    fix = FIXES_BY_NAME["transaction_item_snapshot"]

    out: dict[str, float] = {}
    for n in sizes:
        with mock_aws(), _fix_state(fix, applied=fixed):
            ddb = boto3.client("dynamodb", region_name=LOCAL_REGION)
            ddb.create_table(
                TableName="t",
                BillingMode="PAY_PER_REQUEST",
                AttributeDefinitions=[
                    {"AttributeName": "m", "AttributeType": "S"},
                    {"AttributeName": "s", "AttributeType": "S"},
                ],
                KeySchema=[
                    {"AttributeName": "m", "KeyType": "HASH"},
                    {"AttributeName": "s", "KeyType": "RANGE"},
                ],
            )
            for i in range(0, n, 25):
                ddb.batch_write_item(
                    RequestItems={
                        "t": [
                            {
                                "PutRequest": {
                                    "Item": {
                                        "m": {"S": "m1"},
                                        "s": {"S": f"shard#{j:06d}"},
                                        "status": {"S": "QUEUED"},
                                        "attempt": {"N": "1"},
                                        "unitId": {"S": "u0001"},
                                    }
                                }
                            }
                            for j in range(i, min(i + 25, n))
                        ]
                    }
                )
            reps = 20
            started = time.perf_counter()
            for j in range(reps):
                ddb.transact_write_items(
                    TransactItems=[
                        {
                            "Update": {
                                "TableName": "t",
                                "Key": {"m": {"S": "m1"}, "s": {"S": f"shard#{j:06d}"}},
                                "UpdateExpression": "SET #s = :d",
                                "ExpressionAttributeNames": {"#s": "status"},
                                "ExpressionAttributeValues": {":d": {"S": "DONE"}},
                            }
                        }
                    ]
                )
            out[str(n)] = round((time.perf_counter() - started) / reps * 1000, 1)
            label = "with the fix" if fixed else "as moto ships"
            log(f"moto TransactWriteItems, {n:,} items in the table, {label}: {out[str(n)]} ms")
    return out


@contextmanager
def _fix_state(fix: Any, *, applied: bool) -> Iterator[None]:
    """Run a block with ``fix`` applied or reverted, then restore its previous state."""
    was = fix.is_applied()
    changed = fix.apply() if applied else fix.revert()
    try:
        yield
    finally:
        if changed:
            fix.apply() if was else fix.revert()


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--plan-shards", default="10000,100000")
    ap.add_argument("--max-nodes", type=int, default=1000, help="maxNodes for the plans")
    ap.add_argument("--local-shards", type=int, default=10_000, help="0 skips the local run")
    ap.add_argument(
        "--local-units",
        type=int,
        default=2,
        help="maxNodes of the local run: 2, as `lighthpc local run --workers 2` plans it "
        "(one unit per node); 300 was the old default, 300 node start-ups on a 2-node pool",
    )
    ap.add_argument("--local-sleep-ms", type=int, default=0)
    ap.add_argument("--local-timeout", type=float, default=900.0, help="cap (s) of the local run")
    add_revert_fix_option(ap)
    ap.add_argument("--skip-plan", action="store_true", help="only the local run")
    ap.add_argument("--remeasure", action="store_true", help="ignore results/model.json")
    return ap.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    quiet_stdout()
    figures: dict[str, Any] = {"benchmark": "scale", "machine": MACHINE}
    tables: list[str] = []
    plans: dict[str, Any] = {}
    if not args.skip_plan:
        model_doc = None if args.remeasure else load_model()
        if model_doc:
            model = max(model_doc["cases"].values(), key=lambda c: c["shards"])
            figures["model"] = "results/model.json (overhead.py)"
        else:
            model = measure_small()
            figures["model"] = "measured now (40-shard mission)"
        plans = {n: plan_case(int(n), args.max_nodes, model) for n in args.plan_shards.split(",")}
        tables += [
            table(f"scale: plan of {int(n):,} shards, maxNodes {args.max_nodes}", plan_rows(c))
            for n, c in plans.items()
        ]
        figures["plans"] = plans
        as_is, fixed = transact_cost(fixed=False), transact_cost(fixed=True)
        figures["transactWriteMsByTableItems"] = as_is
        figures["transactWriteMsByTableItemsWithFix"] = fixed
        tables.append(
            table(
                "moto TransactWriteItems (ms) vs table size: moto 5.2.5 / with the fix",
                [(f"{int(k):,} items", f"{v} / {fixed[k]}") for k, v in as_is.items()],
            )
        )
    if args.local_shards:
        local = local_run(args)
        figures["local"] = local
        tables.append(table("scale: local mission", local_rows(local)))
    emit(tables, figures)
    ok = all(
        all(c["quota"][k] for k in ("history", "payload", "launchThrottle")) for c in plans.values()
    )
    return 0 if ok else 1


def local_rows(local: dict[str, Any]) -> list[tuple[str, Any]]:
    busiest = sorted(local["serverCalls"].items(), key=lambda kv: -kv[1]["seconds"])[:4]
    rows = [
        ("shards / units", f"{local['shards']:,} / {local['units']}"),
        ("Map concurrency cap (pool capacity)", local["mapConcurrency"]),
        ("moto_compat fixes reverted", ", ".join(local["revertedFixes"]) or "none"),
        ("status (mission)", f"{local['status']} ({local['missionStatus']})"),
        ("wall (s)", local["wallSeconds"]),
        ("projected wall if capped (s)", local["projectedWallSeconds"]),
        ("shards DONE / FAILED in tblTrans", f"{local['shardsDone']} / {local['shardsFailed']}"),
        ("nodes launched (CreateFleet)", local["nodesStarted"]),
        ("first shard transaction after (s)", local["firstCommitSeconds"]),
        ("peak RSS this process (MB)", local["peakRssSelfMb"]),
        ("peak RSS node processes, sum (MB)", local["peakRssNodesMb"]),
    ]
    rows += [(f"moto time {k} (s, n)", f"{v['seconds']} s, {v['count']}") for k, v in busiest]
    rows += [(f"error x{n}", e) for e, n in local["lambdaErrors"].items()]
    return rows


if __name__ == "__main__":
    sys.exit(main())
