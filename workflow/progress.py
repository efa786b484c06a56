"""Mission progress counted from ``tblTrans`` alone: one rule for the local run's live bar,
``lighthpc status`` and RsltProc's summary (retries, Spot interruptions)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from workflow.records import ShardRecord, UnitRecord
from workflow.states import ShardStatus, UnitStatus


@dataclass(frozen=True)
class Progress:
    shards: int
    done: int
    failed: int
    running: int
    waiting: int
    units: int
    units_running: int
    retries: int
    interruptions: int

    @property
    def percent(self) -> float:
        return 100.0 * (self.done + self.failed) / self.shards if self.shards else 0.0

    def line(self) -> str:
        return (
            f"{self.done}/{self.shards} shards done ({self.percent:.0f}% settled), "
            f"{self.failed} failed, {self.running} running, {self.waiting} waiting · "
            f"{self.units_running}/{self.units} units running · retries {self.retries} · "
            f"Spot interruptions {self.interruptions}"
        )

    def as_json(self) -> dict[str, Any]:
        return {
            "shards": self.shards,
            "done": self.done,
            "failed": self.failed,
            "running": self.running,
            "waiting": self.waiting,
            "units": self.units,
            "unitsRunning": self.units_running,
            "retries": self.retries,
            "interruptions": self.interruptions,
            "percentSettled": round(self.percent, 1),
        }


def progress_of(shards: Sequence[ShardRecord], units: Sequence[UnitRecord]) -> Progress:
    """Progress from ``tblTrans`` alone (the same counts the local view shows)."""
    status = [s.status for s in shards]
    return Progress(
        shards=len(shards),
        done=status.count(ShardStatus.DONE),
        failed=status.count(ShardStatus.FAILED),
        running=status.count(ShardStatus.RUNNING),
        waiting=sum(1 for s in status if s not in {ShardStatus.DONE, ShardStatus.FAILED})
        - status.count(ShardStatus.RUNNING),
        units=len(units),
        units_running=sum(1 for u in units if u.status is UnitStatus.RUNNING),
        retries=sum(max(u.launches - 1, 0) for u in units),
        interruptions=sum(len(u.interrupted_attempts) for u in units),
    )
