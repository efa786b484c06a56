"""Operations on a deployed stack: find it, start a mission, read its progress and cost.

The stack is found by its CloudFormation outputs (``workflow.stack_outputs``), or from the
environment when ``LIGHTHPC_STATE_MACHINE_ARN`` is set (together with the ``Settings``
variables the Lambdas get). ``endpoint_url`` points every client at another endpoint, so
the same operations run against the embedded local stack (``lighthpc local up``).

Everything here returns data; ``cli.remote_commands`` renders it.
"""

from __future__ import annotations

import json
import os
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

import boto3
from botocore.exceptions import BotoCoreError, ClientError

from workflow.aggregation import price_mission
from workflow.aws.services import Services, make_services
from workflow.cost import CostBreakdown, InstanceKey, PriceList
from workflow.errors import LightHpcError
from workflow.keys import require_mission_id
from workflow.params import MissionParams
from workflow.planning import parse_s3_uri
from workflow.ports import MissionStore
from workflow.progress import Progress, progress_of
from workflow.records import MissionRecord, ShardRecord, UnitRecord
from workflow.request import parse_execution_input
from workflow.settings import Settings
from workflow.stack_outputs import (
    API_URL,
    ENV_STATE_MACHINE_ARN,
    LOG_GROUPS,
    NODE_LOG_DIR,
    STATE_MACHINE_ARN,
    missing_outputs,
    settings_from_outputs,
)
from workflow.start_checks import object_head, stored_profiles, validate_start
from workflow.states import (
    FAILED_EXECUTION,
    TERMINAL_EXECUTION,
    MissionStatus,
    ShardStatus,
)

FAILED_MISSION = frozenset({MissionStatus.FAILED.value, MissionStatus.CANCELLED.value})
EXECUTION_NAME_PREFIX = "manual"
HISTORY_PAGE = 1000


class StackNotFound(LightHpcError):
    """No deployed stack (or not all of its outputs) where the CLI looked."""

    error_name = "Stack.NotFound"


class RemoteUnavailable(LightHpcError):
    """An AWS call failed (credentials, region, permissions, network)."""

    error_name = "Remote.Unavailable"


@dataclass(frozen=True)
class RemoteStack:
    name: str
    settings: Settings
    state_machine_arn: str
    api_url: str | None = None
    outputs: Mapping[str, str] = field(default_factory=dict)

    @property
    def log_groups(self) -> list[str]:
        """The Lambdas' CloudWatch log groups (``lighthpc logs`` on AWS)."""
        return [g for g in self.outputs.get(LOG_GROUPS, "").split(",") if g]

    @property
    def node_log_dir(self) -> str | None:
        """The local cloud's node log directory (``lighthpc local up`` registers it)."""
        return self.outputs.get(NODE_LOG_DIR) or None


def aws_error(exc: BotoCoreError | ClientError, doing: str) -> RemoteUnavailable:
    """One readable line for an AWS failure (the code and message, not a traceback)."""
    if isinstance(exc, ClientError):
        err = exc.response.get("Error", {})
        detail = f"{err.get('Code', 'Error')}: {err.get('Message', '')}".rstrip(": ")
    else:
        detail = str(exc)
    return RemoteUnavailable(f"{doing} failed ({detail})")


