"""A seeded, randomized fault campaign over the local mode: K noop missions, one cloud.

Every mission is started the way users start most: its params become the MissionCfg profile
and the sample is uploaded, so the S3 event starts it. Faults are drawn per mission from
``--seed``:

* ``interrupt`` — Spot notice on a busy first-attempt node (``pool.interrupt``): checkpoint,
  ``Spot.Interrupted``, relaunch, resume;
* ``kill`` — SIGKILL of a busy node's tree (``pool.kill``): no report, heartbeat expiry;
* ``dup`` — the S3 event delivered again 1-2 times (``session.redeliver_upload_event``):
  the extra executions must end in DuplicateIgnored;
* ``lambda`` — transient Lambda errors: the registered lightScheduler (plan, launch) and
  RsltProc handlers raise an exception whose class is named
  ``Lambda.TooManyRequestsException`` (reported as the errorType, retried by the ASL), with
  probability p per call and never twice in a row for the same call site;
* ``pause`` — a busy node is frozen (``pool.pause``) past ``heartbeatSeconds``; once the
  relaunched attempt owns the unit, the old node is resumed: its claims, commits and task
  report must be refused (conditional writes on the attempt; the late reporter races the
  new node);
* ``race`` — once a shard is DONE, 4 threads commit it again concurrently through the
  repository (``move_shard(DONE)``): every one must be refused.

Checks per mission: execution and mission SUCCEEDED; the noop result total equals the item
count and counts every shard once; ``tblTrans`` DONE count; the live DONE count
(``progress_of`` just before AggregateResults runs, which then writes ``shardsDone``); EC2 instances
of the mission not terminated 10 s after its end (orphans); node processes of the mission
still running then (orphans); relaunches: ``nodeRelaunches`` = node launches beyond the first
per unit (``tblTrans`` unit ``launches``), ``relaunches`` = the mission's ``retries`` as
RsltProc wrote it (the same rule, ``progress_of``, over the unit items). Any lost or
double-counted shard, orphan, failed mission or accepted racing commit makes the exit status 1.

    .venv/bin/python benchmarks/faults.py --missions 20 --seed 1
"""

from __future__ import annotations

import argparse
import random
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
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
)
from benchmarks.instruments import wrap_handler
from workflow.progress import progress_of
from workflow.states import TERMINAL_EXECUTION, ExecutionStatus, MissionStatus

SETTLE_SECONDS = 10.0
MISSION_TIMEOUT = 180.0
BUSY_AFTER_SECONDS = 1.2

TransientLambdaError = type("Lambda.TooManyRequestsException", (Exception,), {})


# ----------------------------------------------------------------------- Lambda injection


class LambdaFaults:
    """Transient errors in the in-process handlers, at probability ``p`` (set per mission)."""

    def __init__(self, seed: int) -> None:
        self.p = 0.0
        self.rng = random.Random(seed)
        self.injected: Counter[str] = Counter()
        self._last_failed: set[str] = set()
        self._lock = threading.Lock()

    def wrapper(self, function: str) -> Any:
        def wrap(inner: Any) -> Any:
            def handler(event: Any, context: Any) -> Any:
                action = event.get("action", "aggregate") if isinstance(event, dict) else "?"
                if action != "unitFailed":
                    site = f"{function}:{action}:{event.get('missionId')}:{event.get('unitId')}"
                    with self._lock:
                        strike = site not in self._last_failed and self.rng.random() < self.p
                        if strike:
                            self._last_failed.add(site)
                            self.injected[f"{function}:{action}"] += 1
                        else:
                            self._last_failed.discard(site)
                    if strike:
                        raise TransientLambdaError("Rate exceeded (injected by faults.py)")
                return inner(event, context)

            return handler

        return wrap


# --------------------------------------------------------------------------- fault driver


