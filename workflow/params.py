"""Mission parameters: defaults, bounds and readable validation.

Params arrive from three places (the MissionCfg profile in ``tblMission``, a manual
StartExecution's ``params`` object, the CLI's ``--param k=v``) and are always validated by
this one model, so the same mistake gives the same ``Mission.InvalidInput`` message everywhere.
Every default and bound is in ``PARAMS``, the one table: hosts import it, never repeat it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from types import MappingProxyType
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from workflow.errors import MissionInvalidInput
from workflow.instance_types import CATALOG
from workflow.workloads import available_workloads


@dataclass(frozen=True)
class Bound:
    """One parameter's default and inclusive limits: of its value, or of its length when
    ``length`` (strings and lists); ``None`` is no limit."""

    default: Any
    low: int | None = None
    high: int | None = None
    length: bool = False


# name (as users type it) -> default and limits. The only place they are written.
PARAMS: Mapping[str, Bound] = MappingProxyType(
    {
        "workload": Bound("molsim"),
        "shards": Bound(8, 1, 100_000),
        "maxNodes": Bound(4, 1, 1_000),
        "instanceTypes": Bound(("c6i.large", "c7i.large", "m6i.large"), 1, 20, length=True),
        # At most the ASL's Spot.Interrupted MaxAttempts (8): the launch after the 8th
        # interruption is the last one Step Functions makes, so a unit that needed a 9th
        # before On-Demand would fail instead (tests/unit/test_param_reach.py).
        "spotAttempts": Bound(2, 0, 8),
        # At most 5: a Spot refusal fails the launch with Node.Capacity, which the ASL
        # retries 6 times; On-Demand then still has at least one launch
        # (tests/unit/test_capacity_fallback.py ties the two).
        "spotCapacityErrors": Bound(2, 0, 5),
        "heartbeatSeconds": Bound(120, 1, 3600),
        "timeoutSeconds": Bound(6 * 3600, 10, 7 * 24 * 3600),
        "maxFailedShardPercent": Bound(0.0, 0, 100),
        "checkpointEvery": Bound(250, 1, 1_000_000),
        "slotsPerNode": Bound(None, 1, 256),
        "topK": Bound(10, 1, 1000),
        "library": Bound(None, None, 1024, length=True),
        # A job bundle (s3://…/x.tar.gz or .zip): its manifest sets argv and the shard knobs.
        "bundle": Bound(None, None, 1024, length=True),
        # How the ``command`` workload merges shard outputs: concatenated, or ``key,count``
        # CSV rows summed per key.
        "reduce": Bound(None),
        "argv": Bound(None, 1, 256, length=True),
        "items": Bound(None, 1, 100_000_000),
        "sleepMs": Bound(0, 0, 3_600_000),
        # Per shard, for every workload: a shard running longer fails (the command workload
        # reads them as its documented options ``timeoutSeconds``/``graceSeconds``).
        "shardTimeoutSeconds": Bound(None, 1, 7 * 24 * 3600),
        "graceSeconds": Bound(None, 0, 600),
        # USD, the mission's cap on its modelled cost (workflow/budget.py): PlanMission refuses
        # a plan whose least cost passes it, LaunchNode any launch once the spend passes it.
        # Positive (checked by the model: the table's bounds are inclusive integers).
        "maxCostUsd": Bound(None, None, 1_000_000),
    }
)

ReduceMode = Literal["concat", "sumCsv"]

MAX_SHARDS: int = PARAMS["shards"].high or 0
MAX_NODES: int = PARAMS["maxNodes"].high or 0

# The embedded local mode's deliberate departures from the table, named here so no host
# repeats a literal. ``local up`` (and the local stack's tests) seed the default profile with
# LOCAL_HEARTBEAT_SECONDS; ``local run`` missions last seconds, so a SIGKILLed node (chaos
# ``kill=N``) is noticed after LOCAL_RUN_HEARTBEAT_SECONDS, not after the table's two minutes.
LOCAL_HEARTBEAT_SECONDS = 60
LOCAL_RUN_HEARTBEAT_SECONDS = 10
# The local stack's ``Settings.min_heartbeat_seconds``: its nodes are processes that heartbeat
# within a second, and the fast tests use 2 s; AWS keeps the settings' default.
LOCAL_MIN_HEARTBEAT_SECONDS = 2


def _field(name: str) -> Any:
    """The pydantic ``Field`` of table row ``name`` (its default, alias and limits)."""
    row = PARAMS[name]
    if row.length:
        return Field(row.default, alias=name, min_length=row.low, max_length=row.high)
    return Field(row.default, alias=name, ge=row.low, le=row.high)


_NUMBER = (int, float, Decimal)
NUMERIC = (
    "shards",
    "max_nodes",
    "spot_attempts",
    "spot_capacity_errors",
    "heartbeat_seconds",
    "timeout_seconds",
    "max_failed_shard_percent",
    "checkpoint_every",
    "slots_per_node",
    "top_k",
    "items",
    "sleep_ms",
    "shard_timeout_seconds",
    "grace_seconds",
    "max_cost_usd",
)


class MissionParams(BaseModel):
    """The knobs of one mission (camelCase on the wire, as users type them)."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    workload: str = _field("workload")
    shards: int = _field("shards")
    max_nodes: int = _field("maxNodes")
    instance_types: tuple[str, ...] = _field("instanceTypes")
    spot_attempts: int = _field("spotAttempts")
    spot_capacity_errors: int = _field("spotCapacityErrors")
    heartbeat_seconds: int = _field("heartbeatSeconds")
    timeout_seconds: int = _field("timeoutSeconds")
    max_failed_shard_percent: float = _field("maxFailedShardPercent")
    checkpoint_every: int = _field("checkpointEvery")
    slots_per_node: int | None = _field("slotsPerNode")
    top_k: int = _field("topK")
    library: str | None = _field("library")
    bundle: str | None = _field("bundle")
    reduce: ReduceMode | None = _field("reduce")
    argv: tuple[str, ...] | None = _field("argv")
    items: int | None = _field("items")
    sleep_ms: int = _field("sleepMs")
    shard_timeout_seconds: int | None = _field("shardTimeoutSeconds")
    grace_seconds: int | None = _field("graceSeconds")
    max_cost_usd: float | None = _field("maxCostUsd")

    @field_validator(*NUMERIC, mode="before")
    @classmethod
    def _a_number(cls, value: Any) -> Any:
        """JSON ``true`` is not 1 and ``"3"`` is not 3: a number must be written as one (a
        DynamoDB number comes back as ``Decimal``, which is one)."""
        if value is None or (
            isinstance(value, int | float | Decimal) and not isinstance(value, bool)
        ):
            return value
        raise ValueError(f"must be a number, not {type(value).__name__} {_shown(value)}")

    @field_validator("max_cost_usd")
    @classmethod
    def _positive_cap(cls, value: float | None) -> float | None:
        """A cap of $0 (or less) could launch nothing: it is a mistake, not a budget."""
        if value is not None and not value > 0:
            raise ValueError(f"must be a positive number of USD (got {value})")
        return value

    @field_validator("workload")
    @classmethod
    def _known_workload(cls, value: str) -> str:
        known = available_workloads()
        if value not in known:
            raise ValueError(f"unknown workload {value!r}; available: {', '.join(known)}")
        return value

    @field_validator("instance_types")
    @classmethod
    def _known_instance_types(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        unknown = [t for t in value if t not in CATALOG]
        if unknown:
            raise ValueError(f"unknown instance type(s) {', '.join(unknown)}")
        return value

    @field_validator("library", "bundle")
    @classmethod
    def _s3_uri(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith("s3://"):
            raise ValueError("must be an s3://bucket/key URI")
        return value

    @model_validator(mode="after")
    def _workload_needs(self) -> MissionParams:
        if self.bundle is not None and self.workload != "command":
            raise ValueError(f"a bundle runs as workload 'command', not {self.workload!r}")
        if self.workload == "command" and not self.argv and self.bundle is None:
            raise ValueError("workload 'command' needs argv (a list of strings) or a bundle")
        if self.items is not None and self.shards > self.items:
            raise ValueError(f"shards ({self.shards}) cannot exceed items ({self.items})")
        return self

    def workload_options(self) -> dict[str, Any]:
        """The subset a workload reads (``WorkInputs.options``)."""
        opts: dict[str, Any] = {"topK": self.top_k, "sleepMs": self.sleep_ms}
        if self.argv is not None:
            opts["argv"] = list(self.argv)
        if self.items is not None:
            opts["items"] = self.items
        if self.shard_timeout_seconds is not None:
            opts["timeoutSeconds"] = self.shard_timeout_seconds
        if self.grace_seconds is not None:
            opts["graceSeconds"] = self.grace_seconds
        if self.reduce is not None:
            opts["reduce"] = self.reduce
        return opts

    def to_wire(self) -> dict[str, Any]:
        """JSON-ready camelCase dict, the form stored in DynamoDB and S3."""
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)


def parse_params(
    *layers: Mapping[str, Any] | None, what: str = "params", min_heartbeat_seconds: int = 1
) -> MissionParams:
    """Merge ``layers`` left to right (later wins) and validate the result.

    ``min_heartbeat_seconds`` is the deployment's floor (``Settings.min_heartbeat_seconds``):
    a heartbeat a real node cannot meet would fail every unit with ``States.Timeout``.
    """
    merged: dict[str, Any] = {}
    for layer in layers:
        if layer is None:
            continue
        if not isinstance(layer, Mapping):
            raise MissionInvalidInput(f"{what} must be a JSON object, got {type(layer).__name__}")
        merged.update(layer)
    try:
        params = MissionParams.model_validate(merged)
    except ValidationError as exc:
        raise MissionInvalidInput(describe_validation_error(exc, what)) from exc
    if params.heartbeat_seconds < min_heartbeat_seconds:
        raise MissionInvalidInput(
            f"{what}.heartbeatSeconds: must be >= {min_heartbeat_seconds} here, the time a node "
            f"needs to start and send its first heartbeat (got {params.heartbeat_seconds})"
        )
    return params


def describe_validation_error(exc: ValidationError, what: str) -> str:
    """One readable line per problem: ``params.shards: must be <= 100000 (got 0)``."""
    lines = []
    for err in exc.errors(include_url=False):
        loc = ".".join(str(p) for p in err["loc"]) or "(root)"
        msg = err["msg"]
        if err["type"] == "extra_forbidden":
            msg = "unknown parameter"
        elif "input" in err and err["type"] not in {"missing", "value_error"}:
            msg = f"{msg} (got {_shown(err['input'])})"
        lines.append(f"{what}.{loc}: {msg}".replace("Value error, ", ""))
    return "; ".join(lines)


ECHO_MAX = 80  # characters of a refused value quoted back: a 200 KB value must not travel on


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= ECHO_MAX else f"{text[:ECHO_MAX]}… ({len(text)} characters)"


def known_param_names() -> list[str]:
    """Every accepted parameter name, as users type it."""
    return sorted(f.alias or name for name, f in MissionParams.model_fields.items())
