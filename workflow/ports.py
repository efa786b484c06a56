"""The ports the use cases depend on, and the values that cross them.

PlanMission, LaunchNode, RsltProc, node_watch and MissionCfg see the cloud only through these
four protocols; ``workflow.aws`` implements them on DynamoDB, S3, EC2 and Step Functions, and
``tests/fakes.py`` in memory. Adapters turn SDK errors into the named errors of
``workflow.errors``, so no use case catches a boto3 exception.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from workflow.planner import WorkUnit
from workflow.records import MissionRecord, ProfileRecord, ShardRecord, UnitRecord
from workflow.settings import Settings
from workflow.states import Capacity, ShardStatus

MAX_BATCH_MOVES = 100  # DynamoDB TransactWriteItems: at most 100 items per transaction


@dataclass(frozen=True)
class ShardMove:
    """One shard's conditional move within ``MissionStore.move_shards``."""

    shard_id: str
    target: ShardStatus
    fields: Mapping[str, Any] | None = None


class MissionStore(Protocol):
    """Mission state: every status change conditional, every write idempotent.

    Refusals the workflow expects are answers, not errors: ``move_shard``/``set_unit`` return
    False, ``begin_attempt`` raises ``AttemptSuperseded``, reads of what is absent raise
    ``MissionNotFound`` (``get_shard``/``get_profile``/``mission_for_execution``: None).
    """

    # ---- missions (tblMission) -----------------------------------------------------------
    def create_mission(self, record: MissionRecord) -> MissionRecord | None:
        """Put the mission once: None when created, else the record that already exists."""
        ...

    def get_mission(self, mission_id: str) -> MissionRecord: ...
    def delete_mission(self, mission_id: str) -> None: ...
    def update_mission(self, mission_id: str, fields: Mapping[str, Any]) -> None:
        """SET item attributes (wire names; None values skipped) on an existing mission."""
        ...

    def bill_instance(
        self, mission_id: str, instance_id: str, instance_type: str, capacity: str, seconds: float
    ) -> None:
        """Set one node's billed seconds (its own key: an SDK retry writes the same value)."""
        ...

    def mission_for_execution(self, execution_arn: str) -> str | None: ...
    def list_missions(self, limit: int) -> list[MissionRecord]:
        """The ``limit`` newest missions, newest first (never a profile)."""
        ...

    # ---- MissionCfg profiles -------------------------------------------------------------
    def get_profile(self, name: str) -> ProfileRecord | None: ...
    def put_profile(self, name: str, params: Mapping[str, Any], updated_at: float) -> None: ...
    def delete_profile(self, name: str) -> bool: ...
    def list_profiles(self) -> list[ProfileRecord]: ...

    # ---- the plan (tblTrans) -------------------------------------------------------------
    def put_plan(
        self, mission_id: str, units: Sequence[WorkUnit], expires_at: int | None = None
    ) -> None: ...
    def delete_trans(self, mission_id: str) -> None: ...
    def get_unit(self, mission_id: str, unit_id: str) -> UnitRecord: ...
    def get_shard(self, mission_id: str, shard_id: str) -> ShardRecord | None: ...
    def list_units(self, mission_id: str) -> list[UnitRecord]: ...
    def list_shards(self, mission_id: str) -> list[ShardRecord]: ...

    def unit_shards(self, unit: UnitRecord) -> list[ShardRecord]: ...
    def unit_shards_not_done(self, unit: UnitRecord) -> list[ShardRecord]:
        """The unit's shards that are not DONE (open or FAILED): what settling a unit reads.
        After a clean run none come back, so the check reads no DONE shard."""
        ...

    # ---- attempts and shards -------------------------------------------------------------
    def begin_attempt(
        self, mission_id: str, unit_id: str, attempt: int, task_token: str, capacity: str
    ) -> UnitRecord:
        """The unit's attempt := ``attempt`` with its token (``UnitAttempt.begin`` does the
        rest); ``Attempt.Superseded`` if a later one, or this one with another token, holds it."""
        ...

    def set_unit(
        self, mission_id: str, unit_id: str, attempt: int, fields: Mapping[str, Any]
    ) -> bool: ...
    def note_interruption(self, mission_id: str, unit_id: str, attempt: int) -> None: ...
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
        """False only when the condition refused it; contention is retried, never False.
        It writes the shard item alone: counts come from ``tblTrans`` (``progress_of``)."""
        ...

    def move_shards(
        self,
        mission_id: str,
        moves: Sequence[ShardMove],
        *,
        attempt: int,
        older_attempts: bool = False,
    ) -> list[str]:
        """``move_shard`` for up to ``MAX_BATCH_MOVES`` shards in one transaction, each under
        its own condition: all applied (returns ``[]``) or none (returns the refused ids)."""
        ...


