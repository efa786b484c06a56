"""Fault injection for local missions: ``--chaos interrupt=0.3,kill=1,dup=1,seed=7``.

* ``interrupt=P`` — each first attempt is interrupted with probability P, once it has claimed
  a shard, through its emulated ``spot/instance-action`` (a real Spot notice, seen by polling).
* ``kill=N`` — the first N first attempts are SIGKILLed mid-shard: no report, heartbeat expiry.
* ``dup=N`` — the S3 "Object Created" event is delivered N more times (must start no mission).
* ``conflict=P`` / ``throttle=P`` — each DynamoDB write meets an in-flight transaction /
  is throttled with probability P (``moto_compat.FAULTS``, fixes 11 and 12).
* ``capacity=P`` — each CreateFleet answers ``InsufficientInstanceCapacity`` with probability P
  (``localcloud.fleet_errors``: AWS's ``Errors[]``, no instance).
* ``seed=S`` — makes the choice of victims repeatable.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from localcloud.pool import LocalNodePool, NodeHandle
from workflow.aws.services import Services
from workflow.errors import LightHpcError
from workflow.states import ShardStatus

STRIKE_AFTER_SECONDS = 1.5
_RATES = ("interrupt", "conflict", "throttle", "capacity")


class ChaosSpecInvalid(LightHpcError):
    error_name = "Chaos.InvalidSpec"


@dataclass(frozen=True)
class ChaosSpec:
    interrupt: float = 0.0
    kill: int = 0
    dup: int = 0
    seed: int = 0
    conflict: float = 0.0
    throttle: float = 0.0
    capacity: float = 0.0

    @property
    def active(self) -> bool:
        rates = (self.interrupt, self.conflict, self.throttle, self.capacity)
        return max(rates) > 0 or self.kill > 0 or self.dup > 0


def parse_chaos(spec: str | None) -> ChaosSpec:
    """Parse ``k=v,k=v``; unknown keys and out-of-range values are refused by name."""
    if not spec:
        return ChaosSpec()
    values: dict[str, float] = {}
    for part in spec.split(","):
        key, sep, raw = part.strip().partition("=")
        if not sep or key not in {*_RATES, "kill", "dup", "seed"}:
            raise ChaosSpecInvalid(
                f"bad chaos item {part!r}: use interrupt=P, conflict=P, throttle=P, "
                "capacity=P, kill=N, dup=N, seed=S"
            )
        try:
            values[key] = float(raw)
        except ValueError as exc:
            raise ChaosSpecInvalid(f"chaos {key} needs a number, got {raw!r}") from exc
    rates = {k: values.get(k, 0.0) for k in _RATES}
    for key, rate in rates.items():
        if not 0 <= rate <= 1:
            raise ChaosSpecInvalid(f"chaos {key} is a probability in [0, 1], got {rate}")
    counts = {k: int(values.get(k, 0)) for k in ("kill", "dup", "seed")}
    if min(counts.values()) < 0:
        raise ChaosSpecInvalid("chaos kill/dup/seed cannot be negative")
    return ChaosSpec(
        interrupt=rates["interrupt"],
        conflict=rates["conflict"],
        throttle=rates["throttle"],
        capacity=rates["capacity"],
        kill=counts["kill"],
        dup=counts["dup"],
        seed=counts["seed"],
    )


@dataclass
class ChaosLog:
    interrupted: list[str] = field(default_factory=list)
    killed: list[str] = field(default_factory=list)
    duplicates: int = 0


class ChaosMonkey:
    """Watches the pool; strikes first attempts once they are busy with a shard."""

    def __init__(self, spec: ChaosSpec, pool: LocalNodePool, svc: Services) -> None:
        self.spec = spec
        self.pool = pool
        self.svc = svc
        self.log = ChaosLog()
        self._rng = random.Random(spec.seed)  # fault injection, not crypto
        self._decided: dict[str, Callable[[str], object] | None] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="chaos", daemon=True)

    def start(self) -> ChaosMonkey:
        if self.spec.interrupt > 0 or self.spec.kill > 0:
            self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)

    def _loop(self) -> None:
        while not self._stop.wait(0.2):
            for node in sorted(self.pool.nodes(running_only=True), key=lambda n: n.unit_id):
                if node.attempt != 1:
                    continue
                if node.instance_id not in self._decided:
                    self._decided[node.instance_id] = self._choose()
                action = self._decided[node.instance_id]
                if action is not None and (self._busy(node) or self._old(node)):
                    self._decided[node.instance_id] = None
                    action(node.instance_id)

    def _choose(self) -> Callable[[str], object] | None:
        if len(self.log.killed) + self._pending("kill") < self.spec.kill:
            return self._kill
        if self._rng.random() < self.spec.interrupt:
            return self._interrupt
        return None

    def _pending(self, what: str) -> int:
        target = self._kill if what == "kill" else self._interrupt
        return sum(1 for a in self._decided.values() if a == target)

    @staticmethod
    def _old(node: NodeHandle) -> bool:
        """Short shards may finish between two looks: strike anyway after a moment."""
        return time.monotonic() - node.started_at > STRIKE_AFTER_SECONDS

    def _busy(self, node: NodeHandle) -> bool:
        unit = self.svc.store.get_unit(node.mission_id, node.unit_id)
        return any(
            s.status is ShardStatus.RUNNING and s.attempt == node.attempt
            for s in self.svc.store.unit_shards(unit)
        )

    def _kill(self, instance_id: str) -> None:
        self.pool.kill(instance_id)
        self.log.killed.append(instance_id)

    def _interrupt(self, instance_id: str) -> None:
        self.pool.interrupt(instance_id)
        self.log.interrupted.append(instance_id)