@dataclass
class MissionPlan:
    index: int
    shards: int
    items_per_shard: int
    sleep_ms: int
    max_nodes: int
    interrupt: int
    kill: int
    pause: int
    dup: int
    lambda_p: float
    race: bool

    def params(self, heartbeat: int) -> dict[str, Any]:
        return {
            "workload": "noop",
            "shards": self.shards,
            "items": self.shards * self.items_per_shard,
            "sleepMs": self.sleep_ms,
            "maxNodes": self.max_nodes,
            "heartbeatSeconds": heartbeat,
            "checkpointEvery": 1,
        }

    def faults(self) -> str:
        parts = [
            f"{k}={v}"
            for k, v in (
                ("interrupt", self.interrupt),
                ("kill", self.kill),
                ("pause", self.pause),
                ("dup", self.dup),
            )
            if v
        ]
        if self.lambda_p:
            parts.append(f"lambda={self.lambda_p:.2f}")
        if self.race:
            parts.append("race")
        return ",".join(parts) or "none"


def draw(rng: random.Random, index: int) -> MissionPlan:
    node_faults = rng.choice(
        ["interrupt", "kill", "pause", "interrupt+kill", "pause+interrupt", "none"]
    )
    return MissionPlan(
        index=index,
        shards=rng.randint(6, 12),
        items_per_shard=rng.randint(2, 4),
        sleep_ms=rng.choice([150, 200, 250]),
        max_nodes=rng.randint(2, 3),
        interrupt=("interrupt" in node_faults) * rng.randint(1, 2),
        kill=int("kill" in node_faults),
        pause=int("pause" in node_faults),
        dup=rng.choice([0, 0, 1, 2]),
        lambda_p=rng.choice([0.0, 0.0, 0.15, 0.3]),
        race=rng.random() < 0.5,
    )


@dataclass
class DriverLog:
    interrupted: list[str] = field(default_factory=list)
    killed: list[str] = field(default_factory=list)
    paused: list[str] = field(default_factory=list)
    resumed: list[str] = field(default_factory=list)
    race_attempts: int = 0
    race_accepted: int = 0
    errors: list[str] = field(default_factory=list)


