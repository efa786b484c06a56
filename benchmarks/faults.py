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
RsltProc wrote it (the same rule, ``progress_of``, over the unit items);
``spuriousFirstHeartbeatTimeouts``: units whose first node's attempt ended in
``States.HeartbeatTimeout`` though no kill or pause struck that node (the interpreter's own
heartbeat expiry, ``instruments.HeartbeatTimeouts``, matched to the launch by its task token).
Any lost or double-counted shard, orphan, failed mission, accepted racing commit or spurious
first heartbeat timeout makes the exit status 1.

``--concurrency K`` runs K missions at once on the one cloud (4 pool slots per mission in
flight); which faults each mission gets stays reproducible from ``--seed``, the interleaving
does not. Missions are started one at a time (the S3 event plans with the shared default
profile, so each mission's profile is written and planned under a lock); everything else,
checks included, is per mission.

    .venv/bin/python benchmarks/faults.py --missions 20 --seed 1
    .venv/bin/python benchmarks/faults.py --missions 100 --seed 2 --concurrency 8 \
        --boot-seconds 25 --install-seconds 16 --heartbeat 30
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, as_completed
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
from benchmarks.instruments import HeartbeatTimeouts, wrap_handler
from workflow.progress import progress_of
from workflow.states import TERMINAL_EXECUTION, ExecutionStatus, MissionStatus

SETTLE_SECONDS = 10.0
BUSY_AFTER_SECONDS = 1.2
POLL_SECONDS = 1.0  # per mission in flight: K of them poll the one emulator
RACE_POLL_SECONDS = 2.0
# Pool slots per mission in flight: 1 per node, 2-3 nodes, and a frozen node keeps its slot
# while its successor runs (as a frozen instance keeps its vCPUs).
SLOTS_PER_MISSION = 4

TransientLambdaError = type("Lambda.TooManyRequestsException", (Exception,), {})


def mission_timeout(args: argparse.Namespace) -> float:
    """180 s of work and retries, plus a node start and a heartbeat expiry for each of up to
    6 launches a unit may need (kill, pause, 2 interruptions, capacity refusals)."""
    boot = 0.5 if args.boot_seconds is None else args.boot_seconds
    return 180.0 + 6 * (boot + args.install_seconds + args.heartbeat)


def sample_key(execution_input: Any) -> str | None:
    """The sample key of an execution input: an S3 event or a manual start."""
    if not isinstance(execution_input, dict):
        return None
    detail = execution_input.get("detail") or {}
    key = (detail.get("object") or {}).get("key") or (execution_input.get("input") or {}).get("key")
    return str(key) if key else None


# ----------------------------------------------------------------------- Lambda injection


class LambdaFaults:
    """Transient errors in the in-process handlers, at each mission's probability.

    Missions run concurrently, so the probability is looked up per call: by the sample key
    for ``plan`` (no mission yet), else by the mission id (its sample key read once)."""

    def __init__(self, seed: int, sample_key_of: Callable[[str], str | None]) -> None:
        self.rng = random.Random(seed)
        self.injected: Counter[str] = Counter()
        self._sample_key_of = sample_key_of
        self._p_by_key: dict[str, float] = {}
        self._key_by_mission: dict[str, str | None] = {}
        self._last_failed: set[str] = set()
        self._lock = threading.Lock()

    def arm(self, key: str, p: float) -> None:
        with self._lock:
            self._p_by_key[key] = p

    def disarm(self, key: str) -> None:
        with self._lock:
            self._p_by_key.pop(key, None)

    def _p(self, event: dict[str, Any]) -> float:
        mission_id = event.get("missionId")
        if event.get("action") == "plan":
            key = sample_key(event.get("event"))
        elif mission_id is None:
            return 0.0
        else:
            with self._lock:
                known = mission_id in self._key_by_mission
                key = self._key_by_mission.get(mission_id)
            if not known:
                key = self._sample_key_of(mission_id)
                with self._lock:
                    self._key_by_mission[mission_id] = key
        with self._lock:
            return self._p_by_key.get(key or "", 0.0)

    def wrapper(self, function: str) -> Any:
        def wrap(inner: Any) -> Any:
            def handler(event: Any, context: Any) -> Any:
                action = event.get("action", "aggregate") if isinstance(event, dict) else "?"
                if action != "unitFailed" and isinstance(event, dict):
                    p = self._p(event)
                    owner = event.get("missionId") or event.get("executionArn")
                    site = f"{function}:{action}:{owner}:{event.get('unitId')}"
                    with self._lock:
                        strike = site not in self._last_failed and self.rng.random() < p
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
        self, session: Any, observer: Observer, plan: MissionPlan, mission_id: str, heartbeat: int
    ) -> None:
        super().__init__(name=f"faults-{plan.index}", daemon=True)
        self.session = session
        self.observer = observer
        self.plan = plan
        self.mission_id = mission_id
        # A frozen node's unit is relaunched after its heartbeat expires, then boots.
        self.resume_deadline = 60.0 + 2 * heartbeat
        self.log = DriverLog()
        self.stop = threading.Event()
        self._todo = ["kill"] * plan.kill + ["pause"] * plan.pause + ["interrupt"] * plan.interrupt
        self._struck: set[str] = set()
        self._resumers: list[threading.Thread] = []

    @property
    def struck(self) -> set[str]:
        """Nodes killed or frozen: their heartbeat expiry is the fault's, not spurious."""
        return {*self.log.killed, *self.log.paused}

    def run(self) -> None:
        raced = not self.plan.race
        next_race = 0.0
        while not self.stop.wait(0.1):
            try:
                if self._todo:
                    self._strike()
                if not raced and time.monotonic() >= next_race:
                    next_race = time.monotonic() + RACE_POLL_SECONDS
                    raced = self._race()
            except Exception as exc:  # noqa: BLE001 - a node may vanish between look and act
                self.log.errors.append(repr(exc))

    def finish(self) -> None:
        self.stop.set()
        self.join(timeout=10)
        for t in self._resumers:
            t.join(timeout=self.resume_deadline)

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
        deadline = time.monotonic() + self.resume_deadline
        while time.monotonic() < deadline:
            if self.observer.store.get_unit(self.mission_id, unit_id).attempt > 1:
                break
            time.sleep(0.5)
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
        self._lock = threading.Lock()

    def wrapper(self, inner: Any) -> Any:
        def handler(event: Any, context: Any) -> Any:
            mission_id = event.get("missionId") if isinstance(event, dict) else None
            with self._lock:
                first = bool(mission_id) and mission_id not in self.before_aggregate
            if first:
                shards = self.observer.store.list_shards(mission_id)
                with self._lock:
                    self.before_aggregate.setdefault(mission_id, progress_of(shards, []).done)
            return inner(event, context)

        return handler

    def count(self, mission_id: str) -> int | None:
        with self._lock:
            return self.before_aggregate.get(mission_id)


