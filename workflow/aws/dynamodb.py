"""Mission state in DynamoDB: ``tblMission`` (missions, MissionCfg profiles) and ``tblTrans``.

``tblTrans`` holds one item per shard (SK ``shard#<id>``) and one per work unit (SK
``unit#<id>``). Every status change is a conditional write on (status, attempt). No shard
write touches the mission item: shard counts are read from ``tblTrans`` (``workflow.progress``)
and written once by RsltProc, so a shard is counted once however often it is reported and no
node writes a shared hot item. Only ``ConditionalCheckFailed`` means "refused"; a transaction
conflict or a throttle is retried here with jittered backoff. ``DynamoMissionStore`` implements
``workflow.ports.MissionStore``: items become records here, and a refused condition becomes
the answer (or the named error) the port promises.
"""

from __future__ import annotations

import random
import re
import time
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from typing import Any, Final

from boto3.dynamodb.types import TypeDeserializer, TypeSerializer
from botocore.exceptions import ClientError

from workflow.errors import AttemptSuperseded, MissionNotFound
from workflow.planner import WorkUnit, shard_id
from workflow.ports import MAX_BATCH_MOVES, ShardMove
from workflow.records import (
    EXECUTION_INDEX,
    MISSION_KIND,
    MISSIONS_INDEX,
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
from workflow.states import ShardStatus, UnitStatus, sources_of

_BATCH = 25
# BatchWriteItem calls of a plan in flight at once (the client's pool has 16 connections).
PLAN_WRITERS = 4
# Conflicts and throttles are transient: ~8 tries with full jitter from 50 ms, capped at 2 s,
# wait out ~5 s of contention at worst before the error goes up to the caller.
WRITE_ATTEMPTS = 8
_BACKOFF_BASE, _BACKOFF_CAP = 0.05, 2.0
_TRANSIENT = frozenset(
    {
        "TransactionConflictException",
        "ProvisionedThroughputExceededException",
        "ThrottlingException",
        "RequestLimitExceeded",
    }
)
_REFUSED = "ConditionalCheckFailed"  # a CancellationReasons code: this item's condition said no
_TRANSIENT_REASONS = frozenset(
    {"TransactionConflict", "ProvisionedThroughputExceeded", "ThrottlingError"}
)

_WHOLE: Final = re.compile(r"-?[0-9]+", re.ASCII)
_ser = TypeSerializer()
_de = TypeDeserializer()


def _to_ddb(item: Mapping[str, Any]) -> dict[str, Any]:
    return {k: _ser.serialize(_decimalize(v)) for k, v in item.items() if v is not None}


def _from_ddb(item: Mapping[str, Any]) -> dict[str, Any]:
    return {k: _from_value(v) for k, v in item.items()}


def _from_value(value: Mapping[str, Any]) -> Any:
    """One AttributeValue as plain Python: strings and whole numbers directly, the rest
    through boto3's deserializer. Listing 1,000 shards spent a quarter of its time making
    a ``Decimal`` of each number only to turn it back into an ``int``."""
    if len(value) == 1:
        kind, raw = next(iter(value.items()))
        if kind == "S":
            return raw
        if kind == "N" and _WHOLE.fullmatch(raw):
            return int(raw)
    return _plain(_de.deserialize(value))


def _decimalize(value: Any) -> Any:
    if isinstance(value, float):
        return Decimal(str(value))
    if isinstance(value, Mapping):
        return {k: _decimalize(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_decimalize(v) for v in value]
    return value


def _plain(value: Any) -> Any:
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, set):
        return sorted(_plain(v) for v in value)
    return value


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def _reasons(exc: ClientError) -> list[str]:
    return [str(r.get("Code", "None")) for r in exc.response.get("CancellationReasons", [])]


def _conditional_failed(exc: ClientError) -> bool:
    """The write's condition refused it: the only answer that means "no" (superseded)."""
    code = _code(exc)
    if code == "TransactionCanceledException":
        return _REFUSED in _reasons(exc)
    return code == "ConditionalCheckFailedException"


def is_contention(exc: ClientError) -> bool:
    """Contention, not an answer: another transaction held the item, or capacity ran out."""
    code = _code(exc)
    if code == "TransactionCanceledException":
        reasons = _reasons(exc)
        return "ConditionalCheckFailed" not in reasons and bool(_TRANSIENT_REASONS & set(reasons))
    return code in _TRANSIENT


def write_with_retry(call: Any, **kwargs: Any) -> Any:
    """``call(**kwargs)``, retried on transient refusals (after botocore's own retries) with
    full-jitter backoff, ``WRITE_ATTEMPTS`` tries at most; anything else goes up at once."""
    for attempt in range(WRITE_ATTEMPTS):
        try:
            return call(**kwargs)
        except ClientError as exc:
            if not is_contention(exc) or attempt == WRITE_ATTEMPTS - 1:
                raise
            time.sleep(random.uniform(0, min(_BACKOFF_CAP, _BACKOFF_BASE * 2**attempt)))
    raise AssertionError("unreachable")  # pragma: no cover


class DynamoMissionStore:
    """``workflow.ports.MissionStore`` on two DynamoDB tables, through a low-level client."""

    def __init__(self, client: Any, mission_table: str, trans_table: str) -> None:
        self._ddb = client
        self.mission_table = mission_table
        self.trans_table = trans_table

    # ---- missions -------------------------------------------------------------------------

    def create_mission(self, record: MissionRecord) -> MissionRecord | None:
        """Put the mission once. Returns None when created, else the existing record."""
        try:
            write_with_retry(
                self._ddb.put_item,
                TableName=self.mission_table,
                Item=_to_ddb(record.to_item()),
                ConditionExpression="attribute_not_exists(missionId)",
            )
        except ClientError as exc:
            if not _conditional_failed(exc):
                raise
            return self.get_mission(record.mission_id)
        return None

    def delete_mission(self, mission_id: str) -> None:
        write_with_retry(
            self._ddb.delete_item,
            TableName=self.mission_table,
            Key=_to_ddb({"missionId": mission_id}),
        )

    def get_mission(self, mission_id: str) -> MissionRecord:
        resp = self._ddb.get_item(
            TableName=self.mission_table,
            Key=_to_ddb({"missionId": mission_id}),
            ConsistentRead=True,
        )
        if "Item" not in resp:
            raise MissionNotFound(f"no mission {mission_id!r}")
        return MissionRecord.from_item(_from_ddb(resp["Item"]))

    def update_mission(self, mission_id: str, fields: Mapping[str, Any]) -> None:
        fields = {k: v for k, v in fields.items() if v is not None}
        names = {f"#f{i}": k for i, k in enumerate(fields)}
        values = {f":v{i}": v for i, v in enumerate(fields.values())}
        sets = ", ".join(f"#f{i} = :v{i}" for i in range(len(fields)))
        try:
            write_with_retry(
                self._ddb.update_item,
                TableName=self.mission_table,
                Key=_to_ddb({"missionId": mission_id}),
                UpdateExpression=f"SET {sets}",
                ConditionExpression="attribute_exists(missionId)",
                ExpressionAttributeNames=names,
                ExpressionAttributeValues=_to_ddb(values),
            )
        except ClientError as exc:
            if _conditional_failed(exc):
                raise MissionNotFound(f"no mission {mission_id!r}") from exc
            raise

    def mission_for_execution(self, execution_arn: str) -> str | None:
        resp = self._ddb.query(
            TableName=self.mission_table,
            IndexName=EXECUTION_INDEX,
            KeyConditionExpression="executionArn = :e",
            ExpressionAttributeValues=_to_ddb({":e": execution_arn}),
        )
        items = resp.get("Items", [])
        return str(_from_ddb(items[0])["missionId"]) if items else None

    def bill_instance(
        self, mission_id: str, instance_id: str, instance_type: str, capacity: str, seconds: float
    ) -> None:
        """SET a node's billed seconds at ``instanceSeconds["<type>|<capacity>|<instance>"]``
        (a map created with the mission), so the cost model prices what really ran. Its own
        key, not an ADD: botocore's retry of a write the server applied cannot count twice."""
        try:
            write_with_retry(
                self._ddb.update_item,
                TableName=self.mission_table,
                Key=_to_ddb({"missionId": mission_id}),
                UpdateExpression="SET #m.#k = :s",
                ConditionExpression="attribute_exists(#m)",
                ExpressionAttributeNames={
                    "#m": "instanceSeconds",
                    "#k": billing_key(instance_type, capacity, instance_id),
                },
                ExpressionAttributeValues=_to_ddb({":s": round(seconds, 3)}),
            )
        except ClientError as exc:
            if _conditional_failed(exc):
                raise MissionNotFound(f"no mission {mission_id!r} to bill") from exc
            raise

    def list_missions(self, limit: int) -> list[MissionRecord]:
        """One Query of the sparse ``byCreated`` index, newest first (profiles are not in it)."""
        resp = self._ddb.query(
            TableName=self.mission_table,
            IndexName=MISSIONS_INDEX,
            KeyConditionExpression="#k = :k",
            ExpressionAttributeNames={"#k": "kind"},
            ExpressionAttributeValues=_to_ddb({":k": MISSION_KIND}),
            ScanIndexForward=False,
            Limit=limit,
        )
        return [MissionRecord.from_item(_from_ddb(raw)) for raw in resp.get("Items", [])]

    def scan_missions(self) -> Iterator[MissionRecord]:
        """Every mission record (not profiles); for the CLI's listings."""
        paginator = self._ddb.get_paginator("scan")
        for page in paginator.paginate(TableName=self.mission_table):
            for raw in page.get("Items", []):
                item = _from_ddb(raw)
                if not str(item["missionId"]).startswith(PROFILE_PREFIX):
                    yield MissionRecord.from_item(item)

    # ---- profiles (MissionCfg) --------------------------------------------------------------

    def get_profile(self, name: str) -> ProfileRecord | None:
        resp = self._ddb.get_item(
            TableName=self.mission_table,
            Key=_to_ddb({"missionId": PROFILE_PREFIX + name}),
            ConsistentRead=True,
        )
        return ProfileRecord.from_item(_from_ddb(resp["Item"])) if "Item" in resp else None

    def put_profile(self, name: str, params: Mapping[str, Any], updated_at: float) -> None:
        item = ProfileRecord(name, dict(params), updated_at).to_item()
        write_with_retry(self._ddb.put_item, TableName=self.mission_table, Item=_to_ddb(item))

    def delete_profile(self, name: str) -> bool:
        resp = write_with_retry(
            self._ddb.delete_item,
            TableName=self.mission_table,
            Key=_to_ddb({"missionId": PROFILE_PREFIX + name}),
            ReturnValues="ALL_OLD",
        )
        return "Attributes" in resp

    def list_profiles(self) -> list[ProfileRecord]:
        paginator = self._ddb.get_paginator("scan")
        out: list[ProfileRecord] = []
        for page in paginator.paginate(
            TableName=self.mission_table,
            FilterExpression="begins_with(missionId, :p)",
            ExpressionAttributeValues=_to_ddb({":p": PROFILE_PREFIX}),
        ):
            out.extend(ProfileRecord.from_item(_from_ddb(i)) for i in page.get("Items", []))
        return sorted(out, key=lambda p: p.name)

    # ---- plan -----------------------------------------------------------------------------

    def put_plan(
        self, mission_id: str, units: Sequence[WorkUnit], expires_at: int | None = None
    ) -> None:
        """Batch-write every shard and unit item (idempotent: same plan, same items).

        ``expires_at`` (epoch seconds) is the TTL: finished missions clean themselves up."""
        items = plan_items(mission_id, units, expires_at)
        self._batch_put(items)

    def _batch_put(self, items: list[dict[str, Any]]) -> None:
        """``PLAN_WRITERS`` batches in flight: one at a time, a 10,000-shard plan waits on 400
        round trips in a row (~10 ms each on AWS, more in the local cloud)."""
        batches = [items[i : i + _BATCH] for i in range(0, len(items), _BATCH)]
        if len(batches) <= 1:
            for batch in batches:
                self._put_batch(batch)
            return
        with ThreadPoolExecutor(PLAN_WRITERS, thread_name_prefix="plan-write") as pool:
            for done in [pool.submit(self._put_batch, batch) for batch in batches]:
                done.result()  # the first error, once every batch has ended

    def _put_batch(self, batch: list[dict[str, Any]]) -> None:
        pending: dict[str, Any] = {
            self.trans_table: [{"PutRequest": {"Item": _to_ddb(it)}} for it in batch]
        }
        delay = 0.05
        while pending:
            resp = write_with_retry(self._ddb.batch_write_item, RequestItems=pending)
            pending = resp.get("UnprocessedItems") or {}
            if pending:
                time.sleep(delay)
                delay = min(delay * 2, 2.0)

    def delete_trans(self, mission_id: str) -> None:
        """Remove every ``tblTrans`` item of a mission (rollback of a half-written plan)."""
        keys = [{"missionId": mission_id, "shardId": sk} for sk in self._sort_keys(mission_id)]
        for i in range(0, len(keys), _BATCH):
            write_with_retry(
                self._ddb.batch_write_item,
                RequestItems={
                    self.trans_table: [
                        {"DeleteRequest": {"Key": _to_ddb(k)}} for k in keys[i : i + _BATCH]
                    ]
                },
            )

    # ---- reads ----------------------------------------------------------------------------

    def _query(self, mission_id: str, prefix: str) -> Iterator[dict[str, Any]]:
        paginator = self._ddb.get_paginator("query")
        for page in paginator.paginate(
            TableName=self.trans_table,
            KeyConditionExpression="missionId = :m AND begins_with(shardId, :p)",
            ExpressionAttributeValues=_to_ddb({":m": mission_id, ":p": prefix}),
            ConsistentRead=True,
        ):
            for raw in page.get("Items", []):
                yield _from_ddb(raw)

    def _sort_keys(self, mission_id: str) -> list[str]:
        # One query per prefix: DynamoDB refuses begins_with on an empty key value.
        prefixes = (UNIT_PREFIX, SHARD_PREFIX)
        return [str(i["shardId"]) for p in prefixes for i in self._query(mission_id, p)]

    def get_unit(self, mission_id: str, unit_id: str) -> UnitRecord:
        resp = self._ddb.get_item(
            TableName=self.trans_table,
            Key=_to_ddb({"missionId": mission_id, "shardId": UNIT_PREFIX + unit_id}),
            ConsistentRead=True,
        )
        if "Item" not in resp:
            raise MissionNotFound(f"mission {mission_id!r} has no unit {unit_id!r}")
        return UnitRecord.from_item(_from_ddb(resp["Item"]))

    def get_shard(self, mission_id: str, shard_id: str) -> ShardRecord | None:
        resp = self._ddb.get_item(
            TableName=self.trans_table,
            Key=_to_ddb({"missionId": mission_id, "shardId": SHARD_PREFIX + shard_id}),
            ConsistentRead=True,
        )
        return ShardRecord.from_item(_from_ddb(resp["Item"])) if "Item" in resp else None

    def list_units(self, mission_id: str) -> list[UnitRecord]:
        return [UnitRecord.from_item(i) for i in self._query(mission_id, UNIT_PREFIX)]

    def list_shards(self, mission_id: str) -> list[ShardRecord]:
        return [ShardRecord.from_item(i) for i in self._query(mission_id, SHARD_PREFIX)]

    def unit_shards(self, unit: UnitRecord) -> list[ShardRecord]:
        return self._unit_query(unit)

    def unit_shards_not_done(self, unit: UnitRecord) -> list[ShardRecord]:
        """Filtered on the server: the DONE items (nearly all, at the end) are neither sent
        nor parsed; parsing 500 finished shards took the node ~0.4 s at its finish line."""
        return self._unit_query(
            unit,
            FilterExpression="#st <> :done",
            ExpressionAttributeNames={"#st": "status"},
            extra_values={":done": ShardStatus.DONE.value},
        )

    def _unit_query(
        self, unit: UnitRecord, *, extra_values: Mapping[str, Any] | None = None, **filters: Any
    ) -> list[ShardRecord]:
        paginator = self._ddb.get_paginator("query")
        values = {
            ":m": unit.mission_id,
            ":a": SHARD_PREFIX + shard_id(unit.shard_from),
            ":b": SHARD_PREFIX + shard_id(unit.shard_to),
            **(extra_values or {}),
        }
        out: list[ShardRecord] = []
        for page in paginator.paginate(
            TableName=self.trans_table,
            KeyConditionExpression="missionId = :m AND shardId BETWEEN :a AND :b",
            ExpressionAttributeValues=_to_ddb(values),
            ConsistentRead=True,
            **filters,
        ):
            out.extend(ShardRecord.from_item(_from_ddb(i)) for i in page.get("Items", []))
        return out

    # ---- attempts -------------------------------------------------------------------------

    def begin_attempt(
        self, mission_id: str, unit_id: str, attempt: int, task_token: str, capacity: str
    ) -> UnitRecord:
        """Make ``attempt`` the unit's current one (``UnitAttempt.begin`` then queues its
        shards). Refused (``AttemptSuperseded``) when the unit already has a later attempt,
        or this one with another token."""
        try:
            write_with_retry(
                self._ddb.update_item,
                TableName=self.trans_table,
                Key=_to_ddb({"missionId": mission_id, "shardId": UNIT_PREFIX + unit_id}),
                UpdateExpression=(
                    "SET #a = :n, #t = :t, #s = :launching, #c = :c, #l = :now "
                    "REMOVE #i ADD #k :one"
                ),
                ConditionExpression="attribute_exists(shardId) AND #a < :n",
                ExpressionAttributeNames={
                    "#a": "attempt",
                    "#t": "taskToken",
                    "#s": "status",
                    "#c": "capacity",
                    "#l": "launchedAt",
                    "#i": "instanceId",
                    "#k": "launches",
                },
                ExpressionAttributeValues=_to_ddb(
                    {
                        ":n": attempt,
                        ":t": task_token,
                        ":launching": UnitStatus.LAUNCHING.value,
                        ":c": capacity,
                        ":now": time.time(),
                        ":one": 1,
                    }
                ),
            )
        except ClientError as exc:
            if not _conditional_failed(exc):
                raise
            current = self.get_unit(mission_id, unit_id)
            # A client retry of a write the server already applied lands here too: same attempt
            # and same token means it was this call, so carry on (idempotent, not superseded).
            if current.attempt != attempt or current.task_token != task_token:
                raise AttemptSuperseded(
                    f"{mission_id}/{unit_id}: attempt {attempt} is not newer than the current one"
                ) from exc
        return self.get_unit(mission_id, unit_id)

    def set_unit(
        self, mission_id: str, unit_id: str, attempt: int, fields: Mapping[str, Any]
    ) -> bool:
        """Set fields on the unit only while ``attempt`` is still its current attempt."""
        fields = {k: v for k, v in fields.items() if v is not None}
        names = {f"#f{i}": k for i, k in enumerate(fields)}
        values: dict[str, Any] = {f":v{i}": v for i, v in enumerate(fields.values())}
        values[":n"] = attempt
        sets = ", ".join(f"#f{i} = :v{i}" for i in range(len(fields)))
        try:
            write_with_retry(
                self._ddb.update_item,
                TableName=self.trans_table,
                Key=_to_ddb({"missionId": mission_id, "shardId": UNIT_PREFIX + unit_id}),
                UpdateExpression=f"SET {sets}",
                ConditionExpression="#attempt = :n",
                ExpressionAttributeNames={**names, "#attempt": "attempt"},
                ExpressionAttributeValues=_to_ddb(values),
            )
        except ClientError as exc:
            if _conditional_failed(exc):
                return False
            raise
        return True

    def note_interruption(self, mission_id: str, unit_id: str, attempt: int) -> None:
        """Record that ``attempt`` was interrupted (a set: node and watcher may both say so)."""
        write_with_retry(
            self._ddb.update_item,
            TableName=self.trans_table,
            Key=_to_ddb({"missionId": mission_id, "shardId": UNIT_PREFIX + unit_id}),
            UpdateExpression="ADD #ia :a",
            ExpressionAttributeNames={"#ia": "interruptedAttempts"},
            ExpressionAttributeValues={":a": {"NS": [str(attempt)]}},
        )

    # ---- shards ---------------------------------------------------------------------------

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
        """Conditionally move one shard to ``target``; False when the condition refuses it.

        The condition: the current status is a legal source of ``target`` and the item's
        attempt equals ``attempt`` (or, with ``older_attempts``, is older: used by a new launch).
        The mission item is not written: a commit touches its own shard item only.
        """
        update = self._shard_update(
            mission_id, ShardMove(shard, target, fields), attempt, older_attempts
        )
        try:
            write_with_retry(self._ddb.update_item, **update)
        except ClientError as exc:
            if _conditional_failed(exc):
                return False
            raise
        return True

    def move_shards(
        self,
        mission_id: str,
        moves: Sequence[ShardMove],
        *,
        attempt: int,
        older_attempts: bool = False,
    ) -> list[str]:
        """One ``TransactWriteItems`` of ``move_shard`` updates: all or none. The refused ids
        come from ``CancellationReasons`` (one per item, in order), so a caller can drop
        them and retry the rest; a conflict or a throttle is retried here, never refused."""
        if len(moves) > MAX_BATCH_MOVES:
            raise ValueError(f"{len(moves)} moves: a transaction takes {MAX_BATCH_MOVES} at most")
        if len(moves) <= 1:  # a transaction costs twice the write units of an UpdateItem
            return [
                m.shard_id
                for m in moves
                if not self.move_shard(
                    mission_id,
                    m.shard_id,
                    m.target,
                    attempt=attempt,
                    older_attempts=older_attempts,
                    fields=m.fields,
                )
            ]
        items = [
            {"Update": self._shard_update(mission_id, m, attempt, older_attempts)} for m in moves
        ]
        try:
            write_with_retry(self._ddb.transact_write_items, TransactItems=items)
        except ClientError as exc:
            if not _conditional_failed(exc):
                raise
            reasons = _reasons(exc)
            return [m.shard_id for m, r in zip(moves, reasons, strict=False) if r == _REFUSED]
        return []

    def _shard_update(
        self, mission_id: str, move: ShardMove, attempt: int, older_attempts: bool
    ) -> dict[str, Any]:
        extra = dict(move.fields or {})
        extra["status"] = move.target.value
        if older_attempts:
            extra["attempt"] = attempt
        names = {f"#f{i}": k for i, k in enumerate(extra)}
        values: dict[str, Any] = {f":v{i}": v for i, v in enumerate(extra.values())}
        sources = sources_of(move.target)
        values.update({f":s{i}": s for i, s in enumerate(sources)})
        values[":n"] = attempt
        names["#st"] = "status"
        names["#at"] = "attempt"
        cond_attempt = "#at < :n" if older_attempts else "#at = :n"
        src = ", ".join(f":s{i}" for i in range(len(sources)))
        return {
            "TableName": self.trans_table,
            "Key": _to_ddb({"missionId": mission_id, "shardId": SHARD_PREFIX + move.shard_id}),
            "UpdateExpression": "SET " + ", ".join(f"#f{i} = :v{i}" for i in range(len(extra))),
            "ConditionExpression": f"#st IN ({src}) AND {cond_attempt}",
            "ExpressionAttributeNames": names,
            "ExpressionAttributeValues": _to_ddb(values),
        }
