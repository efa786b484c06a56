"""In-memory ports for unit tests: the use cases run on these in milliseconds.

``MemoryMissionStore`` keeps the same plain items the DynamoDB store writes (built by the
same ``workflow.records`` functions) and refuses what DynamoDB's condition expressions
refuse: create-once, attempt fencing, the shard moves of ``workflow.states.ALLOWED``.
``tests/functional/test_store_contract.py`` runs one suite against both so they cannot drift.
"""

from __future__ import annotations

import copy
import hashlib
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from workflow.errors import AttemptSuperseded, MissionNotFound, NodeCapacity, ObjectUnavailable
from workflow.planner import WorkUnit, shard_id
from workflow.ports import (
    MAX_BATCH_MOVES,
    Launched,
    LaunchRequest,
    NodeRef,
    ObjectHead,
    Ports,
    ShardMove,
)
from workflow.records import (
    MISSION_KIND,
    PROFILE_PREFIX,
    SHARD_PREFIX,
    UNIT_PREFIX,
    MissionRecord,
    ProfileRecord,
    ShardRecord,
    UnitRecord,
    billing_key,
    plan_items,
)
from workflow.request import SampleRef
from workflow.settings import Settings
from workflow.states import MissionStatus, ShardStatus, UnitStatus, sources_of


