"""The typed records of ``tblMission`` and ``tblTrans``, and the keys that name them.

Stores speak records, never raw items: ``from_item``/``to_item`` convert the plain attribute
maps (DynamoDB types already decoded by the adapter) here, once, so the DynamoDB store and
the in-memory fake of the tests read and write the very same items. No boto3 here.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from workflow.bundles import BundleRef
from workflow.params import MissionParams
from workflow.planner import WorkUnit
from workflow.request import SampleRef
from workflow.states import MissionStatus, ShardStatus, UnitStatus
from workflow.workloads.base import ShardRange

PROFILE_PREFIX = "CONFIG#"  # MissionCfg profiles share tblMission: missionId CONFIG#<name>
SHARD_PREFIX = "shard#"
UNIT_PREFIX = "unit#"
FIRST_ATTEMPT = 1  # the first LaunchNode call: RetryCount 0 + 1 (launching.LaunchCommand)
EXECUTION_INDEX = "byExecution"  # GSI on tblMission: executionArn -> missionId
# Sparse GSI on tblMission: kind (only missions carry it, never profiles) -> createdAt, so
# ``lighthpc ls`` reads the newest missions with one bounded Query instead of a Scan.
MISSIONS_INDEX = "byCreated"
MISSION_KIND = "mission"
TTL_ATTRIBUTE = "expiresAt"  # DynamoDB TTL on both tables


# The mission item lists at most this many invalid sample lines (~8 KB of the item's 400 KB);
# ``invalidSampleCount`` says how many there were in all (PlanMission, or RsltProc when the
# nodes found them).
MAX_LISTED_INVALID_LINES = 1000


@dataclass(frozen=True)
class FailedShard:
    """One entry of the mission's ``failedShards`` list (RsltProc keeps the first 50)."""

    shard_id: str
    error: str

    def to_item(self) -> dict[str, Any]:
        return {"shardId": self.shard_id, "error": self.error}


# Attribute names MissionRecord reads; anything else rides along in ``extra``.
_MISSION_KEYS = frozenset(
    {
        "missionId",
        "kind",
        "status",
        "sample",
        "library",
        "bundle",
        "params",
        "executionArn",
        "source",
        "profile",
        "shards",
        "units",
        "shardsDone",
        "shardsFailed",
        "instanceSeconds",
        "createdAt",
        TTL_ATTRIBUTE,
        "invalidSampleLines",
        "invalidSampleCount",
        "relaunches",
        "retries",
        "interruptions",
        "failedShards",
        "result",
        "reduce",
        "durationSeconds",
        "cost",
        "finishedAt",
    }
)


