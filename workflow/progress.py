"""Mission progress counted from ``tblTrans`` alone: one rule for the local run's live bar,
``lighthpc status`` and RsltProc's summary (retries, Spot interruptions), and one rule for
its pace (shards/s, the ETA from the observed rate)."""

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


@dataclass(frozen=True)
class Pace:
    """Shards done per second since the mission began, and the time left at that rate for
    the shards still open; both None until a shard is done (no rate, so no ETA)."""

    shards_per_second: float | None
    eta_seconds: float | None

    def line(self, spent_usd: float | None = None, cap_usd: float | None = None) -> str:
        """``0.52 shards/s · ETA 1 min 05 s · spent $0.000412 of $0.01`` (the spend when
        given, its cap when there is one)."""
        if self.shards_per_second is None or self.eta_seconds is None:
            text = "rate: none yet · ETA: unknown"
        else:
            text = f"{self.shards_per_second:.3g} shards/s · ETA {_duration(self.eta_seconds)}"
        if spent_usd is not None:
            text += f" · spent ${spent_usd:.6f}"
            if cap_usd is not None:
                text += f" of ${cap_usd:g}"
        return text

    def as_json(self) -> dict[str, Any]:
        return {
            "shardsPerSecond": self.shards_per_second,
            "etaSeconds": None if self.eta_seconds is None else round(self.eta_seconds, 1),
        }


NO_PACE = Pace(None, None)  # before the first shard is done


def pace_of(progress: Progress, elapsed_seconds: float) -> Pace:
    """The observed rate is done shards over the mission's elapsed time (boot included, so
    early on it understates); the ETA is the open shards at that rate."""
    if progress.done <= 0 or elapsed_seconds <= 0:
        return NO_PACE
    rate = progress.done / elapsed_seconds
    remaining = max(progress.shards - progress.done - progress.failed, 0)
    return Pace(rate, remaining / rate)


def _duration(seconds: float) -> str:
    whole = round(seconds)
    if whole < 60:
        return f"{whole} s"
    minutes, secs = divmod(whole, 60)
    if minutes < 60:
        return f"{minutes} min {secs:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"