def discover(
    stack_name: str,
    *,
    session: boto3.session.Session | None = None,
    endpoint_url: str | None = None,
    env: Mapping[str, str] | None = None,
) -> RemoteStack:
    """The stack named ``stack_name`` (CloudFormation outputs), or the explicit environment."""
    source = os.environ if env is None else env
    explicit = source.get(ENV_STATE_MACHINE_ARN)
    if explicit:
        return RemoteStack(stack_name, Settings.from_env(source), explicit)
    session = session or boto3.session.Session()
    try:
        cfn = session.client("cloudformation", endpoint_url=endpoint_url)
        stacks = cfn.describe_stacks(StackName=stack_name)["Stacks"]
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") == "ValidationError":
            raise StackNotFound(
                f"no stack {stack_name!r} here; deploy it (docs/deploy.md), pass --stack, "
                f"or set {ENV_STATE_MACHINE_ARN} and the LIGHTHPC_* variables"
            ) from exc
        raise aws_error(exc, f"DescribeStacks {stack_name}") from exc
    except BotoCoreError as exc:
        raise aws_error(exc, f"DescribeStacks {stack_name}") from exc
    outputs = {o["OutputKey"]: o["OutputValue"] for o in stacks[0].get("Outputs", [])}
    missing = missing_outputs(outputs)
    if missing:
        raise StackNotFound(
            f"stack {stack_name!r} has no output(s) {', '.join(missing)} "
            f"(status {stacks[0].get('StackStatus')}); is it a lightHPC stack?"
        )
    return RemoteStack(
        stack_name,
        settings_from_outputs(outputs),
        outputs[STATE_MACHINE_ARN],
        outputs.get(API_URL),
        outputs,
    )


def connect(
    stack_name: str,
    *,
    endpoint_url: str | None = None,
    region: str | None = None,
    env: Mapping[str, str] | None = None,
) -> tuple[RemoteStack, Services]:
    """Discover the stack and build clients for it (one session, one endpoint)."""
    try:
        session = boto3.session.Session(region_name=region)
        stack = discover(stack_name, session=session, endpoint_url=endpoint_url, env=env)
        svc = make_services(stack.settings, session=session, endpoint_url=endpoint_url)
    except BotoCoreError as exc:
        raise aws_error(exc, "connecting to AWS") from exc
    return stack, svc


# ---- start ------------------------------------------------------------------------------


@dataclass(frozen=True)
class StartedMission:
    execution_arn: str
    name: str
    input: Mapping[str, Any]
    params: MissionParams

    def as_json(self) -> dict[str, Any]:
        return {
            "executionArn": self.execution_arn,
            "name": self.name,
            "input": dict(self.input),
            "effectiveParams": self.params.to_wire(),
        }


def execution_name(now: datetime | None = None) -> str:
    """``manual-20261129T134501Z-1a2b3c4d``: sorts by time, reads well in the console."""
    stamp = (now or datetime.now(UTC)).strftime("%Y%m%dT%H%M%SZ")
    return f"{EXECUTION_NAME_PREFIX}-{stamp}-{secrets.token_hex(4)}"


def manual_input(
    bucket: str, key: str, params: Mapping[str, Any], profile: str | None
) -> dict[str, Any]:
    """The manual StartExecution input form that ``workflow.request`` accepts."""
    payload: dict[str, Any] = {"input": {"bucket": bucket, "key": key}, "params": dict(params)}
    if profile is not None:
        payload["profile"] = profile
    return payload


def start_mission(
    stack: RemoteStack,
    svc: Services,
    uri: str,
    params: Mapping[str, Any],
    *,
    profile: str | None = None,
    name: str | None = None,
) -> StartedMission:
    """Validate locally exactly as PlanMission will (``validate_start`` on the very input
    that is sent), then StartExecution.

    Refused before anything is sent (``Mission.InvalidInput``): a URI outside the watched
    source bucket/prefix, an unknown profile, params that do not validate when merged over
    the profile, a sample that cannot be read, is empty or is too large.
    """
    bucket, key = parse_s3_uri(uri)
    payload = manual_input(bucket, key, params, profile)
    request = parse_execution_input(payload)
    try:
        start = validate_start(
            request,
            settings=stack.settings,
            profile_params=stored_profiles(svc.store),
            head_sample=object_head(svc.objects),
        )
        exec_name = name or execution_name()
        resp = svc.sfn.start_execution(
            stateMachineArn=stack.state_machine_arn,
            name=exec_name,
            input=json.dumps(payload),
        )
    except (BotoCoreError, ClientError) as exc:
        raise aws_error(exc, "StartExecution") from exc
    return StartedMission(str(resp["executionArn"]), exec_name, payload, start.params)