@dataclass(frozen=True)
class MissionRecord:
    """The mission item of ``tblMission``.

    Fields PlanMission writes have defaults; fields written later (the relaunch counter,
    RsltProc's outcome) are None until then, so ``to_item`` gives back the item it was read
    from, and attributes this type does not name are kept in ``extra``.
    """

    mission_id: str
    status: MissionStatus
    sample: SampleRef
    params: Mapping[str, Any] = field(default_factory=dict)  # as on the wire (camelCase)
    execution_arn: str | None = None
    source: str | None = None
    profile: str | None = None
    shards: int = 0
    units: int = 0
    shards_done: int = 0
    shards_failed: int = 0
    instance_seconds: Mapping[str, float] = field(default_factory=dict)  # "<type>|<capacity>"
    created_at: float = 0.0
    expires_at: int | None = None
    invalid_sample_lines: tuple[int, ...] = ()
    invalid_sample_count: int = 0
    relaunches: int | None = None
    retries: int | None = None
    interruptions: int | None = None
    failed_shards: tuple[FailedShard, ...] | None = None
    result: str | None = None
    reduce: Mapping[str, Any] | None = None
    duration_seconds: float | None = None
    cost: float | None = None
    finished_at: float | None = None
    library: SampleRef | None = None  # the reference library, pinned at planning (None: default)
    bundle: BundleRef | None = None  # the job bundle, pinned with its sha256 at planning
    extra: Mapping[str, Any] = field(default_factory=dict)

    def mission_params(self) -> MissionParams:
        """The params as the model validates them (they were validated when planned)."""
        return MissionParams.model_validate(self.params)

    @classmethod
    def from_item(cls, item: Mapping[str, Any]) -> MissionRecord:
        failed = item.get("failedShards")
        library = item.get("library")
        bundle = item.get("bundle")
        return cls(
            mission_id=str(item["missionId"]),
            status=MissionStatus(item["status"]),
            sample=_object_ref(item.get("sample") or {}),
            library=None if library is None else _object_ref(library),
            bundle=None if bundle is None else BundleRef.from_item(bundle),
            params=dict(item.get("params") or {}),
            execution_arn=item.get("executionArn"),
            source=item.get("source"),
            profile=item.get("profile"),
            shards=int(item.get("shards", 0)),
            units=int(item.get("units", 0)),
            shards_done=int(item.get("shardsDone", 0)),
            shards_failed=int(item.get("shardsFailed", 0)),
            instance_seconds={k: float(v) for k, v in (item.get("instanceSeconds") or {}).items()},
            created_at=float(item.get("createdAt", 0.0)),
            expires_at=_opt_int(item.get(TTL_ATTRIBUTE)),
            invalid_sample_lines=tuple(int(n) for n in item.get("invalidSampleLines", [])),
            invalid_sample_count=int(item.get("invalidSampleCount", 0)),
            relaunches=_opt_int(item.get("relaunches")),
            retries=_opt_int(item.get("retries")),
            interruptions=_opt_int(item.get("interruptions")),
            failed_shards=None
            if failed is None
            else tuple(FailedShard(str(f["shardId"]), str(f["error"])) for f in failed),
            result=item.get("result"),
            reduce=item.get("reduce"),
            duration_seconds=_opt_float(item.get("durationSeconds")),
            cost=_opt_float(item.get("cost")),
            finished_at=_opt_float(item.get("finishedAt")),
            extra={k: v for k, v in item.items() if k not in _MISSION_KEYS},
        )

    def to_item(self) -> dict[str, Any]:
        """The plain item (None attributes left out, as a DynamoDB put leaves them out)."""
        item: dict[str, Any] = {
            **self.extra,
            "missionId": self.mission_id,
            "kind": MISSION_KIND,
            "status": self.status.value,
            "executionArn": self.execution_arn,
            "source": self.source,
            "profile": self.profile,
            "sample": _object_item(self.sample),
            "library": None if self.library is None else _object_item(self.library),
            "bundle": None if self.bundle is None else self.bundle.to_item(),
            "params": dict(self.params),
            "shards": self.shards,
            "units": self.units,
            "shardsDone": self.shards_done,
            "shardsFailed": self.shards_failed,
            "instanceSeconds": dict(self.instance_seconds),
            "createdAt": self.created_at,
            TTL_ATTRIBUTE: self.expires_at,
            "invalidSampleLines": list(self.invalid_sample_lines),
            "invalidSampleCount": self.invalid_sample_count,
            "relaunches": self.relaunches,
            "retries": self.retries,
            "interruptions": self.interruptions,
            "failedShards": None
            if self.failed_shards is None
            else [f.to_item() for f in self.failed_shards],
            "result": self.result,
            "reduce": None if self.reduce is None else dict(self.reduce),
            "durationSeconds": self.duration_seconds,
            "cost": self.cost,
            "finishedAt": self.finished_at,
        }
        return {k: v for k, v in item.items() if v is not None}


@dataclass(frozen=True)
class ProfileRecord:
    """A MissionCfg profile: partial params, stored in ``tblMission`` as ``CONFIG#<name>``."""

    name: str
    params: Mapping[str, Any]
    updated_at: float | None = None

    @classmethod
    def from_item(cls, item: Mapping[str, Any]) -> ProfileRecord:
        return cls(
            name=str(item["profile"]),
            params=dict(item.get("params") or {}),
            updated_at=_opt_float(item.get("updatedAt")),
        )

    def to_item(self) -> dict[str, Any]:
        return {
            "missionId": PROFILE_PREFIX + self.name,
            "profile": self.name,
            "params": dict(self.params),
            "updatedAt": self.updated_at,
        }


@dataclass(frozen=True)
class ShardRecord:
    """A shard item of ``tblTrans`` (sort key ``shard#<id>``)."""

    mission_id: str
    shard_id: str
    unit_id: str
    index: int
    start: int
    end: int
    status: ShardStatus
    attempt: int
    position: int | None = None
    checkpoint_key: str | None = None
    result_key: str | None = None
    # In a pack (workflow/result_packs.py): the result's first byte in ``result_key``'s
    # object; None when the object is the shard's own.
    result_offset: int | None = None
    result_bytes: int | None = None
    error: str | None = None
    instance_id: str | None = None
    # Epoch seconds, for the timeline: queued (a relaunch's requeue), claimed (the claim
    # write), started (a worker began it; written with the commit), finished (the commit or
    # the failure), interrupted (a notice).
    queued_at: float | None = None
    claimed_at: float | None = None
    started_at: float | None = None
    finished_at: float | None = None
    interrupted_at: float | None = None

    @property
    def range(self) -> ShardRange:
        return ShardRange(self.shard_id, self.index, self.start, self.end)

    @classmethod
    def from_item(cls, item: Mapping[str, Any]) -> ShardRecord:
        return cls(
            mission_id=item["missionId"],
            shard_id=item["shardId"].removeprefix(SHARD_PREFIX),
            unit_id=item["unitId"],
            index=int(item["index"]),
            start=int(item["start"]),
            end=int(item["end"]),
            status=ShardStatus(item["status"]),
            attempt=int(item.get("attempt", 0)),
            position=item.get("position"),
            checkpoint_key=item.get("checkpointKey"),
            result_key=item.get("resultKey"),
            result_offset=_opt_int(item.get("resultOffset")),
            result_bytes=_opt_int(item.get("resultBytes")),
            error=item.get("error"),
            instance_id=item.get("instanceId"),
            queued_at=_opt_float(item.get("queuedAt")),
            claimed_at=_opt_float(item.get("claimedAt")),
            started_at=_opt_float(item.get("startedAt")),
            finished_at=_opt_float(item.get("finishedAt")),
            interrupted_at=_opt_float(item.get("interruptedAt")),
        )