@dataclass(frozen=True)
class Launch:
    """One node launch: the LaunchNode task token it runs under, its unit, attempt, node."""

    token: str
    mission_id: str
    unit_id: str
    attempt: int
    instance_id: str
    at: float


class LaunchLedger:
    """Every launch that started a node, from the launch Lambda's payload and its result."""

    def __init__(self) -> None:
        self._launches: list[Launch] = []
        self._lock = threading.Lock()

    def wrapper(self, inner: Any) -> Any:
        def handler(event: Any, context: Any) -> Any:
            result = inner(event, context)
            launched = isinstance(result, dict) and result.get("instanceId")
            if isinstance(event, dict) and event.get("action") == "launch" and launched:
                launch = Launch(
                    token=str(event["taskToken"]),
                    mission_id=str(event["missionId"]),
                    unit_id=str(event["unitId"]),
                    attempt=int(result["attempt"]),
                    instance_id=str(result["instanceId"]),
                    at=time.monotonic(),
                )
                with self._lock:
                    self._launches.append(launch)
            return result

        return handler

    def of_mission(self, mission_id: str) -> list[Launch]:
        with self._lock:
            return [x for x in self._launches if x.mission_id == mission_id]


def first_heartbeat_timeouts(
    launches: list[Launch], expired: list[tuple[str, float]], struck: set[str]
) -> tuple[list[str], list[str]]:
    """(units whose first node's attempt ended in ``States.HeartbeatTimeout``, those of them
    no kill or pause struck): an expiry of the attempt's token after its launch and before
    any later launch under the same token."""
    ordered = sorted(launches, key=lambda x: x.at)
    first: dict[str, Launch] = {}
    for launch in sorted(ordered, key=lambda x: (x.attempt, x.at)):
        first.setdefault(launch.unit_id, launch)
    timed_out, spurious = [], []
    for unit_id, launch in sorted(first.items()):
        later = [x.at for x in ordered if x.token == launch.token and x.at > launch.at]
        until = min(later, default=float("inf"))
        if any(tok == launch.token and launch.at <= at < until for tok, at in expired):
            timed_out.append(unit_id)
            if launch.instance_id not in struck:
                spurious.append(unit_id)
    return timed_out, spurious