class MemoryMissionStore:
    """``workflow.ports.MissionStore`` in dicts: ``missions[missionId]`` and
    ``trans[missionId][sortKey]``, each an item as DynamoDB would hold it."""

    def __init__(self) -> None:
        self.missions: dict[str, dict[str, Any]] = {}
        self.trans: dict[str, dict[str, dict[str, Any]]] = {}
        self._lock = threading.RLock()  # one conditional write at a time, as DynamoDB per item

    # ---- missions -------------------------------------------------------------------------

    def create_mission(self, record: MissionRecord) -> MissionRecord | None:
        with self._lock:
            if record.mission_id in self.missions:
                return self.get_mission(record.mission_id)
            self.missions[record.mission_id] = copy.deepcopy(record.to_item())
        return None

    def get_mission(self, mission_id: str) -> MissionRecord:
        with self._lock:
            item = self.missions.get(mission_id)
            if item is None:
                raise MissionNotFound(f"no mission {mission_id!r}")
            return MissionRecord.from_item(copy.deepcopy(item))

    def delete_mission(self, mission_id: str) -> None:
        with self._lock:
            self.missions.pop(mission_id, None)

    def update_mission(self, mission_id: str, fields: Mapping[str, Any]) -> None:
        with self._lock:
            item = self.missions.get(mission_id)
            if item is None:
                raise MissionNotFound(f"no mission {mission_id!r}")
            item.update(copy.deepcopy({k: v for k, v in fields.items() if v is not None}))

    def bill_instance(
        self, mission_id: str, instance_id: str, instance_type: str, capacity: str, seconds: float
    ) -> None:
        with self._lock:
            item = self.missions.get(mission_id)
            if item is None or "instanceSeconds" not in item:
                raise MissionNotFound(f"no mission {mission_id!r} to bill")
            item["instanceSeconds"][billing_key(instance_type, capacity, instance_id)] = round(
                seconds, 3
            )

    def list_missions(self, limit: int) -> list[MissionRecord]:
        with self._lock:  # as the sparse index: only items that carry the mission kind
            items = [i for i in self.missions.values() if i.get("kind") == MISSION_KIND]
        missions = [MissionRecord.from_item(copy.deepcopy(item)) for item in items]
        return sorted(missions, key=lambda m: m.created_at, reverse=True)[:limit]

    def mission_for_execution(self, execution_arn: str) -> str | None:
        with self._lock:
            found = [m for m, i in self.missions.items() if i.get("executionArn") == execution_arn]
        return found[0] if found else None

    # ---- profiles -------------------------------------------------------------------------

    def get_profile(self, name: str) -> ProfileRecord | None:
        with self._lock:
            item = self.missions.get(PROFILE_PREFIX + name)
            return None if item is None else ProfileRecord.from_item(copy.deepcopy(item))

    def put_profile(self, name: str, params: Mapping[str, Any], updated_at: float) -> None:
        item = ProfileRecord(name, dict(params), updated_at).to_item()
        with self._lock:
            self.missions[PROFILE_PREFIX + name] = copy.deepcopy(item)

    def delete_profile(self, name: str) -> bool:
        with self._lock:
            return self.missions.pop(PROFILE_PREFIX + name, None) is not None

    def list_profiles(self) -> list[ProfileRecord]:
        with self._lock:
            items = [
                copy.deepcopy(i) for k, i in self.missions.items() if k.startswith(PROFILE_PREFIX)
            ]
        return sorted((ProfileRecord.from_item(i) for i in items), key=lambda p: p.name)

    # ---- plan and reads -------------------------------------------------------------------

    def put_plan(
        self, mission_id: str, units: Sequence[WorkUnit], expires_at: int | None = None
    ) -> None:
        with self._lock:
            table = self.trans.setdefault(mission_id, {})
            for item in plan_items(mission_id, units, expires_at):
                table[item["shardId"]] = copy.deepcopy(item)

    def delete_trans(self, mission_id: str) -> None:
        with self._lock:
            self.trans.pop(mission_id, None)

    def _items(self, mission_id: str, low: str, high: str) -> list[dict[str, Any]]:
        """Items with ``low <= sortKey <= high``, in sort-key order (as a Query returns)."""
        with self._lock:
            table = self.trans.get(mission_id, {})
            return [copy.deepcopy(table[k]) for k in sorted(table) if low <= k <= high]

    def _prefixed(self, mission_id: str, prefix: str) -> list[dict[str, Any]]:
        return self._items(mission_id, prefix, prefix + "\uffff")

    def get_unit(self, mission_id: str, unit_id: str) -> UnitRecord:
        with self._lock:
            item = self.trans.get(mission_id, {}).get(UNIT_PREFIX + unit_id)
            if item is None:
                raise MissionNotFound(f"mission {mission_id!r} has no unit {unit_id!r}")
            return UnitRecord.from_item(copy.deepcopy(item))

    def get_shard(self, mission_id: str, shard_id: str) -> ShardRecord | None:
        with self._lock:
            item = self.trans.get(mission_id, {}).get(SHARD_PREFIX + shard_id)
            return None if item is None else ShardRecord.from_item(copy.deepcopy(item))

    def list_units(self, mission_id: str) -> list[UnitRecord]:
        return [UnitRecord.from_item(i) for i in self._prefixed(mission_id, UNIT_PREFIX)]

    def list_shards(self, mission_id: str) -> list[ShardRecord]:
        return [ShardRecord.from_item(i) for i in self._prefixed(mission_id, SHARD_PREFIX)]

    def unit_shards(self, unit: UnitRecord) -> list[ShardRecord]:
        low = SHARD_PREFIX + shard_id(unit.shard_from)
        high = SHARD_PREFIX + shard_id(unit.shard_to)
        return [ShardRecord.from_item(i) for i in self._items(unit.mission_id, low, high)]

    def unit_shards_not_done(self, unit: UnitRecord) -> list[ShardRecord]:
        return [s for s in self.unit_shards(unit) if s.status is not ShardStatus.DONE]

    # ---- attempts and shards --------------------------------------------------------------

    def begin_attempt(
        self, mission_id: str, unit_id: str, attempt: int, task_token: str, capacity: str
    ) -> UnitRecord:
        with self._lock:
            item = self.trans.get(mission_id, {}).get(UNIT_PREFIX + unit_id)
            if item is not None and item.get("attempt", 0) < attempt:
                item.update(
                    attempt=attempt,
                    taskToken=task_token,
                    status=UnitStatus.LAUNCHING.value,
                    capacity=capacity,
                    launchedAt=time.time(),
                    launches=item.get("launches", 0) + 1,
                )
                item.pop("instanceId", None)
            else:
                current = self.get_unit(mission_id, unit_id)
                if current.attempt != attempt or current.task_token != task_token:
                    raise AttemptSuperseded(
                        f"{mission_id}/{unit_id}: attempt {attempt} is not newer than the "
                        "current one"
                    )
        return self.get_unit(mission_id, unit_id)

    def set_unit(
        self, mission_id: str, unit_id: str, attempt: int, fields: Mapping[str, Any]
    ) -> bool:
        with self._lock:
            item = self.trans.get(mission_id, {}).get(UNIT_PREFIX + unit_id)
            if item is None or item.get("attempt") != attempt:
                return False
            item.update(copy.deepcopy({k: v for k, v in fields.items() if v is not None}))
        return True

    def note_interruption(self, mission_id: str, unit_id: str, attempt: int) -> None:
        with self._lock:  # ADD to a number set: creates what is missing
            table = self.trans.setdefault(mission_id, {})
            item = table.setdefault(
                UNIT_PREFIX + unit_id, {"missionId": mission_id, "shardId": UNIT_PREFIX + unit_id}
            )
            item["interruptedAttempts"] = sorted({*item.get("interruptedAttempts", []), attempt})

    def move_shard(
        self,
        mission_id: str,
        shard: str,
        target: ShardStatus,
        *,
        attempt: int,
        older_attempts: bool = False,
        fields: Mapping[str, Any] | None = None,
    ) -> bool:
        move = ShardMove(shard, target, fields)
        return not self.move_shards(
            mission_id, [move], attempt=attempt, older_attempts=older_attempts
        )

    def move_shards(
        self,
        mission_id: str,
        moves: Sequence[ShardMove],
        *,
        attempt: int,
        older_attempts: bool = False,
    ) -> list[str]:
        if len(moves) > MAX_BATCH_MOVES:
            raise ValueError(f"{len(moves)} moves: a transaction takes {MAX_BATCH_MOVES} at most")
        with self._lock:
            table = self.trans.get(mission_id, {})
            items = [table.get(SHARD_PREFIX + m.shard_id) for m in moves]
            refused = [
                m.shard_id
                for m, item in zip(moves, items, strict=True)
                if not _may_move(item, m.target, attempt, older_attempts)
            ]
            if refused:
                return refused
            for move, item in zip(moves, items, strict=True):
                assert item is not None  # checked by _may_move
                item.update(copy.deepcopy(dict(move.fields or {})))
                item["status"] = move.target.value
                if older_attempts:
                    item["attempt"] = attempt
        return []


