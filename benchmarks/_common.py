"""Shared pieces of the benchmark scripts: local missions, progress on stderr, output."""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchmarks.instruments import mark_observer
from workflow.aws.ec2 import TAG_MISSION
from workflow.states import TERMINAL_EXECUTION

MACHINE = f"{os.cpu_count()} cores"


def log(msg: str) -> None:
    """Progress and notes go to stderr; stdout carries only the table and the JSON line.
    One write per line, so lines of concurrent threads do not interleave."""
    sys.stderr.write(f"[{time.strftime('%H:%M:%S')}] {msg}\n")
    sys.stderr.flush()


def table(title: str, rows: Sequence[tuple[str, Any]]) -> str:
    width = max(len(k) for k, _ in rows)
    lines = [title, "-" * len(title)]
    lines += [f"{k.ljust(width)}  {_fmt(v)}" for k, v in rows]
    return "\n".join(lines)


def _fmt(v: Any) -> str:
    if isinstance(v, bool):
        return "yes" if v else "NO"
    if isinstance(v, float):
        return f"{v:,.4g}" if abs(v) < 1000 else f"{v:,.0f}"
    if isinstance(v, int):
        return f"{v:,}"
    return str(v)


def quiet_stdout() -> None:
    """Until ``emit``, anything printed (moto prints some warnings to stdout) goes to stderr,
    so the JSON line stays the last line of stdout."""
    sys.stdout = sys.stderr


def emit(tables: Sequence[str], figures: Mapping[str, Any]) -> None:
    """Print the tables, then the figures as JSON on the last line of the real stdout; later
    prints of lingering emulator threads go to stderr."""
    out = sys.__stdout__
    assert out is not None
    out.write("\n\n".join(tables) + "\n")
    out.write(json.dumps(figures, default=str, separators=(",", ":")) + "\n")
    out.flush()
    sys.stdout = sys.stderr


@dataclass
class MissionRun:
    arn: str
    mission_id: str | None
    status: str
    wall: float
    mission: dict[str, Any]
    phases: dict[str, float] = field(default_factory=dict)


class Observer:
    """Clients of the benchmark itself (marked so request counters leave them out)."""

    def __init__(self, session: Any) -> None:
        cloud = session.cloud
        self.sfn = mark_observer(cloud.client("stepfunctions"))
        self.ec2 = mark_observer(cloud.client("ec2"))
        self.ddb = mark_observer(cloud.client("dynamodb"))
        from workflow.aws.dynamodb import DynamoMissionStore

        settings = session.stack.settings
        self.store = DynamoMissionStore(self.ddb, settings.mission_table, settings.trans_table)

    def status(self, arn: str) -> str:
        return str(self.sfn.describe_execution(executionArn=arn)["status"])

    def live_instances(self, mission_id: str | None = None) -> list[str]:
        """Instances of our missions not terminated (pending/running/stopping/stopped)."""
        filters = [
            {"Name": "tag-key", "Values": [TAG_MISSION]},
            {
                "Name": "instance-state-name",
                "Values": ["pending", "running", "stopping", "stopped", "shutting-down"],
            },
        ]
        if mission_id:
            filters.append({"Name": f"tag:{TAG_MISSION}", "Values": [mission_id]})
        out = []
        for page in self.ec2.get_paginator("describe_instances").paginate(Filters=filters):
            for res in page.get("Reservations", []):
                out.extend(str(i["InstanceId"]) for i in res.get("Instances", []))
        return out


def sample_file(text: str = "x\n", name: str = "bench-sample.txt") -> Path:
    path = Path(tempfile.mkdtemp(prefix="lighthpc-bench-")) / name
    path.write_text(text)
    return path


def run_mission(
    session: Any,
    observer: Observer,
    sample: Path,
    params: Mapping[str, Any],
    *,
    timeout: float = 3600.0,
    on_tick: Callable[[float], None] | None = None,
    tick_seconds: float = 5.0,
) -> MissionRun:
    """Start a mission by hand (manual StartExecution), wait for the execution to end."""
    key = session.upload_sample(sample, trigger=False)
    started, started_at = time.monotonic(), time.time()
    arn = session.start_manual(key, dict(params))
    status = wait_execution(
        observer, arn, timeout=timeout, on_tick=on_tick, tick_seconds=tick_seconds
    )
    wall = time.monotonic() - started
    mission_id = observer.store.mission_for_execution(arn)
    mission = observer.store.get_mission(mission_id).to_item() if mission_id else {}
    phases = phases_of(observer.store, mission_id, started_at, wall) if mission_id else {}
    return MissionRun(arn, mission_id, status, wall, mission, phases)


def phases_of(store: Any, mission_id: str, started_at: float, wall: float) -> dict[str, float]:
    """Where a mission's wall time went, from the timestamps its records already carry:
    StartExecution → planned → first launch → first claim (node boot) → last shard done →
    execution ended (reduce, notice, the poll's lag)."""
    mission = store.get_mission(mission_id).to_item()
    units = store.list_units(mission_id)
    shards = store.list_shards(mission_id)
    launched = [u.launched_at for u in units if u.launched_at]
    claimed = [s.claimed_at for s in shards if s.claimed_at]
    finished = [s.finished_at for s in shards if s.finished_at]
    marks = [
        ("planSeconds", float(mission.get("createdAt") or started_at)),
        ("launchSeconds", min(launched, default=0.0)),
        ("bootToFirstClaimSeconds", min(claimed, default=0.0)),
        ("shardsSeconds", max(finished, default=0.0)),
    ]
    phases, last = {}, started_at
    for name, at in marks:
        if at:
            phases[name] = round(at - last, 3)
            last = at
    phases["reduceAndEndSeconds"] = round(started_at + wall - last, 3)
    return phases


def wait_execution(
    observer: Observer,
    arn: str,
    *,
    timeout: float,
    on_tick: Callable[[float], None] | None = None,
    tick_seconds: float = 5.0,
    poll: float = 0.1,
) -> str:
    """Poll DescribeExecution only (no DynamoDB reads: they would be counted as traffic)."""
    started = time.monotonic()
    last_tick = started
    while True:
        status = observer.status(arn)
        now = time.monotonic()
        if status in TERMINAL_EXECUTION:
            return status
        if now - started > timeout:
            raise TimeoutError(f"{arn} still {status} after {timeout:.0f} s")
        if on_tick is not None and now - last_tick >= tick_seconds:
            last_tick = now
            on_tick(now - started)
        time.sleep(poll)


def repo_root() -> Path:
    return Path(__file__).resolve().parent.parent