@dataclass(frozen=True)
class ObjectHead:
    size: int
    etag: str  # without the quotes S3 puts around it
    version_id: str | None


class ObjectStore(Protocol):
    """Objects in buckets. A missing or unreadable object raises ``ObjectUnavailable``."""

    def head(self, bucket: str, key: str, *, version_id: str | None = None) -> ObjectHead: ...
    def download(self, bucket: str, key: str, dest: Path, *, version_id: str | None = None) -> None:
        """Managed transfer to ``dest`` (ranged GETs in parallel for a large object)."""
        ...

    def fetch(self, bucket: str, key: str, dest: Path) -> None:
        """One GET streamed to ``dest``: for many small objects, where ``download``'s HEAD
        first would double the requests."""
        ...

    def get_bytes(self, bucket: str, key: str) -> bytes: ...
    def upload(self, source: Path, bucket: str, key: str, *, tagging: str | None = None) -> None:
        """``tagging`` is the URL-encoded tag set (``workflow.keys.kind_tagging``)."""
        ...

    def put_bytes(
        self, bucket: str, key: str, body: bytes, *, content_type: str | None = None
    ) -> None: ...


@dataclass(frozen=True)
class LaunchRequest:
    mission_id: str
    unit_id: str
    attempt: int
    capacity: Capacity
    instance_types: Sequence[str]
    launch_template: str
    subnet_ids: Sequence[str] = ()


@dataclass(frozen=True)
class Launched:
    instance_id: str
    instance_type: str | None
    capacity: Capacity


@dataclass(frozen=True)
class NodeRef:
    """Which unit attempt a node runs (from its tags)."""

    instance_id: str
    mission_id: str
    unit_id: str
    attempt: int


class ComputeLauncher(Protocol):
    """Nodes: one instance per unit attempt, tagged with its mission, unit and attempt."""

    def launch(self, request: LaunchRequest) -> Launched:
        """Exactly one node, or ``NodeCapacity`` (transient: Step Functions retries)."""
        ...

    def terminate(self, instance_ids: Sequence[str]) -> None:
        """Terminate the nodes; ``NodeTerminateFailed`` when EC2 refuses or fails."""
        ...

    def mission_instances(self, mission_id: str) -> list[str]:
        """The mission's nodes not yet terminated."""
        ...

    def node_ref(self, instance_id: str) -> NodeRef | None:
        """The unit attempt of ``instance_id``; None when it is not one of our nodes."""
        ...


class TaskReporter(Protocol):
    """Task-token reports. False: the token is no longer live (the attempt was superseded,
    timed out or aborted): stop work, do not report again."""

    def heartbeat(self, token: str) -> bool: ...
    def report_success(self, token: str, output: Mapping[str, Any]) -> bool: ...
    def report_failure(self, token: str, error: str, cause: str) -> bool: ...


@dataclass(frozen=True)
class Ports:
    """What a use case is given: settings and the four ports (``Services.ports`` in AWS)."""

    settings: Settings
    store: MissionStore
    objects: ObjectStore
    compute: ComputeLauncher
    tokens: TaskReporter
