"""The mission verbs' operations on a stack (deployed, or ``lighthpc local up``): list,
cancel, logs, rerun the failed shards, get the result.

Everything here returns data; ``cli.mission_verbs`` renders it. Each refusal is a named
error (the class name is what the user reads), never a traceback.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

import boto3
from botocore.exceptions import BotoCoreError, ClientError

from cli.remote import RemoteStack, StartedMission, aws_error, execution_name, manual_input
from workflow.aws.ec2 import TAG_MISSION, TAG_UNIT
from workflow.aws.services import Services
from workflow.errors import LightHpcError, MissionInvalidInput
from workflow.keys import require_mission_id
from workflow.params import MissionParams
from workflow.progress import progress_of
from workflow.records import MissionRecord
from workflow.rerun import RERUN_ID, rerun_of, unfinished_shards
from workflow.stack_outputs import LOG_GROUPS, NODE_LOG_DIR, NODE_LOG_GROUP
from workflow.states import FINISHED_MISSION, ExecutionStatus, MissionStatus

DEFAULT_LIST_LIMIT = 20
MAX_LIST_LIMIT = 1000  # one Query page of the index holds far more than a terminal shows
CANCEL_CAUSE = "cancelled with lighthpc cancel"
# AWS logs: at most this many events per call (a mission's lines; a terminal's worth).
MAX_LOG_EVENTS = 10_000
LAMBDA_LOG = "lambdas.log"


class MissionAlreadyFinished(LightHpcError):
    """``cancel`` of a mission whose execution already ended."""

    error_name = "Mission.AlreadyFinished"


class MissionNothingToRerun(LightHpcError):
    """``rerun --failed`` of a mission with no failed shard."""

    error_name = "Mission.NothingToRerun"


class MissionStillRunning(LightHpcError):
    """``rerun`` of a mission that has not finished yet."""

    error_name = "Mission.StillRunning"


class MissionAlreadyRerun(LightHpcError):
    """``rerun`` of a mission that already has a rerun: rerun that one instead."""

    error_name = "Mission.AlreadyRerun"


class MissionNoResult(LightHpcError):
    """``get`` of a mission that has no merged result (yet)."""

    error_name = "Mission.NoResult"


class LogsUnavailable(LightHpcError):
    """The stack names no log location the CLI can read."""

    error_name = "Logs.Unavailable"


def _mission(svc: Services, ref: str) -> MissionRecord:
    """``ref`` is a missionId; ``Mission.NotFound`` for anything else (a profile key too)."""
    try:
        return svc.store.get_mission(require_mission_id(ref))
    except (BotoCoreError, ClientError) as exc:
        raise aws_error(exc, f"reading mission {ref}") from exc


# ---- ls ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class MissionRow:
    mission_id: str
    status: str
    shards: int
    done: int
    failed: int
    cost: float | None
    created_at: float
    sample: str
    rerun_of: str | None

    def age_seconds(self, now: float) -> float:
        return max(0.0, now - self.created_at)

    def as_json(self, now: float) -> dict[str, Any]:
        return {
            "missionId": self.mission_id,
            "status": self.status,
            "shards": self.shards,
            "shardsDone": self.done,
            "shardsFailed": self.failed,
            "costUsd": self.cost,
            "createdAt": self.created_at,
            "ageSeconds": round(self.age_seconds(now), 1),
            "sample": self.sample,
            "rerunOf": self.rerun_of,
        }


def list_missions(svc: Services, limit: int = DEFAULT_LIST_LIMIT) -> list[MissionRow]:
    """The ``limit`` newest missions, newest first: one Query of the ``byCreated`` index.
    A finished mission's counts are the ones RsltProc (or the cancel) recorded; a running
    one's are read live from ``tblTrans`` (a mission's nodes never write the mission item)."""
    if not 1 <= limit <= MAX_LIST_LIMIT:
        raise MissionInvalidInput(f"--limit must be from 1 to {MAX_LIST_LIMIT}, got {limit}")
    try:
        missions = svc.store.list_missions(limit)
        rows = []
        for m in missions:
            done, failed = m.shards_done, m.shards_failed
            if m.status not in FINISHED_MISSION:
                live = progress_of(svc.store.list_shards(m.mission_id), [])
                done, failed = live.done, live.failed
            rows.append(
                MissionRow(
                    m.mission_id,
                    m.status.value,
                    m.shards,
                    done,
                    failed,
                    m.cost,
                    m.created_at,
                    m.sample.uri,
                    rerun_of(m),
                )
            )
    except (BotoCoreError, ClientError) as exc:
        raise aws_error(exc, "listing missions") from exc
    return rows


# ---- cancel -----------------------------------------------------------------------------


@dataclass(frozen=True)
class CancelOutcome:
    mission: MissionRecord
    execution_arn: str
    instances_left: tuple[str, ...]
    settled: bool

    def as_json(self) -> dict[str, Any]:
        return {
            "missionId": self.mission.mission_id,
            "status": self.mission.status.value,
            "execution": self.execution_arn,
            "shardsDone": self.mission.shards_done,
            "shardsFailed": self.mission.shards_failed,
            "instancesLeft": list(self.instances_left),
            "settled": self.settled,
        }


def cancel_mission(
    svc: Services, ref: str, *, timeout: float = 60.0, interval: float = 0.5
) -> CancelOutcome:
    """StopExecution; node_watch (the ended-execution rule) terminates the mission's nodes
    and marks it CANCELLED. Waits up to ``timeout`` for both, so the answer says what is
    true (``settled`` False: still settling when the wait ended)."""
    mission = _mission(svc, ref)
    arn = mission.execution_arn
    if mission.status in FINISHED_MISSION or not arn:
        raise MissionAlreadyFinished(f"mission {mission.mission_id} is {mission.status.value}")
    try:
        execution = svc.sfn.describe_execution(executionArn=arn)
        if execution["status"] != ExecutionStatus.RUNNING:
            raise MissionAlreadyFinished(
                f"mission {mission.mission_id}'s execution is {execution['status']}"
            )
        svc.sfn.stop_execution(executionArn=arn, error="Mission.Cancelled", cause=CANCEL_CAUSE)
        deadline = time.monotonic() + timeout
        while True:
            mission = svc.store.get_mission(mission.mission_id)
            left = tuple(svc.compute.mission_instances(mission.mission_id))
            settled = mission.status is MissionStatus.CANCELLED and not left
            if settled or time.monotonic() >= deadline:
                return CancelOutcome(mission, arn, left, settled)
            time.sleep(interval)
    except (BotoCoreError, ClientError) as exc:
        raise aws_error(exc, f"cancelling {mission.mission_id}") from exc


# ---- logs -------------------------------------------------------------------------------


@dataclass(frozen=True)
class LogLine:
    source: str  # an instance id, "lambdas" or a log group
    text: str

    def as_json(self) -> dict[str, Any]:
        return {"source": self.source, "line": self.text}


@dataclass
class MissionLogs:
    mission_id: str
    location: str
    lines: list[LogLine] = field(default_factory=list)
    nodes: list[str] = field(default_factory=list)
    truncated: bool = False

    def as_json(self) -> dict[str, Any]:
        return {
            "missionId": self.mission_id,
            "location": self.location,
            "nodes": self.nodes,
            "lines": [line.as_json() for line in self.lines],
            "truncated": self.truncated,
        }


def mission_logs(
    stack: RemoteStack, svc: Services, ref: str, *, unit: str | None = None
) -> MissionLogs:
    """The mission's node and Lambda logs (of one unit with ``unit``).

    Local cloud (the ``NodeLogDir`` output): each node's ``<instance-id>.log`` and the lines
    of ``lambdas.log`` that name the mission. AWS (``LogGroupNames``, ``NodeLogGroupName``):
    the Lambdas' CloudWatch events that name the mission and the mission's node streams, in
    time order (FilterLogEvents).
    """
    mission = _mission(svc, ref)
    if stack.node_log_dir:
        return _local_logs(Path(stack.node_log_dir), svc, mission.mission_id, unit)
    if stack.log_groups or svc.settings.node_log_group:
        return _cloudwatch_logs(stack, svc, mission, unit)
    raise LogsUnavailable(
        f"the stack has no {LOG_GROUPS}, {NODE_LOG_GROUP} nor {NODE_LOG_DIR} output "
        "to read logs from"
    )


def mission_nodes(svc: Services, mission_id: str, unit: str | None) -> list[str]:
    """Every instance ever launched for the mission (or unit), terminated ones included."""
    filters = [{"Name": f"tag:{TAG_MISSION}", "Values": [mission_id]}]
    if unit is not None:
        filters.append({"Name": f"tag:{TAG_UNIT}", "Values": [unit]})
    found: list[tuple[str, str]] = []
    for page in svc.ec2.get_paginator("describe_instances").paginate(Filters=filters):
        for reservation in page.get("Reservations", []):
            found.extend(
                (str(i.get("LaunchTime", "")), str(i["InstanceId"]))
                for i in reservation.get("Instances", [])
            )
    return [iid for _, iid in sorted(found)]


def _local_logs(root: Path, svc: Services, mission_id: str, unit: str | None) -> MissionLogs:
    try:
        nodes = mission_nodes(svc, mission_id, unit)
    except (BotoCoreError, ClientError) as exc:
        raise aws_error(exc, f"listing the nodes of {mission_id}") from exc
    logs = MissionLogs(mission_id, str(root), nodes=nodes)
    for iid in nodes:
        logs.lines.extend(LogLine(iid, text) for text in _read_lines(root / f"{iid}.log"))
    needles = [mission_id] if unit is None else [mission_id, unit]
    logs.lines.extend(
        LogLine("lambdas", text)
        for text in _read_lines(root / LAMBDA_LOG)
        if all(n in text for n in needles)
    )
    return logs


def _read_lines(path: Path) -> Iterator[str]:
    try:
        with path.open(encoding="utf-8", errors="replace") as source:
            yield from (line.rstrip("\n") for line in source)
    except FileNotFoundError:  # a node that never started writes no log
        return


def _cloudwatch_logs(
    stack: RemoteStack, svc: Services, mission: MissionRecord, unit: str | None
) -> MissionLogs:
    logs_client = _logs_client(svc)
    terms = [mission.mission_id] if unit is None else [mission.mission_id, unit]
    pattern = " ".join(json.dumps(t) for t in terms)  # quoted terms: all must occur
    node_group = svc.settings.node_log_group
    # A node's stream is <missionId>/<unitId>/<attempt>/<instanceId> (node_agent.log_shipping).
    prefix = "/".join(terms) + "/"
    queries = [{"logGroupName": g, "filterPattern": pattern} for g in stack.log_groups]
    if node_group:
        queries.append({"logGroupName": node_group, "logStreamNamePrefix": prefix})
    out = MissionLogs(mission.mission_id, ",".join(q["logGroupName"] for q in queries))
    start_ms = int(max(mission.created_at - 60, 0) * 1000)
    found: list[tuple[int, LogLine]] = []
    try:
        for query in queries:
            node = "logStreamNamePrefix" in query
            pages = logs_client.get_paginator("filter_log_events").paginate(
                **query, startTime=start_ms
            )
            for event in (e for page in pages for e in page.get("events", [])):
                if len(found) >= MAX_LOG_EVENTS:
                    out.truncated = True
                    break
                text = str(event.get("message", "")).rstrip()
                # A node's line is labelled by its instance id (the stream's last part).
                source = str(event.get("logStreamName", "")).rsplit("/", 1)[-1] if node else ""
                found.append(
                    (int(event.get("timestamp", 0)), LogLine(source or query["logGroupName"], text))
                )
                if node and source not in out.nodes:
                    out.nodes.append(source)
    except (BotoCoreError, ClientError) as exc:
        raise aws_error(exc, f"FilterLogEvents for {mission.mission_id}") from exc
    found.sort(key=lambda pair: pair[0])  # stable: each stream keeps its own order
    out.lines = [line for _, line in found]
    return out


def _logs_client(svc: Services) -> Any:
    """A CloudWatch Logs client on the same session, region and endpoint as the others."""
    meta = svc.sfn.meta
    return boto3.session.Session().client(
        "logs", region_name=meta.region_name, endpoint_url=meta.endpoint_url
    )


# ---- rerun ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Rerun:
    old: MissionRecord
    failed_shards: tuple[str, ...]
    started: StartedMission

    def as_json(self) -> dict[str, Any]:
        return {
            "rerunOf": self.old.mission_id,
            "failedShards": list(self.failed_shards),
            **self.started.as_json(),
        }


def rerun_payload(old: MissionRecord) -> dict[str, Any]:
    """The manual StartExecution input of a rerun: the old mission's pinned sample version
    and effective params (PlanMission checks both against the old record)."""
    payload = manual_input(old.sample.bucket, old.sample.key, old.params, None)
    if old.sample.version_id:
        payload["input"]["versionId"] = old.sample.version_id
    payload["rerunOf"] = old.mission_id
    return payload


def rerun_failed(stack: RemoteStack, svc: Services, ref: str) -> Rerun:
    """Start a mission over the old mission's failed shards (``workflow.rerun``)."""
    old = _mission(svc, ref)
    if old.status not in FINISHED_MISSION:
        raise MissionStillRunning(f"mission {old.mission_id} is {old.status.value}")
    if old.extra.get(RERUN_ID):
        raise MissionAlreadyRerun(
            f"mission {old.mission_id} was rerun as {old.extra[RERUN_ID]}; rerun that one"
        )
    try:
        failed = unfinished_shards(svc.store.list_shards(old.mission_id))
        if not failed:
            raise MissionNothingToRerun(f"mission {old.mission_id} has no failed shard")
        payload = rerun_payload(old)
        name = execution_name()
        resp = svc.sfn.start_execution(
            stateMachineArn=stack.state_machine_arn, name=name, input=json.dumps(payload)
        )
    except (BotoCoreError, ClientError) as exc:
        raise aws_error(exc, f"rerunning {old.mission_id}") from exc
    started = StartedMission(
        str(resp["executionArn"]), name, payload, MissionParams.model_validate(old.params)
    )
    return Rerun(old, tuple(s.shard_id for s in failed), started)