@dataclass(frozen=True)
class UnitRecord:
    """A work-unit item of ``tblTrans`` (sort key ``unit#<id>``): one node per attempt."""

    mission_id: str
    unit_id: str
    shard_from: int
    shard_to: int  # inclusive shard index
    status: UnitStatus
    attempt: int
    task_token: str | None = None
    instance_id: str | None = None
    capacity: str | None = None
    interrupted_attempts: tuple[int, ...] = ()
    launches: int = 0
    capacity_refusals: int = 0  # Spot launches EC2 refused for capacity (launching.py)
    # The current attempt's node (LaunchNode's ``note_launch``), when the attempt began
    # (``begin_attempt``) and when it succeeded: what a node not yet billed costs (budget.py).
    instance_type: str | None = None
    launched_at: float | None = None
    finished_at: float | None = None

    @classmethod
    def from_item(cls, item: Mapping[str, Any]) -> UnitRecord:
        return cls(
            mission_id=item["missionId"],
            unit_id=item["shardId"].removeprefix(UNIT_PREFIX),
            shard_from=int(item["shardFrom"]),
            shard_to=int(item["shardTo"]),
            status=UnitStatus(item["status"]),
            attempt=int(item.get("attempt", 0)),
            task_token=item.get("taskToken"),
            instance_id=item.get("instanceId"),
            capacity=item.get("capacity"),
            interrupted_attempts=tuple(int(a) for a in item.get("interruptedAttempts", [])),
            launches=int(item.get("launches", 0)),
            capacity_refusals=int(item.get("capacityRefusals", 0)),
            instance_type=item.get("instanceType"),
            launched_at=_opt_float(item.get("launchedAt")),
            finished_at=_opt_float(item.get("finishedAt")),
        )


def billing_key(instance_type: str, capacity: str, instance_id: str) -> str:
    """A node's key in the mission's ``instanceSeconds`` map: one per node, so billing is a
    SET that a retry repeats harmlessly (RsltProc sums by type and capacity)."""
    return f"{instance_type}|{capacity}|{instance_id}"


def plan_items(
    mission_id: str, units: Sequence[WorkUnit], expires_at: int | None = None
) -> list[dict[str, Any]]:
    """Every ``tblTrans`` item of a plan: per unit, its unit item then its shard items.

    Shards are written QUEUED for attempt 1: no node can claim them before the unit's first
    launch makes attempt 1 current, so that launch moves no shard."""
    items: list[dict[str, Any]] = []
    for unit in units:
        items.append(
            {
                "missionId": mission_id,
                "shardId": UNIT_PREFIX + unit.unit_id,
                "kind": "unit",
                "unitId": unit.unit_id,
                "shardFrom": unit.shards[0].index,
                "shardTo": unit.shards[-1].index,
                "status": UnitStatus.LAUNCHING.value,
                "attempt": 0,
                "launches": 0,
            }
        )
        items.extend(
            {
                "missionId": mission_id,
                "shardId": SHARD_PREFIX + s.shard_id,
                "kind": "shard",
                "unitId": unit.unit_id,
                "index": s.index,
                "start": s.start,
                "end": s.end,
                "status": ShardStatus.QUEUED.value,
                "attempt": FIRST_ATTEMPT,
            }
            for s in unit.shards
        )
    if expires_at is not None:
        items = [{**it, TTL_ATTRIBUTE: expires_at} for it in items]
    return items


def _object_ref(item: Mapping[str, Any]) -> SampleRef:
    return SampleRef(
        bucket=str(item.get("bucket", "")),
        key=str(item.get("key", "")),
        etag=item.get("etag"),
        version_id=item.get("versionId"),
        size=_opt_int(item.get("size")),
    )


def _object_item(ref: SampleRef) -> dict[str, Any]:
    return {
        "bucket": ref.bucket,
        "key": ref.key,
        "etag": ref.etag,
        "versionId": ref.version_id,
        "size": ref.size,
    }


def _opt_int(value: Any) -> int | None:
    return None if value is None else int(value)


def _opt_float(value: Any) -> float | None:
    return None if value is None else float(value)
