"""AggregateResults (RsltProc): merge DONE shards, apply the failure tolerance, summarise.

``tblTrans`` is the truth: counts are recomputed from the shard items (not from live
counters), and only each shard's committed ``resultKey`` is read, so a late upload of a
superseded attempt can never enter the result.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from workflow.cost import CostBreakdown, PriceList, Usage, billed_seconds, estimate
from workflow.errors import MissionNotFound, MissionOverBudget
from workflow.instance_types import CATALOG
from workflow.keys import final_result_key
from workflow.params import MissionParams
from workflow.ports import Ports
from workflow.progress import NO_PACE, Pace, pace_of, progress_of
from workflow.records import MAX_LISTED_INVALID_LINES, MissionRecord, ShardRecord, UnitRecord
from workflow.rerun import with_inherited
from workflow.result_packs import ResultReader
from workflow.states import SETTLED_SHARD, Capacity, MissionStatus, ShardStatus, UnitStatus
from workflow.workloads import load_workload
from workflow.workloads.base import INVALID_SAMPLE_LINES, WorkInputs
from workflow.workloads.merging import BytesMerger, ShardMerger, merger_for

# Lists kept in the mission item are capped so no item nears DynamoDB's 400 KB: 50 failed
# shards (error text cut at MAX_ERROR_CHARS: at most ~26 KB) and MAX_LISTED_ITEMS entries of
# any list in the workload's reduce summary (molsim's invalid query lines: 1,000 ints, ~8 KB).
# Each capped list is followed by an ``<name>Omitted`` count.
MAX_LISTED_FAILURES = 50
MAX_ERROR_CHARS = 500
MAX_LISTED_ITEMS = 1000
# Shard results fetched at once: one at a time, 100,000 results (~20 ms per GET) would not
# fit in a Lambda's 15 minutes.
FETCH_WORKERS = 16
# The mission item's ``stoppedBy`` when its budget refused a launch (workflow/budget.py).
STOPPED_BY_BUDGET = "budget"
# Modelled per-mission overheads (documented in benchmarks/README.md; measured there).
PARENT_TRANSITIONS = 7
# A unit that succeeded is then verified: VerifyUnit (one Lambda call), IsUnitComplete,
# UnitComplete (modelled; benchmarks/overhead.py measured the child before this step).
VERIFY_TRANSITIONS = 3
LAMBDA_GB = 0.5
LAMBDA_SECONDS_PER_CALL = 1.0


@dataclass(frozen=True)
class MissionSummary:
    mission_id: str
    status: MissionStatus
    shards: int
    done: int
    failed: int
    failed_shards: tuple[str, ...]
    retries: int
    interruptions: int
    result_uri: str | None
    duration_seconds: float
    cost: CostBreakdown
    cause: str
    reduce_summary: Mapping[str, Any]
    pace: Pace = NO_PACE
    max_cost_usd: float | None = None
    not_run_for_budget: int = 0  # shards whose unit's launch the budget refused

    @property
    def stopped_by_budget(self) -> bool:
        return self.not_run_for_budget > 0

    def subject(self) -> str:
        why = " (stopped by its budget)" if self.stopped_by_budget else ""
        return f"lightHPC mission {self.mission_id} {self.status.value}{why}"

    def message(self) -> str:
        lines = [
            f"Mission {self.mission_id}: {self.status.value}",
            f"Shards: {self.done}/{self.shards} done, {self.failed} failed",
            f"Retries: {self.retries}, Spot interruptions: {self.interruptions}",
            f"Result: {self.result_uri or 'none'}",
            f"Duration: {self.duration_seconds:.1f} s",
            f"Pace: {self.pace.line()}",
            f"Modelled AWS cost: ${self.cost.total:.6f}" + self._cap_text(),
        ]
        if self.stopped_by_budget:
            lines.append(
                f"Stopped by its budget: {self.not_run_for_budget} shard(s) not run, their "
                "launch refused once the spend reached maxCostUsd"
            )
        if self.failed_shards:
            omitted = self.failed - len(self.failed_shards)
            more = f" (and {omitted} more)" if omitted > 0 else ""
            lines.append("Failed shards: " + ", ".join(self.failed_shards) + more)
        if self.cause:
            lines.append(f"Cause: {self.cause}")
        return "\n".join(lines)

    def _cap_text(self) -> str:
        return "" if self.max_cost_usd is None else f" (maxCostUsd ${self.max_cost_usd:g})"

    def as_output(self) -> dict[str, Any]:
        return {
            "missionId": self.mission_id,
            "status": self.status.value,
            "shards": self.shards,
            "done": self.done,
            "failed": self.failed,
            "failedShards": list(self.failed_shards),
            "retries": self.retries,
            "interruptions": self.interruptions,
            "result": self.result_uri,
            "durationSeconds": round(self.duration_seconds, 3),
            "cost": round(self.cost.total, 6),
            "maxCostUsd": self.max_cost_usd,
            "stoppedBy": STOPPED_BY_BUDGET if self.stopped_by_budget else None,
            **self.pace.as_json(),
            "cause": self.cause or "none",
            "subject": self.subject(),
            "message": self.message(),
        }


def decide_status(done: int, failed: int, tolerance_percent: float) -> MissionStatus:
    """SUCCEEDED with no failure; PARTIAL within tolerance; FAILED beyond it or with no result."""
    total = done + failed
    if failed == 0 and done > 0:
        return MissionStatus.SUCCEEDED
    if done == 0 or total == 0:
        return MissionStatus.FAILED
    return (
        MissionStatus.PARTIAL
        if failed * 100.0 <= tolerance_percent * total
        else MissionStatus.FAILED
    )


def aggregate_mission(
    mission_id: str, svc: Ports, started_at: float | None = None
) -> MissionSummary:
    store = svc.store
    mission = store.get_mission(mission_id)
    params = mission.mission_params()
    shards = store.list_shards(mission_id)
    if not shards:
        raise MissionNotFound(f"mission {mission_id} has no shards in tblTrans")
    if _fail_unfinished(mission_id, shards, svc):
        shards = store.list_shards(mission_id)  # re-read: the moves' outcomes are the truth
    done = [s for s in shards if s.status is ShardStatus.DONE]
    failed = [s for s in shards if s.status is not ShardStatus.DONE]
    status = decide_status(len(done), len(failed), params.max_failed_shard_percent)
    result_uri: str | None = None
    reduced: Mapping[str, Any] = {}
    merged = with_inherited(store, mission, done)  # a rerun: + the DONE shards it inherits
    if merged:
        result_uri, reduced = _reduce(mission, params, merged, svc)
    units = store.list_units(mission_id)
    counts = progress_of(shards, units)
    duration = time.time() - (started_at or mission.created_at)
    summary = MissionSummary(
        mission_id=mission_id,
        status=status,
        shards=len(shards),
        done=len(done),
        failed=len(failed),
        failed_shards=tuple(s.shard_id for s in failed[:MAX_LISTED_FAILURES]),
        retries=counts.retries,
        interruptions=counts.interruptions,
        result_uri=result_uri,
        duration_seconds=duration,
        cost=price_mission(mission, shards, units),
        cause=_cause(failed, params),
        reduce_summary=reduced,
        pace=pace_of(counts, duration),
        max_cost_usd=params.max_cost_usd,
        not_run_for_budget=sum(1 for s in failed if refused_by_budget(s)),
    )
    store.update_mission(mission_id, mission_fields(summary, failed))
    return summary


def _fail_unfinished(mission_id: str, shards: Sequence[ShardRecord], svc: Ports) -> int:
    """Shards still open when the Map ended (e.g. the Map itself failed) count as FAILED;
    returns how many were open."""
    unfinished = [s for s in shards if s.status not in SETTLED_SHARD]
    for s in unfinished:
        svc.store.move_shard(
            mission_id,
            s.shard_id,
            ShardStatus.FAILED,
            attempt=s.attempt,
            fields={"error": f"unfinished ({s.status.value}) when the work units ended"},
        )
    return len(unfinished)


def _reduce(
    mission: MissionRecord, params: MissionParams, done: Sequence[ShardRecord], svc: Ports
) -> tuple[str, Mapping[str, Any]]:
    bucket = svc.settings.result_bucket
    ordered = sorted(done, key=lambda s: s.index)
    suffix = PurePosixPath(str(ordered[0].result_key)).suffix
    key = final_result_key(mission.mission_id, suffix)
    with tempfile.TemporaryDirectory(prefix="lighthpc-reduce-") as tmp:
        root = Path(tmp)
        sample = root / "sample"
        src = mission.sample
        svc.objects.download(src.bucket, src.key, sample, version_id=src.version_id)
        inputs = WorkInputs(sample=sample, options=params.workload_options())
        out = root / f"result{suffix}"
        merger = merger_for(params.workload, inputs)
        reader = ResultReader(svc.objects, bucket, root, FETCH_WORKERS)
        if merger is None:
            files = [path for _, path in reader.files(ordered)]
            reduced = load_workload(params.workload).reduce(files, out, inputs)
        else:
            reduced = stream_merge(merger, reader, ordered, out)
        svc.objects.upload(out, bucket, key)
    return f"s3://{bucket}/{key}", dict(reduced)


def stream_merge(
    merger: ShardMerger, reader: ResultReader, shards: Sequence[ShardRecord], out: Path
) -> Mapping[str, Any]:
    """Fold the shards' committed results into ``merger`` in shard order, each file deleted
    once folded: /tmp holds about FETCH_WORKERS objects and memory what the merger keeps
    (not every shard's result). A ``BytesMerger`` takes each result's bytes, no file."""
    if isinstance(merger, BytesMerger):
        for _, data in reader.contents(shards):
            merger.add_bytes(data)
        return merger.finish(out)
    for _, path in reader.files(shards):
        merger.add(path)
        path.unlink()
    return merger.finish(out)


def mission_usage(
    shards: int,
    units: Sequence[UnitRecord],
    instance_seconds: Mapping[str, float] | None = None,
) -> Usage:
    """Modelled orchestration of ``shards`` shards from the recorded launches (benchmarks
    measure the real counts) plus the instance-seconds the nodes reported, by (type,
    capacity)."""
    launches = sum(u.launches for u in units)
    verified = sum(1 for u in units if u.status is UnitStatus.SUCCEEDED)
    transitions = (
        PARENT_TRANSITIONS
        + sum(2 * max(u.launches, 1) for u in units)
        + VERIFY_TRANSITIONS * verified
    )
    invocations = 2 + launches + verified + sum(1 for u in units if u.status is UnitStatus.FAILED)
    return Usage(
        state_transitions=transitions,
        lambda_invocations=invocations,
        lambda_gb_seconds=invocations * LAMBDA_GB * LAMBDA_SECONDS_PER_CALL,
        ddb_writes=4 * shards + 4 * launches,
        ddb_reads=2 * shards + 2 * launches,
        instance_seconds=_instance_keys(instance_seconds or {}),
    )


def price_mission(
    mission: MissionRecord,
    shards: Sequence[ShardRecord],
    units: Sequence[UnitRecord],
    prices: PriceList | None = None,
) -> CostBreakdown:
    """The one cost model: RsltProc records it, ``lighthpc cost`` shows it. Compute is what
    every node billed (``instanceSeconds``, all attempts, interrupted ones too)."""
    return estimate(mission_usage(len(shards), units, mission.instance_seconds), prices)


def _instance_keys(raw: Mapping[str, float]) -> dict[tuple[str, Capacity], float]:
    """Billed seconds by (type, capacity): a node's own key (type|capacity|instance) is billed
    EC2's minute at least; an older per-type sum (type|capacity) is taken as it is."""
    out: dict[tuple[str, Capacity], float] = {}
    for key, seconds in raw.items():
        itype, capacity, *node = [*key.split("|"), "", ""][:3]
        cap = Capacity.SPOT if capacity == Capacity.SPOT else Capacity.ON_DEMAND
        billed = billed_seconds(float(seconds)) if any(node) else float(seconds)
        if itype in CATALOG:  # a type outside the catalog cannot be priced: left out, not fatal
            out[(itype, cap)] = out.get((itype, cap), 0.0) + billed
    return out


def refused_by_budget(shard: ShardRecord) -> bool:
    """The shard failed because its unit's launch was refused by ``maxCostUsd`` (the cause
    RecordUnitFailure wrote starts with the error's name)."""
    return (shard.error or "").startswith(MissionOverBudget.error_name)


def _cause(failed: Sequence[ShardRecord], params: MissionParams) -> str:
    if not failed:
        return ""
    first = failed[0]
    budget = sum(1 for s in failed if refused_by_budget(s))
    why = (
        f"stopped by its budget (maxCostUsd ${params.max_cost_usd:g}): {budget} shard(s) not run; "
        if budget
        else ""
    )
    return (
        f"{why}{len(failed)} shard(s) failed (tolerance {params.max_failed_shard_percent}%); "
        f"first: {first.shard_id}: {first.error or first.status.value}"
    )


def mission_fields(summary: MissionSummary, failed: Sequence[ShardRecord]) -> dict[str, Any]:
    return {
        "status": summary.status.value,
        "shardsDone": summary.done,
        "shardsFailed": summary.failed,
        "failedShards": [
            {"shardId": s.shard_id, "error": (s.error or s.status.value)[:MAX_ERROR_CHARS]}
            for s in failed[:MAX_LISTED_FAILURES]
        ],
        "failedShardsOmitted": max(0, len(failed) - MAX_LISTED_FAILURES),
        "retries": summary.retries,
        "interruptions": summary.interruptions,
        "result": summary.result_uri,
        "reduce": capped_lists(summary.reduce_summary),
        "durationSeconds": round(summary.duration_seconds, 3),
        "cost": round(summary.cost.total, 6),
        "stoppedBy": STOPPED_BY_BUDGET if summary.stopped_by_budget else None,
        "finishedAt": time.time(),
        **invalid_sample_fields(summary.reduce_summary),
    }


def invalid_sample_fields(reduced: Mapping[str, Any]) -> dict[str, Any]:
    """The mission's invalid sample lines as the nodes found them (``INVALID_SAMPLE_LINES``
    in the reduce summary), capped as PlanMission caps its own; nothing when not reported."""
    lines = reduced.get(INVALID_SAMPLE_LINES)
    if not isinstance(lines, list | tuple):
        return {}
    return {
        "invalidSampleLines": [int(n) for n in lines[:MAX_LISTED_INVALID_LINES]],
        "invalidSampleCount": len(lines),
    }


def capped_lists(summary: Mapping[str, Any]) -> dict[str, Any]:
    """``summary`` with every list cut at MAX_LISTED_ITEMS and ``<name>Omitted`` after it."""
    out: dict[str, Any] = {}
    for name, value in summary.items():
        if isinstance(value, list | tuple):
            out[name] = list(value[:MAX_LISTED_ITEMS])
            out[f"{name}Omitted"] = max(0, len(value) - MAX_LISTED_ITEMS)
        else:
            out[name] = value
    return out