# ---- get --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Fetched:
    mission_id: str
    result: Path
    summary: Path

    def as_json(self) -> dict[str, Any]:
        return {
            "missionId": self.mission_id,
            "result": str(self.result),
            "summary": str(self.summary),
        }


def mission_summary(mission: MissionRecord) -> dict[str, Any]:
    """``summary.json``: the mission record's outcome, with ``local run``'s key names."""
    return {
        "missionId": mission.mission_id,
        "status": mission.status.value,
        "execution": mission.execution_arn,
        "sample": mission.sample.uri,
        "sampleVersion": mission.sample.version_id,
        "shards": mission.shards,
        "shardsDone": mission.shards_done,
        "shardsFailed": mission.shards_failed,
        "failedShards": [f.to_item() for f in mission.failed_shards or ()],
        "units": mission.units,
        "retries": mission.retries or 0,
        "interruptions": mission.interruptions or 0,
        "modelledCostUsd": mission.cost,
        "instanceSeconds": dict(mission.instance_seconds),
        "durationSeconds": mission.duration_seconds,
        "result": mission.result,
        "reduce": dict(mission.reduce or {}),
        "rerunOf": rerun_of(mission),
        "rerunId": mission.extra.get(RERUN_ID),
    }


def get_result(svc: Services, ref: str, into: Path) -> Fetched:
    """Download the merged result and write ``summary.json`` to ``<into>/<missionId>/``."""
    mission = _mission(svc, ref)
    if not mission.result:
        raise MissionNoResult(
            f"mission {mission.mission_id} is {mission.status.value} and has no result"
        )
    bucket, _, key = mission.result.removeprefix("s3://").partition("/")
    target = into / mission.mission_id
    result = target / PurePosixPath(key).name
    try:
        target.mkdir(parents=True, exist_ok=True)
        svc.objects.download(bucket, key, result)
    except OSError as exc:
        raise MissionInvalidInput(f"{target} cannot be written: {exc.strerror or exc}") from exc
    summary = target / "summary.json"
    summary.write_text(json.dumps(mission_summary(mission), indent=2, default=str) + "\n")
    return Fetched(mission.mission_id, result, summary)