class Executions:
    """The state machine's executions by sample key, each described once (K missions ask)."""

    def __init__(self, observer: Observer, sm_arn: str) -> None:
        self.observer = observer
        self.sm_arn = sm_arn
        self._key_of: dict[str, str | None] = {}
        self._lock = threading.Lock()

    def of_key(self, key: str) -> list[str]:
        with self._lock:
            kwargs: dict[str, Any] = {"stateMachineArn": self.sm_arn, "maxResults": 1000}
            while True:
                page = self.observer.sfn.list_executions(**kwargs)
                for e in page["executions"]:
                    arn = str(e["executionArn"])
                    if arn not in self._key_of:
                        desc = self.observer.sfn.describe_execution(executionArn=arn)
                        self._key_of[arn] = sample_key(json.loads(desc.get("input") or "{}"))
                if not page.get("nextToken"):
                    break
                kwargs["nextToken"] = page["nextToken"]
            return sorted(arn for arn, k in self._key_of.items() if k == key)


@dataclass
class Campaign:
    """What every mission thread shares: the cloud, the fault machinery, the recorders."""

    session: Any
    observer: Observer
    args: argparse.Namespace
    lam: LambdaFaults
    probe: CounterProbe
    ledger: LaunchLedger
    heartbeats: HeartbeatTimeouts
    executions: Executions
    # The S3 event plans with the default profile: one mission writes and plans it at a time.
    start_lock: threading.Lock = field(default_factory=threading.Lock)


def start_mission(
    c: Campaign, plan: MissionPlan, sample: Path, key: str
) -> tuple[str | None, str | None, float]:
    """Write the plan's params as the default profile, upload the sample (and its duplicate
    events) and wait for the owning execution to plan it: (owner, mission id, start)."""
    session, store = c.session, c.observer.store
    with c.start_lock:
        session.services.store.put_profile(
            session.services.settings.default_profile, plan.params(c.args.heartbeat), time.time()
        )
        c.lam.arm(key, plan.lambda_p)
        started = time.monotonic()
        session.upload_sample(sample, trigger=True)
        for _ in range(plan.dup):
            session.redeliver_upload_event(key)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            for arn in c.executions.of_key(key):
                mission_id = store.mission_for_execution(arn)
                if mission_id:
                    return arn, mission_id, started
            time.sleep(0.5)
    return None, None, started


def run_one(c: Campaign, plan: MissionPlan) -> dict[str, Any]:
    from localcloud.session import SAMPLE_PREFIX

    sample = sample_file(
        f"faults mission {plan.index} seed {c.args.seed}\n",
        name=f"faults-{c.args.seed}-{plan.index:03d}.txt",
    )
    key = SAMPLE_PREFIX + sample.name
    try:
        owner, mission_id, started = start_mission(c, plan, sample, key)
        if owner is None or mission_id is None:
            return {
                "index": plan.index,
                "faults": plan.faults(),
                "status": "NOT_PLANNED",
                "ok": False,
            }
        return follow(c, plan, key, owner, mission_id, started)
    finally:
        c.lam.disarm(key)


def follow(  # noqa: PLR0917
    c: Campaign, plan: MissionPlan, key: str, owner: str, mission_id: str, started: float
) -> dict[str, Any]:
    """Strike the mission's nodes as planned, wait for its end, settle, check it."""
    driver = Driver(c.session, c.observer, plan, mission_id, c.args.heartbeat)
    driver.start()
    status = "TIMEOUT"
    while time.monotonic() - started < mission_timeout(c.args):
        status = c.observer.status(owner)
        if status in TERMINAL_EXECUTION:
            break
        time.sleep(POLL_SECONDS)
    wall = time.monotonic() - started
    driver.finish()
    c.lam.disarm(key)
    time.sleep(SETTLE_SECONDS)
    return check(c, plan, key, owner, mission_id, status, wall, driver)


