"""Simulated compute nodes: threads that do what the node agent does, through the same APIs.

A ``NodeSim`` watches the emulator's EC2 for our tagged instances (as the local pool will),
reads the attempt's token from ``tblTrans``, runs the unit's queued shards with the ``noop``
semantics (result = item count), commits them with conditional writes and reports through the
task token. A ``behaviour`` callback decides per attempt what the node does, so tests can script
interruptions, silent deaths and permanent failures.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from workflow.attempt import UnitAttempt
from workflow.aws.ec2 import TAG_ATTEMPT, TAG_MISSION, TAG_UNIT
from workflow.aws.services import Services
from workflow.errors import ShardFailed, SpotInterrupted
from workflow.keys import shard_result_key
from workflow.ports import MissionStore
from workflow.records import UnitRecord

Behaviour = Literal["succeed", "interrupt", "silent", "fail"]


def begin(
    store: MissionStore, mission_id: str, unit_id: str, n: int, *, token: str, capacity: str
) -> tuple[UnitRecord, int]:
    """LaunchNode's first step: ``UnitAttempt.begin`` over this store."""
    _, unit, queued = UnitAttempt.begin(
        store, mission_id, unit_id, n, task_token=token, capacity=capacity
    )
    return unit, queued


@dataclass
class Attempt:
    mission_id: str
    unit_id: str
    attempt: int
    instance_id: str
    instance_lifecycle: str | None
    instance_type: str = ""
    token: str = ""
    shards_run: list[str] = field(default_factory=list)

    def protocol(self, store: MissionStore) -> UnitAttempt:
        """The same protocol object the node agent writes through."""
        return UnitAttempt(store, self.mission_id, self.unit_id, self.attempt)


class NodeSim:
    def __init__(
        self,
        svc: Services,
        behaviour: Callable[[Attempt], Behaviour] | None = None,
        *,
        hold_seconds: float = 0.0,
        node_svc: Services | None = None,
        bill_seconds: float | None = None,
    ) -> None:
        self.svc = svc  # the pool's view: finds the instances CreateFleet started
        self.node = node_svc or svc  # what a node does, under the node role when given
        self.behaviour = behaviour or (lambda _a: "succeed")
        self.hold_seconds = hold_seconds  # each node 'boots' this long: makes overlap visible
        # Each node bills this many seconds as it ends (the agent's bill_instance), so the
        # cost model sees a node-hour without the test waiting one.
        self.bill_seconds = bill_seconds
        self.attempts: list[Attempt] = []
        self.live = 0
        self.peak_live = 0
        self._live_lock = threading.Lock()
        self._seen: set[str] = set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="node-sim", daemon=True)
        self.errors: list[BaseException] = []

    def __enter__(self) -> NodeSim:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _loop(self) -> None:
        while not self._stop.wait(0.1):
            try:
                for attempt in self._new_instances():
                    threading.Thread(target=self._run, args=(attempt,), daemon=True).start()
            except Exception as exc:  # noqa: BLE001 - surfaced to the test through self.errors
                self.errors.append(exc)

    def _new_instances(self) -> list[Attempt]:
        resp = self.svc.ec2.describe_instances(
            Filters=[
                {"Name": "tag-key", "Values": [TAG_MISSION]},
                {"Name": "instance-state-name", "Values": ["pending", "running"]},
            ]
        )
        found = []
        for reservation in resp["Reservations"]:
            for inst in reservation["Instances"]:
                iid = inst["InstanceId"]
                if iid in self._seen:
                    continue
                self._seen.add(iid)
                tags = {t["Key"]: t["Value"] for t in inst.get("Tags", [])}
                found.append(
                    Attempt(
                        tags[TAG_MISSION],
                        tags[TAG_UNIT],
                        int(tags[TAG_ATTEMPT]),
                        iid,
                        inst.get("InstanceLifecycle"),
                        inst.get("InstanceType", ""),
                    )
                )
        return found

    def _run(self, a: Attempt) -> None:
        with self._live_lock:
            self.live += 1
            self.peak_live = max(self.peak_live, self.live)
        try:
            self._stop.wait(self.hold_seconds)
            self._attempt(a)
        except Exception as exc:  # noqa: BLE001 - a node that crashes says so to the test
            self.errors.append(exc)
        finally:
            with self._live_lock:
                self.live -= 1

    def _attempt(self, a: Attempt) -> None:
        store = self.node.store
        unit = store.get_unit(a.mission_id, a.unit_id)
        if unit.attempt != a.attempt or not unit.task_token:
            return
        a.token = unit.task_token
        self.attempts.append(a)
        what = self.behaviour(a)
        attempt = a.protocol(store)
        shards = attempt.shards_to_run(unit)
        if what == "silent":
            return
        if what == "fail":
            self._bill(a)
            self.node.tokens.report_failure(a.token, ShardFailed.error_name, "exit status 3: boom")
            self._terminate(a)
            return
        todo = shards if what == "succeed" else shards[: len(shards) // 2]
        for s in todo:
            self.run_shard(a, s.shard_id, s.end - s.start)
        self._bill(a)
        if what == "interrupt":
            for s in shards[len(todo) :]:
                attempt.interrupt_shard(s.shard_id)
            attempt.interrupt("spot notice")
            self.node.tokens.report_failure(a.token, SpotInterrupted.error_name, "spot notice")
        else:
            attempt.succeed()
            self.node.tokens.report_success(a.token, {"shards": len(todo)})
        self._terminate(a)

    def run_shard(self, a: Attempt, shard_id: str, items: int) -> bool:
        """Claim, 'compute', upload to the attempt's key, commit. False if refused."""
        attempt = a.protocol(self.node.store)
        if not attempt.claim(shard_id):
            return False
        key = shard_result_key(a.mission_id, shard_id, a.attempt, ".json")
        body = json.dumps({"shard": shard_id, "items": items}).encode()
        self.node.s3.put_object(Bucket=self.node.settings.result_bucket, Key=key, Body=body)
        ok = attempt.commit(shard_id, key, {})
        if ok:
            a.shards_run.append(shard_id)
        return ok

    def _bill(self, a: Attempt) -> None:
        """Before the report (the agent bills as it exits, just after): the next launch's
        budget check then reads this node's bill, not an estimate of it."""
        if self.bill_seconds is not None:
            capacity = "spot" if a.instance_lifecycle == "spot" else "on-demand"
            self.node.store.bill_instance(
                a.mission_id, a.instance_id, a.instance_type, capacity, self.bill_seconds
            )

    def _terminate(self, a: Attempt) -> None:
        self.node.ec2.terminate_instances(InstanceIds=[a.instance_id])


def first_attempt_only(what: Behaviour) -> Callable[[Attempt], Behaviour]:
    return lambda a: what if a.attempt == 1 else "succeed"


def unit_scripted(plan: dict[tuple[str, int], Behaviour]) -> Callable[[Attempt], Behaviour]:
    return lambda a: plan.get((a.unit_id, a.attempt), "succeed")


def summary(output: str | None) -> dict[str, Any]:
    return json.loads(output or "{}")