class Driver(threading.Thread):
    """Strikes busy first-attempt nodes of one mission as its plan says."""

    def __init__(
        self, session: Any, observer: Observer, plan: MissionPlan, mission_id: str
    ) -> None:
        super().__init__(name=f"faults-{plan.index}", daemon=True)
        self.session = session
        self.observer = observer
        self.plan = plan
        self.mission_id = mission_id
        self.log = DriverLog()
        self.stop = threading.Event()
        self._todo = ["kill"] * plan.kill + ["pause"] * plan.pause + ["interrupt"] * plan.interrupt
        self._struck: set[str] = set()
        self._resumers: list[threading.Thread] = []

    def run(self) -> None:
        raced = not self.plan.race
        while not self.stop.wait(0.1):
            try:
                if self._todo:
                    self._strike()
                if not raced:
                    raced = self._race()
            except Exception as exc:  # noqa: BLE001 - a node may vanish between look and act
                self.log.errors.append(repr(exc))

    def finish(self) -> None:
        self.stop.set()
        self.join(timeout=10)
        for t in self._resumers:
            t.join(timeout=60)

    def _strike(self) -> None:
        pool = self.session.pool
        now = time.monotonic()
        for node in pool.nodes(mission_id=self.mission_id, running_only=True):
            if node.attempt != 1 or node.instance_id in self._struck:
                continue
            if now - node.started_at < BUSY_AFTER_SECONDS:
                continue
            action = self._todo.pop(0)
            self._struck.add(node.instance_id)
            if action == "kill":
                pool.kill(node.instance_id)
                self.log.killed.append(node.instance_id)
            elif action == "interrupt":
                pool.interrupt(node.instance_id)
                self.log.interrupted.append(node.instance_id)
            else:
                pool.pause(node.instance_id)
                self.log.paused.append(node.instance_id)
                resumer = threading.Thread(
                    target=self._resume_later, args=(node.instance_id, node.unit_id), daemon=True
                )
                resumer.start()
                self._resumers.append(resumer)
            return

    def _resume_later(self, instance_id: str, unit_id: str) -> None:
        """Resume the frozen node once a later attempt owns its unit (a late reporter)."""
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.observer.store.get_unit(self.mission_id, unit_id).attempt > 1:
                break
            time.sleep(0.2)
        time.sleep(0.5)
        self.session.pool.resume(instance_id)
        self.log.resumed.append(instance_id)

    def _race(self) -> bool:
        from workflow.states import ShardStatus

        store = self.observer.store
        done = [s for s in store.list_shards(self.mission_id) if s.status is ShardStatus.DONE]
        if not done:
            return False
        shard = done[0]
        barrier = threading.Barrier(4)
        results: list[bool] = []

        def commit() -> None:
            barrier.wait()
            results.append(
                store.move_shard(
                    self.mission_id,
                    shard.shard_id,
                    ShardStatus.DONE,
                    attempt=shard.attempt,
                    fields={"resultKey": "race/forged.json"},
                )
            )

        threads = [threading.Thread(target=commit) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        self.log.race_attempts += len(results)
        self.log.race_accepted += sum(results)
        return True


# ------------------------------------------------------------------------------ campaign


class CounterProbe:
    """Counts the DONE shards (``progress_of``) just before RsltProc writes ``shardsDone``."""

    def __init__(self, observer: Observer) -> None:
        self.observer = observer
        self.before_aggregate: dict[str, int | None] = {}

    def wrapper(self, inner: Any) -> Any:
        def handler(event: Any, context: Any) -> Any:
            mission_id = event.get("missionId") if isinstance(event, dict) else None
            if mission_id and mission_id not in self.before_aggregate:
                shards = self.observer.store.list_shards(mission_id)
                self.before_aggregate[mission_id] = progress_of(shards, []).done
            return inner(event, context)

        return handler


def new_executions(observer: Observer, sm_arn: str, seen: set[str]) -> list[str]:
    found = observer.sfn.list_executions(stateMachineArn=sm_arn, maxResults=1000)["executions"]
    return [e["executionArn"] for e in found if e["executionArn"] not in seen]


def run_one(  # noqa: PLR0917
    session: Any,
    observer: Observer,
    plan: MissionPlan,
    args: argparse.Namespace,
    lam: LambdaFaults,
    probe: CounterProbe,
) -> dict[str, Any]:
    store = session.services.store
    sm_arn = session.stack.state_machine_arn
    seen = {
        e["executionArn"]
        for e in observer.sfn.list_executions(stateMachineArn=sm_arn, maxResults=1000)["executions"]
    }
    params = plan.params(args.heartbeat)
    store.put_profile(session.services.settings.default_profile, params, time.time())
    lam.p = plan.lambda_p
    sample = sample_file(
        f"faults mission {plan.index} seed {args.seed}\n",
        name=f"faults-{args.seed}-{plan.index:03d}.txt",
    )
    started = time.monotonic()
    key = session.upload_sample(sample, trigger=True)
    for _ in range(plan.dup):
        session.redeliver_upload_event(key)
    owner, mission_id = None, None
    deadline = time.monotonic() + 60
    while mission_id is None and time.monotonic() < deadline:
        for arn in new_executions(observer, sm_arn, seen):
            mid = observer.store.mission_for_execution(arn)
            if mid:
                owner, mission_id = arn, mid
                break
        time.sleep(0.1)
    if owner is None or mission_id is None:
        return {"index": plan.index, "faults": plan.faults(), "status": "NOT_PLANNED", "ok": False}
    driver = Driver(session, observer, plan, mission_id)
    driver.start()
    status = "TIMEOUT"
    while time.monotonic() - started < MISSION_TIMEOUT:
        status = observer.status(owner)
        if status in TERMINAL_EXECUTION:
            break
        time.sleep(0.2)
    wall = time.monotonic() - started
    driver.finish()
    lam.p = 0.0
    time.sleep(SETTLE_SECONDS)
    return check(session, observer, plan, owner, mission_id, status, wall, driver, probe, seen)


def check(  # noqa: PLR0917
    session: Any,
    observer: Observer,
    plan: MissionPlan,
    owner: str,
    mission_id: str,
    status: str,
    wall: float,
    driver: Driver,
    probe: CounterProbe,
    seen: set[str],
) -> dict[str, Any]:
    from workflow.states import ShardStatus

    sm_arn = session.stack.state_machine_arn
    store = observer.store
    mission = store.get_mission(mission_id).to_item()
    shards = store.list_shards(mission_id)
    units = store.list_units(mission_id)
    done = sum(1 for s in shards if s.status is ShardStatus.DONE)
    reduce = mission.get("reduce") or {}
    items = plan.shards * plan.items_per_shard
    counter = probe.before_aggregate.get(mission_id)
    others = [a for a in new_executions(observer, sm_arn, seen) if a != owner]
    dup_status = Counter(observer.status(a) for a in others)
    orphans = observer.live_instances(mission_id)
    nodes = session.pool.nodes(mission_id=mission_id)
    orphan_procs = [n.instance_id for n in nodes if n.running]
    exit_codes = Counter(str(n.returncode) for n in nodes)
    lost = plan.shards - done
    double = max(0, (counter or 0) - plan.shards) + max(
        0, int(reduce.get("shards") or 0) - plan.shards
    )
    double += int((reduce.get("items") or 0) > items)
    result = {
        "index": plan.index,
        "faults": plan.faults(),
        "shards": plan.shards,
        "status": status,
        "missionStatus": mission.get("status"),
        "wallSeconds": round(wall, 1),
        "resultItems": reduce.get("items"),
        "expectedItems": items,
        "resultIdentical": reduce.get("items") == items and reduce.get("shards") == plan.shards,
        "doneInTblTrans": done,
        "shardsDoneCounter": counter,
        "lost": lost,
        "doubleCounted": double,
        "orphanInstances": len(orphans),
        "orphanProcesses": len(orphan_procs),
        "relaunches": int(mission.get("retries") or 0),
        "launches": sum(u.launches for u in units),
        "nodeRelaunches": sum(max(u.launches - 1, 0) for u in units),
        "interruptions": int(mission.get("interruptions") or 0),
        "duplicateExecutions": len(others),
        "duplicatesIgnored": dup_status.get(ExecutionStatus.SUCCEEDED, 0),
        "interrupted": len(driver.log.interrupted),
        "killed": len(driver.log.killed),
        "paused": len(driver.log.paused),
        "resumed": len(driver.log.resumed),
        "raceAttempts": driver.log.race_attempts,
        "raceAccepted": driver.log.race_accepted,
        "nodeExitCodes": dict(exit_codes),
        "driverErrors": driver.log.errors[:3],
    }
    result["ok"] = (
        status == ExecutionStatus.SUCCEEDED
        and mission.get("status") == MissionStatus.SUCCEEDED
        and result["resultIdentical"]
        and lost == 0
        and double == 0
        and counter == plan.shards
        and not orphans
        and not orphan_procs
        and driver.log.race_accepted == 0
        and dup_status.get(ExecutionStatus.SUCCEEDED, 0) == len(others) == plan.dup
    )
    return result


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--missions", type=int, default=20, help="K missions (sequential)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--heartbeat", type=int, default=4, help="heartbeatSeconds of the missions")
    ap.add_argument(
        "--cloud-chaos",
        default="conflict=0.1,throttle=0.1,capacity=0.2",
        metavar="SPEC",
        help="the strict cloud's refusals for the whole campaign (chaos keys conflict, "
        "throttle, capacity; '' for none)",
    )
    ap.add_argument("--boot-seconds", type=float, default=None, help="node boot (pool model)")
    ap.add_argument("--install-seconds", type=float, default=0.0, help="node install")
    return ap.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    quiet_stdout()
    from localcloud.chaos import parse_chaos
    from localcloud.session import LocalSession
    from localcloud.stack import FUNCTIONS

    rng = random.Random(args.seed)
    plans = [draw(rng, i) for i in range(args.missions)]
    lam = LambdaFaults(args.seed)
    results: list[dict[str, Any]] = []
    started = time.monotonic()
    # workers=4: 4 slots of 1 per node, so a frozen node keeps its slot while its successor
    # runs (as a frozen instance keeps its vCPUs); missions use 2-3 nodes.
    cloud_chaos = parse_chaos(args.cloud_chaos)
    if cloud_chaos.interrupt or cloud_chaos.kill or cloud_chaos.dup:
        raise SystemExit("--cloud-chaos takes conflict, throttle and capacity only")
    boot = {} if args.boot_seconds is None else {"boot_seconds": args.boot_seconds}
    with LocalSession(workers=4, install_seconds=args.install_seconds, **boot) as session:
        if cloud_chaos.active:
            session.start_chaos(cloud_chaos)
        observer = Observer(session)
        probe = CounterProbe(observer)
        registry = session.cloud.lambdas
        undo = [
            wrap_handler(registry, FUNCTIONS["light_scheduler"], lam.wrapper("lightScheduler")),
            wrap_handler(registry, FUNCTIONS["rslt_proc"], lam.wrapper("rsltProc")),
            wrap_handler(registry, FUNCTIONS["rslt_proc"], probe.wrapper),
        ]
        try:
            for plan in plans:
                log(
                    f"mission {plan.index + 1}/{len(plans)}: {plan.shards} shards, "
                    f"{plan.max_nodes} nodes, faults {plan.faults()}"
                )
                res = run_one(session, observer, plan, args, lam, probe)
                results.append(res)
                log(
                    f"  -> {res['status']} in {res.get('wallSeconds')} s, "
                    f"{'ok' if res['ok'] else 'NOT OK'}: lost {res.get('lost')}, "
                    f"double {res.get('doubleCounted')}, relaunches {res.get('relaunches')}, "
                    f"orphans {res.get('orphanInstances')}/{res.get('orphanProcesses')}"
                )
        finally:
            for u in reversed(undo):
                u()
        leftover = [n.instance_id for n in session.pool.nodes(running_only=True)]
    total = time.monotonic() - started
    summary = {
        "missions": len(results),
        "completed": sum(1 for r in results if r.get("missionStatus") == MissionStatus.SUCCEEDED),
        "identicalResults": sum(1 for r in results if r.get("resultIdentical")),
        "shardsLost": sum(r.get("lost", 0) for r in results),
        "shardsDoubleCounted": sum(r.get("doubleCounted", 0) for r in results),
        "orphanInstances": sum(r.get("orphanInstances", 0) for r in results),
        "orphanProcesses": sum(r.get("orphanProcesses", 0) for r in results) + len(leftover),
        "relaunches": sum(r.get("relaunches", 0) for r in results),
        "nodeRelaunches": sum(r.get("nodeRelaunches", 0) for r in results),
        "interruptions": sum(r.get("interrupted", 0) for r in results),
        "kills": sum(r.get("killed", 0) for r in results),
        "pausedLateReporters": sum(r.get("paused", 0) for r in results),
        "duplicateEvents": sum(r.get("duplicateExecutions", 0) for r in results),
        "duplicatesIgnored": sum(r.get("duplicatesIgnored", 0) for r in results),
        "lambdaErrorsInjected": dict(lam.injected),
        "raceCommitsAttempted": sum(r.get("raceAttempts", 0) for r in results),
        "raceCommitsAccepted": sum(r.get("raceAccepted", 0) for r in results),
        "wallSeconds": round(total, 1),
        "allOk": all(r["ok"] for r in results) and not leftover,
    }
    rows = [(k, v) for k, v in summary.items()]
    per = [
        (
            f"#{r['index']:02d} {r['faults']}",
            f"{r['status']} {r.get('wallSeconds')} s, "
            f"done {r.get('doneInTblTrans')}/{r.get('shards')}, "
            f"relaunch {r.get('nodeRelaunches')}/{r.get('relaunches')}, "
            f"exits {r.get('nodeExitCodes')}" + ("" if r["ok"] else "  <-- NOT OK"),
        )
        for r in results
    ]
    figures = {
        "benchmark": "faults",
        "machine": MACHINE,
        "seed": args.seed,
        "cloudChaos": args.cloud_chaos,
        "bootSeconds": args.boot_seconds,
        "installSeconds": args.install_seconds,
        "summary": summary,
        "missions": results,
    }
    emit(
        [
            table(
                f"faults: K={len(results)} missions, seed {args.seed}, cloud {args.cloud_chaos}",
                rows,
            ),
            table("per mission", per),
        ],
        figures,
    )
    return 0 if summary["allOk"] else 1


if __name__ == "__main__":
    sys.exit(main())