def _may_move(
    item: dict[str, Any] | None, target: ShardStatus, attempt: int, older_attempts: bool
) -> bool:
    """The DynamoDB adapter's condition expression, in Python."""
    if item is None or item.get("status") not in sources_of(target):
        return False
    current = item.get("attempt")
    return current is not None and (current < attempt if older_attempts else current == attempt)


@dataclass
class _Object:
    versions: list[bytes]
    tagging: str | None = None


class MemoryObjectStore:
    """``workflow.ports.ObjectStore`` in a dict; every bucket versioned (ids "1", "2", …)."""

    def __init__(self) -> None:
        self.objects: dict[tuple[str, str], _Object] = {}
        self._lock = threading.Lock()

    def _body(self, bucket: str, key: str, version_id: str | None = None) -> bytes:
        with self._lock:
            obj = self.objects.get((bucket, key))
        if obj is None:
            raise ObjectUnavailable(f"s3://{bucket}/{key} cannot be read (NoSuchKey)", "NoSuchKey")
        if version_id is None:
            return obj.versions[-1]
        if not version_id.isdigit() or not 1 <= int(version_id) <= len(obj.versions):
            raise ObjectUnavailable(f"s3://{bucket}/{key} has no version {version_id}", "404")
        return obj.versions[int(version_id) - 1]

    def put_bytes(
        self, bucket: str, key: str, body: bytes, *, content_type: str | None = None
    ) -> None:
        with self._lock:
            self.objects.setdefault((bucket, key), _Object([])).versions.append(bytes(body))

    def head(self, bucket: str, key: str, *, version_id: str | None = None) -> ObjectHead:
        body = self._body(bucket, key, version_id)
        with self._lock:
            versions = self.objects[(bucket, key)].versions
        version = version_id or str(len(versions))
        return ObjectHead(len(body), hashlib.md5(body).hexdigest(), version)

    def download(self, bucket: str, key: str, dest: Path, *, version_id: str | None = None) -> None:
        dest.write_bytes(self._body(bucket, key, version_id))

    def fetch(self, bucket: str, key: str, dest: Path) -> None:
        dest.write_bytes(self._body(bucket, key))

    def get_bytes(self, bucket: str, key: str) -> bytes:
        return self._body(bucket, key)

    def upload(self, source: Path, bucket: str, key: str, *, tagging: str | None = None) -> None:
        self.put_bytes(bucket, key, source.read_bytes())
        with self._lock:
            self.objects[(bucket, key)].tagging = tagging


