"""Mission parameters: defaults, bounds and readable validation.

Params arrive from three places (the MissionCfg profile in ``tblMission``, a manual
StartExecution's ``params`` object, the CLI's ``--param k=v``) and are always validated by
this one model, so the same mistake gives the same ``Mission.InvalidInput`` message everywhere.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from workflow.errors import MissionInvalidInput
from workflow.instance_types import CATALOG
from workflow.workloads import available_workloads

MAX_SHARDS = 100_000
MAX_NODES = 1_000


class MissionParams(BaseModel):
    """The knobs of one mission (camelCase on the wire, as users type them)."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    workload: str = "molsim"
    shards: int = Field(8, ge=1, le=MAX_SHARDS)
    max_nodes: int = Field(4, alias="maxNodes", ge=1, le=MAX_NODES)
    instance_types: tuple[str, ...] = Field(
        ("c6i.large", "c7i.large", "m6i.large"), alias="instanceTypes", min_length=1, max_length=20
    )
    spot_attempts: int = Field(2, alias="spotAttempts", ge=0, le=10)
    heartbeat_seconds: int = Field(120, alias="heartbeatSeconds", ge=1, le=3600)
    timeout_seconds: int = Field(6 * 3600, alias="timeoutSeconds", ge=10, le=7 * 24 * 3600)
    max_failed_shard_percent: float = Field(0.0, alias="maxFailedShardPercent", ge=0, le=100)
    checkpoint_every: int = Field(250, alias="checkpointEvery", ge=1, le=1_000_000)
    slots_per_node: int | None = Field(None, alias="slotsPerNode", ge=1, le=256)
    top_k: int = Field(10, alias="topK", ge=1, le=1000)
    library: str | None = Field(None, max_length=1024)
    argv: tuple[str, ...] | None = Field(None, min_length=1, max_length=256)
    items: int | None = Field(None, ge=1, le=100_000_000)
    sleep_ms: int = Field(0, alias="sleepMs", ge=0, le=3_600_000)

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

    @field_validator("library")
    @classmethod
    def _s3_library(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith("s3://"):
            raise ValueError("must be an s3://bucket/key URI")
        return value

    @model_validator(mode="after")
    def _workload_needs(self) -> MissionParams:
        if self.workload == "command" and not self.argv:
            raise ValueError("workload 'command' needs argv (a list of strings)")
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
        return opts

    def to_wire(self) -> dict[str, Any]:
        """JSON-ready camelCase dict, the form stored in DynamoDB and S3."""
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)


def parse_params(*layers: Mapping[str, Any] | None, what: str = "params") -> MissionParams:
    """Merge ``layers`` left to right (later wins) and validate the result."""
    merged: dict[str, Any] = {}
    for layer in layers:
        if layer is None:
            continue
        if not isinstance(layer, Mapping):
            raise MissionInvalidInput(f"{what} must be a JSON object, got {type(layer).__name__}")
        merged.update(layer)
    try:
        return MissionParams.model_validate(merged)
    except ValidationError as exc:
        raise MissionInvalidInput(describe_validation_error(exc, what)) from exc


def describe_validation_error(exc: ValidationError, what: str) -> str:
    """One readable line per problem: ``params.shards: must be <= 100000 (got 0)``."""
    lines = []
    for err in exc.errors(include_url=False):
        loc = ".".join(str(p) for p in err["loc"]) or "(root)"
        msg = err["msg"]
        if err["type"] == "extra_forbidden":
            msg = "unknown parameter"
        elif "input" in err and err["type"] not in {"missing", "value_error"}:
            msg = f"{msg} (got {err['input']!r})"
        lines.append(f"{what}.{loc}: {msg}".replace("Value error, ", ""))
    return "; ".join(lines)


def known_param_names() -> list[str]:
    """Every accepted parameter name, as users type it."""
    return sorted(f.alias or name for name, f in MissionParams.model_fields.items())