def check(  # noqa: PLR0917
    c: Campaign,
    plan: MissionPlan,
    key: str,
    owner: str,
    mission_id: str,
    status: str,
    wall: float,
    driver: Driver,
) -> dict[str, Any]:
    from workflow.states import ShardStatus

    observer, store = c.observer, c.observer.store
    mission = store.get_mission(mission_id).to_item()
    shards = store.list_shards(mission_id)
    units = store.list_units(mission_id)
    done = sum(1 for s in shards if s.status is ShardStatus.DONE)
    reduce = mission.get("reduce") or {}
    items = plan.shards * plan.items_per_shard
    counter = c.probe.count(mission_id)
    others = [a for a in c.executions.of_key(key) if a != owner]
    dup_status = Counter(observer.status(a) for a in others)
    orphans = observer.live_instances(mission_id)
    nodes = c.session.pool.nodes(mission_id=mission_id)
    orphan_procs = [n.instance_id for n in nodes if n.running]
    exit_codes = Counter(str(n.returncode) for n in nodes)
    planned = mission.get("params") or {}
    as_planned = all(planned.get(k) == v for k, v in plan.params(c.args.heartbeat).items())
    timed_out, spurious = first_heartbeat_timeouts(
        c.ledger.of_mission(mission_id), c.heartbeats.expired(), driver.struck
    )
    lost = plan.shards - done
    double = max(0, (counter or 0) - plan.shards) + max(
        0, int(reduce.get("shards") or 0) - plan.shards
    )
    double += int((reduce.get("items") or 0) > items)
    result = {
        "index": plan.index,
        "missionId": mission_id,
        "faults": plan.faults(),
        "shards": plan.shards,
        "status": status,
        "missionStatus": mission.get("status"),
        "paramsAsPlanned": as_planned,
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
        "firstHeartbeatTimeouts": len(timed_out),
        "spuriousFirstHeartbeatTimeouts": len(spurious),
        "spuriousUnits": spurious,
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
        and as_planned
        and result["resultIdentical"]
        and lost == 0
        and double == 0
        and counter == plan.shards
        and not orphans
        and not orphan_procs
        and not spurious
        and driver.log.race_accepted == 0
        and dup_status.get(ExecutionStatus.SUCCEEDED, 0) == len(others) == plan.dup
    )
    return result


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--missions", type=int, default=20, help="missions in the campaign")
    ap.add_argument("--concurrency", type=int, default=1, help="missions in flight at once")
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
    # Checks that spuriousFirstHeartbeatTimeouts can fail: nodes get no boot heartbeats.
    ap.add_argument("--no-boot-heartbeat", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.missions < 1 or args.concurrency < 1:
        ap.error("--missions and --concurrency must be >= 1")
    return args


def run_logged(c: Campaign, plan: MissionPlan, total: int) -> dict[str, Any]:
    """One mission on its own thread; a benchmark error is this mission's NOT OK, not the end
    of the campaign."""
    log(
        f"mission {plan.index + 1}/{total}: {plan.shards} shards, "
        f"{plan.max_nodes} nodes, faults {plan.faults()}"
    )
    try:
        res = run_one(c, plan)
    except Exception as exc:  # noqa: BLE001 - reported in the mission's result
        res = {"index": plan.index, "faults": plan.faults(), "status": repr(exc), "ok": False}
    log(
        f"  #{plan.index} -> {res['status']} in {res.get('wallSeconds')} s, "
        f"{'ok' if res['ok'] else 'NOT OK'}: lost {res.get('lost')}, "
        f"double {res.get('doubleCounted')}, relaunches {res.get('relaunches')}, "
        f"orphans {res.get('orphanInstances')}/{res.get('orphanProcesses')}, "
        f"first heartbeat timeouts {res.get('firstHeartbeatTimeouts')} "
        f"(spurious {res.get('spuriousFirstHeartbeatTimeouts')})"
    )
    return res


def run_campaign(
    session: Any, args: argparse.Namespace, plans: list[MissionPlan]
) -> tuple[list[dict[str, Any]], LambdaFaults]:
    from localcloud.stack import FUNCTIONS

    observer = Observer(session)

    def sample_key_of(mission_id: str) -> str | None:
        try:
            return observer.store.get_mission(mission_id).sample.key
        except Exception:  # noqa: BLE001 - not a mission (yet): no injected errors
            return None

    lam = LambdaFaults(args.seed, sample_key_of)
    probe, ledger = CounterProbe(observer), LaunchLedger()
    registry = session.cloud.lambdas
    scheduler, rslt = FUNCTIONS["light_scheduler"], FUNCTIONS["rslt_proc"]
    undo = [
        wrap_handler(registry, scheduler, ledger.wrapper),
        wrap_handler(registry, scheduler, lam.wrapper("lightScheduler")),
        wrap_handler(registry, rslt, lam.wrapper("rsltProc")),
        wrap_handler(registry, rslt, probe.wrapper),
    ]
    results: list[dict[str, Any]] = []
    try:
        with (
            HeartbeatTimeouts() as heartbeats,
            ThreadPoolExecutor(args.concurrency, thread_name_prefix="mission") as pool,
        ):
            c = Campaign(
                session,
                observer,
                args,
                lam,
                probe,
                ledger,
                heartbeats,
                Executions(observer, session.stack.state_machine_arn),
            )
            futures = [pool.submit(run_logged, c, plan, len(plans)) for plan in plans]
            results = [f.result() for f in as_completed(futures)]
    finally:
        for u in reversed(undo):
            u()
    return sorted(results, key=lambda r: int(r["index"])), lam


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    quiet_stdout()
    from localcloud.chaos import parse_chaos
    from localcloud.session import LocalSession

    rng = random.Random(args.seed)
    plans = [draw(rng, i) for i in range(args.missions)]
    started = time.monotonic()
    cloud_chaos = parse_chaos(args.cloud_chaos)
    if cloud_chaos.interrupt or cloud_chaos.kill or cloud_chaos.dup:
        raise SystemExit("--cloud-chaos takes conflict, throttle and capacity only")
    boot = {} if args.boot_seconds is None else {"boot_seconds": args.boot_seconds}
    workers = SLOTS_PER_MISSION * args.concurrency
    with LocalSession(workers=workers, install_seconds=args.install_seconds, **boot) as session:
        if args.no_boot_heartbeat:
            session.pool.boot_heartbeat = False
        if cloud_chaos.active:
            session.start_chaos(cloud_chaos)
        results, lam = run_campaign(session, args, plans)
        leftover = [n.instance_id for n in session.pool.nodes(running_only=True)]
    total = time.monotonic() - started
    summary = {
        "missions": len(results),
        "concurrency": args.concurrency,
        "completed": sum(1 for r in results if r.get("missionStatus") == MissionStatus.SUCCEEDED),
        "identicalResults": sum(1 for r in results if r.get("resultIdentical")),
        "shardsLost": sum(r.get("lost", 0) for r in results),
        "shardsDoubleCounted": sum(r.get("doubleCounted", 0) for r in results),
        "orphanInstances": sum(r.get("orphanInstances", 0) for r in results),
        "orphanProcesses": sum(r.get("orphanProcesses", 0) for r in results) + len(leftover),
        "firstHeartbeatTimeouts": sum(r.get("firstHeartbeatTimeouts", 0) for r in results),
        "spuriousFirstHeartbeatTimeouts": sum(
            r.get("spuriousFirstHeartbeatTimeouts", 0) for r in results
        ),
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
            f"hb timeouts {r.get('firstHeartbeatTimeouts')}/"
            f"{r.get('spuriousFirstHeartbeatTimeouts')}, "
            f"exits {r.get('nodeExitCodes')}" + ("" if r["ok"] else "  <-- NOT OK"),
        )
        for r in results
    ]
    figures = {
        "benchmark": "faults",
        "machine": MACHINE,
        "seed": args.seed,
        "concurrency": args.concurrency,
        "heartbeatSeconds": args.heartbeat,
        "cloudChaos": args.cloud_chaos,
        "bootSeconds": args.boot_seconds,
        "installSeconds": args.install_seconds,
        "bootHeartbeat": not args.no_boot_heartbeat,
        "summary": summary,
        "missions": results,
    }
    emit(
        [
            table(
                f"faults: {len(results)} missions, {args.concurrency} at once, seed {args.seed}, "
                f"cloud {args.cloud_chaos}",
                rows,
            ),
            table("per mission", per),
        ],
        figures,
    )
    return 0 if summary["allOk"] else 1


if __name__ == "__main__":
    sys.exit(main())