# ---- status -----------------------------------------------------------------------------


@dataclass
class MissionView:
    """What ``lighthpc status`` shows: the execution, the mission record and tblTrans."""

    execution: dict[str, Any] | None
    mission: MissionRecord | None
    shards: list[ShardRecord] = field(default_factory=list)
    units: list[UnitRecord] = field(default_factory=list)
    history: list[dict[str, Any]] = field(default_factory=list)
    definition: dict[str, Any] | None = None

    @property
    def progress(self) -> Progress:
        return progress_of(self.shards, self.units)

    @property
    def execution_status(self) -> str | None:
        return None if self.execution is None else str(self.execution["status"])

    @property
    def finished(self) -> bool:
        return self.execution_status in TERMINAL_EXECUTION

    @property
    def failed(self) -> bool:
        mission_status = None if self.mission is None else self.mission.status
        return self.execution_status in FAILED_EXECUTION or mission_status in FAILED_MISSION

    def shard_counts(self) -> dict[str, tuple[int, int]]:
        counts: dict[str, tuple[int, int]] = {}
        for s in self.shards:
            done, total = counts.get(s.unit_id, (0, 0))
            counts[s.unit_id] = (done + (s.status is ShardStatus.DONE), total + 1)
        return counts

    def as_json(self) -> dict[str, Any]:
        ex = self.execution or {}
        return {
            "missionId": None if self.mission is None else self.mission.mission_id,
            "missionStatus": None if self.mission is None else self.mission.status.value,
            "execution": {
                "executionArn": ex.get("executionArn"),
                "name": ex.get("name"),
                "status": ex.get("status"),
                "startDate": ex.get("startDate"),
                "stopDate": ex.get("stopDate"),
                "error": ex.get("error"),
                "cause": ex.get("cause"),
            }
            if self.execution
            else None,
            "progress": self.progress.as_json(),
            "units": [
                {
                    "unitId": u.unit_id,
                    "status": u.status.value,
                    "attempt": u.attempt,
                    "interruptedAttempts": list(u.interrupted_attempts),
                    "capacity": u.capacity,
                    "shardsDone": self.shard_counts().get(u.unit_id, (0, 0))[0],
                    "shards": self.shard_counts().get(u.unit_id, (0, 0))[1],
                }
                for u in self.units
            ],
            "mission": None if self.mission is None else self.mission.to_item(),
        }


def is_execution_arn(ref: str) -> bool:
    return ref.startswith("arn:") and ":execution:" in ref


def mission_view(svc: Services, ref: str, *, with_history: bool = True) -> MissionView:
    """Resolve ``ref`` (a missionId or an execution ARN) and read everything about it."""
    store = svc.store
    try:
        if is_execution_arn(ref):
            execution: dict[str, Any] | None = dict(svc.sfn.describe_execution(executionArn=ref))
            mission_id = store.mission_for_execution(ref)
            mission = store.get_mission(mission_id) if mission_id else None
        else:
            mission = store.get_mission(require_mission_id(ref))
            arn = mission.execution_arn
            execution = dict(svc.sfn.describe_execution(executionArn=arn)) if arn else None
        view = MissionView(execution=execution, mission=mission)
        if mission is not None:
            view.shards = store.list_shards(mission.mission_id)
            view.units = store.list_units(mission.mission_id)
            # Nodes never write the mission item: live counts come from tblTrans.
            live = progress_of(view.shards, view.units)
            view.mission = replace(mission, shards_done=live.done, shards_failed=live.failed)
        if with_history and execution is not None:
            view.history = _history(svc, str(execution["executionArn"]))
            machine = svc.sfn.describe_state_machine_for_execution(
                executionArn=execution["executionArn"]
            )
            view.definition = json.loads(machine["definition"])
    except (BotoCoreError, ClientError) as exc:
        raise aws_error(exc, f"reading {ref}") from exc
    return view