@dataclass
class FakeCompute:
    """``workflow.ports.ComputeLauncher``: instant nodes ``i-000001``…; ``capacity_errors``
    launches fail with ``Node.Capacity`` first, as EC2 does when Spot capacity is short."""

    capacity_errors: int = 0
    launched: list[LaunchRequest] = field(default_factory=list)
    nodes: dict[str, NodeRef] = field(default_factory=dict)
    terminated: list[str] = field(default_factory=list)

    def launch(self, request: LaunchRequest) -> Launched:
        if self.capacity_errors > 0:
            self.capacity_errors -= 1
            raise NodeCapacity("EC2 could not launch a node now: InsufficientInstanceCapacity")
        self.launched.append(request)
        instance_id = f"i-{len(self.launched):06d}"
        self.nodes[instance_id] = NodeRef(
            instance_id, request.mission_id, request.unit_id, request.attempt
        )
        return Launched(instance_id, request.instance_types[0], request.capacity)

    def terminate(self, instance_ids: Sequence[str]) -> None:
        self.terminated.extend(i for i in instance_ids if i not in self.terminated)

    def mission_instances(self, mission_id: str) -> list[str]:
        return [
            i
            for i, n in self.nodes.items()
            if n.mission_id == mission_id and i not in self.terminated
        ]

    def node_ref(self, instance_id: str) -> NodeRef | None:
        return self.nodes.get(instance_id)


@dataclass
class RecordingTaskReporter:
    """``workflow.ports.TaskReporter`` as Step Functions answers: a token takes one report;
    after it (or once ``expire`` was called) every call on it answers False."""

    successes: dict[str, Mapping[str, Any]] = field(default_factory=dict)
    failures: dict[str, tuple[str, str]] = field(default_factory=dict)
    beats: list[str] = field(default_factory=list)
    expired: set[str] = field(default_factory=set)

    def _live(self, token: str) -> bool:
        reported = token in self.successes or token in self.failures
        return not reported and token not in self.expired

    def expire(self, token: str) -> None:
        self.expired.add(token)

    def heartbeat(self, token: str) -> bool:
        self.beats.append(token)
        return self._live(token)

    def report_success(self, token: str, output: Mapping[str, Any]) -> bool:
        if not self._live(token):
            return False
        self.successes[token] = dict(output)
        return True

    def report_failure(self, token: str, error: str, cause: str) -> bool:
        if not self._live(token):
            return False
        self.failures[token] = (error, cause)
        return True


@dataclass(frozen=True)
class FakeCloud:
    """The four fakes and the ``Ports`` bundle a use case takes."""

    settings: Settings = field(default_factory=Settings)
    store: MemoryMissionStore = field(default_factory=MemoryMissionStore)
    objects: MemoryObjectStore = field(default_factory=MemoryObjectStore)
    compute: FakeCompute = field(default_factory=FakeCompute)
    tokens: RecordingTaskReporter = field(default_factory=RecordingTaskReporter)

    @property
    def ports(self) -> Ports:
        return Ports(self.settings, self.store, self.objects, self.compute, self.tokens)


def mission_record(mission_id: str, **changes: Any) -> MissionRecord:
    """A RUNNING mission record as PlanMission would write it, with ``changes`` applied."""
    fields: dict[str, Any] = {
        "mission_id": mission_id,
        "status": MissionStatus.RUNNING,
        "sample": SampleRef("lighthpc-source", f"incoming/{mission_id}.txt", "e1", "1", 6),
        "params": {"workload": "noop", "shards": 3, "maxNodes": 1},
        "execution_arn": f"arn:aws:states:us-east-1:123456789012:execution:sm:{mission_id}",
        "source": "manual",
        "shards": 3,
        "units": 1,
        "created_at": 1_700_000_000.5,
        **changes,
    }
    return MissionRecord(**fields)