def _history(svc: Services, arn: str) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = []
    kwargs: dict[str, Any] = {"executionArn": arn, "maxResults": HISTORY_PAGE}
    while True:
        page = svc.sfn.get_execution_history(**kwargs)
        events.extend(page.get("events", []))
        token = page.get("nextToken")
        if not token:
            return events
        kwargs["nextToken"] = token


def wait_view(
    svc: Services, ref: str, *, timeout: float, interval: float = 2.0
) -> tuple[MissionView, bool]:
    """Poll until the execution ends; returns the final view and whether it ended."""
    deadline = time.monotonic() + timeout
    while True:
        view = mission_view(svc, ref, with_history=False)
        if view.finished or time.monotonic() >= deadline:
            return mission_view(svc, ref), view.finished
        time.sleep(interval)


# ---- cost -------------------------------------------------------------------------------


@dataclass(frozen=True)
class MissionCost:
    """``price_mission``'s breakdown (RsltProc's model, not a second one), with what a bill
    adds: hours, the instance types without a list price, and what RsltProc recorded."""

    mission_id: str
    shards: int
    cost: CostBreakdown
    unpriced: tuple[str, ...]
    recorded: float | None

    @property
    def step_functions(self) -> float:
        return self.cost.step_functions

    @property
    def lambda_(self) -> float:
        return self.cost.lambda_

    @property
    def dynamodb(self) -> float:
        return self.cost.dynamodb

    @property
    def instances(self) -> Mapping[InstanceKey, float]:
        return self.cost.instances

    @property
    def instance_hours(self) -> Mapping[InstanceKey, float]:
        return {key: secs / 3600.0 for key, secs in self.cost.instance_seconds.items()}

    @property
    def orchestration(self) -> float:
        return self.cost.orchestration

    @property
    def compute(self) -> float:
        return self.cost.compute

    @property
    def total(self) -> float:
        return self.cost.total

    def as_json(self) -> dict[str, Any]:
        hours = self.instance_hours
        return {
            "missionId": self.mission_id,
            "currency": "USD",
            "orchestration": {
                "stepFunctions": round(self.step_functions, 6),
                "lambda": round(self.lambda_, 6),
                "dynamodb": round(self.dynamodb, 6),
                "total": round(self.orchestration, 6),
            },
            "compute": {
                "instances": [
                    {
                        "instanceType": itype,
                        "capacity": cap,
                        "hours": round(hours[(itype, cap)], 4),
                        "cost": round(cost, 6),
                    }
                    for (itype, cap), cost in sorted(self.instances.items())
                ],
                "total": round(self.compute, 6),
                "unpricedInstanceTypes": list(self.unpriced),
            },
            "total": round(self.total, 6),
            "perShard": round(self.total / self.shards, 6) if self.shards else None,
            "recordedByRsltProc": self.recorded,
        }


def mission_cost(
    store: MissionStore, mission_id: str, prices: PriceList | None = None
) -> MissionCost:
    """The mission's cost by ``price_mission``, from the same records RsltProc reads: for an
    ended mission its total is the one RsltProc recorded; while nodes run, their seconds
    count once they end (a node bills itself when it exits)."""
    try:
        mission = store.get_mission(require_mission_id(mission_id))
        shards = store.list_shards(mission_id)
        units = store.list_units(mission_id)
    except (BotoCoreError, ClientError) as exc:
        raise aws_error(exc, f"reading mission {mission_id}") from exc
    cost = price_mission(mission, shards, units, prices)
    billed = {str(key).partition("|")[0] for key in mission.instance_seconds or {}}
    recorded = mission.cost
    return MissionCost(
        mission_id=mission_id,
        shards=len(shards) or mission.shards,
        cost=cost,
        unpriced=tuple(sorted(billed - {itype for itype, _ in cost.instances})),
        recorded=None if recorded is None else float(recorded),
    )
