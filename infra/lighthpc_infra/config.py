"""Deployment knobs, read once from the CDK context (``cdk.json`` or ``cdk deploy -c k=v``).

Values given with ``-c`` on the command line arrive as strings, so every knob is coerced
here with a readable error; nothing else in the app reads the context.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from typing import Any, Final, TypeVar

from constructs import Node

from workflow.errors import MissionInvalidInput
from workflow.params import parse_params
from workflow.request import validate_profile_name
from workflow.settings import Settings
from workflow.stack_outputs import DEFAULT_STACK_NAME

T = TypeVar("T")

# Lambda runtime -> the newest glibc of its OS (python3.11: Amazon Linux 2; 3.12: AL2023).
LAMBDA_GLIBC: Final[Mapping[str, int]] = {"3.11": 26, "3.12": 34}
NODE_PYTHON: Final = "3.11"  # the nodes run AL2023's python3.11 package
NODE_GLIBC: Final = 34  # Amazon Linux 2023
_VPC_ID = re.compile(r"^vpc-[0-9a-f]{8,17}$")
_SUBNET_ID = re.compile(r"^subnet-[0-9a-f]{8,17}$")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_NAME = re.compile(r"^[A-Za-z0-9_-]{1,80}$")


class ConfigError(ValueError):
    """A context value that cannot be used; the message names the key and the fix."""


@dataclass(frozen=True, kw_only=True)
class InfraConfig:
    """Every deployment knob with its default; the context keys are the camelCase names."""

    stack_name: str = DEFAULT_STACK_NAME
    source_prefix: str = Settings.source_prefix
    instance_types: tuple[str, ...] = ("c6i.large", "c7i.large", "m6i.large")
    max_nodes: int = 4
    max_concurrent_nodes: int = Settings.max_concurrent_nodes  # per mission; 0: maxNodes rules
    default_profile: str = Settings.default_profile
    vpc_id: str | None = None
    subnet_ids: tuple[str, ...] = ()
    notify_email: str | None = None
    ami_ssm_parameter: str | None = None
    ami_id: str | None = None
    node_max_lifetime_hours: float = Settings.node_max_lifetime_seconds / 3600
    node_volume_gib: int = 30
    state_machine_name: str = "lighthpc-mission"
    log_execution_data: bool = False
    log_retention_days: int = 30
    retain_data: bool = True
    checkpoint_expiration_days: int = 7
    intermediate_expiration_days: int = 30
    noncurrent_version_days: int = 30  # old versions of samples and results
    lambda_python: str = "3.12"
    api_cloud_watch_role: bool = True

    def __post_init__(self) -> None:
        self._check()

    @classmethod
    def from_context(cls, node: Node) -> InfraConfig:
        """Read every knob from ``node``'s context (missing: the default above)."""
        values: dict[str, Any] = {}
        for f in fields(cls):
            raw = node.try_get_context(context_key(f.name))
            if raw is None or raw == "":
                continue
            coerce: Callable[[str, Any], Any] = _COERCE.get(f.name, _str)
            values[f.name] = coerce(context_key(f.name), raw)
        return cls(**values)

    @property
    def node_max_lifetime_seconds(self) -> int:
        return round(self.node_max_lifetime_hours * 3600)

    @property
    def lambda_glibc(self) -> int:
        return LAMBDA_GLIBC[self.lambda_python]

    def default_profile_params(self) -> dict[str, Any]:
        """The params seeded into the default MissionCfg profile (validated like a mission)."""
        return {"instanceTypes": list(self.instance_types), "maxNodes": self.max_nodes}

    def _check(self) -> None:
        try:
            parse_params(self.default_profile_params(), what="context")
            validate_profile_name(self.default_profile)
        except MissionInvalidInput as exc:
            raise ConfigError(str(exc)) from exc
        checks: list[tuple[bool, str]] = [
            (self.vpc_id is None or bool(_VPC_ID.match(self.vpc_id)), "vpcId must be vpc-…"),
            (all(_SUBNET_ID.match(s) for s in self.subnet_ids), "subnetIds must be subnet-…"),
            (not self.subnet_ids or self.vpc_id is not None, "subnetIds needs vpcId"),
            (self.notify_email is None or bool(_EMAIL.match(self.notify_email)), "notifyEmail"),
            (not (self.ami_id and self.ami_ssm_parameter), "give amiId or amiSsmParameter"),
            (self.source_prefix.endswith("/"), "sourcePrefix must end with '/'"),
            (bool(_NAME.match(self.state_machine_name)), "stateMachineName: [A-Za-z0-9_-]"),
            (self.lambda_python in LAMBDA_GLIBC, f"lambdaPython: one of {sorted(LAMBDA_GLIBC)}"),
            (0 < self.node_max_lifetime_hours <= 7 * 24, "nodeMaxLifetimeHours: (0, 168]"),
            (8 <= self.node_volume_gib <= 16384, "nodeVolumeGiB: 8..16384"),
            (self.checkpoint_expiration_days >= 1, "checkpointExpirationDays >= 1"),
            (self.intermediate_expiration_days >= 1, "intermediateExpirationDays >= 1"),
            (self.noncurrent_version_days >= 1, "noncurrentVersionDays >= 1"),
            (self.log_retention_days >= 1, "logRetentionDays >= 1"),
            (self.max_concurrent_nodes >= 0, "maxConcurrentNodes >= 0 (0: no cap)"),
        ]
        bad = [message for ok, message in checks if not ok]
        if bad:
            raise ConfigError("invalid context: " + "; ".join(bad))


def context_key(field_name: str) -> str:
    """``node_volume_gib`` -> ``nodeVolumeGib`` (the key used in cdk.json and ``-c``)."""
    head, *rest = field_name.split("_")
    return head + "".join(part.capitalize() for part in rest)


def _str(key: str, raw: Any) -> str:
    if not isinstance(raw, str):
        raise ConfigError(f"context {key} must be a string, got {raw!r}")
    return raw


def _int(key: str, raw: Any) -> int:
    try:
        return int(raw)
    except (TypeError, ValueError):
        raise ConfigError(f"context {key} must be an integer, got {raw!r}") from None


def _float(key: str, raw: Any) -> float:
    try:
        return float(raw)
    except (TypeError, ValueError):
        raise ConfigError(f"context {key} must be a number, got {raw!r}") from None


def _bool(key: str, raw: Any) -> bool:
    if isinstance(raw, bool):
        return raw
    text = str(raw).strip().lower()
    if text in {"true", "1", "yes"}:
        return True
    if text in {"false", "0", "no"}:
        return False
    raise ConfigError(f"context {key} must be true or false, got {raw!r}")


def _str_list(key: str, raw: Any) -> tuple[str, ...]:
    """A JSON list, or a comma-separated string (what ``-c k=a,b`` gives)."""
    value = raw
    if isinstance(raw, str):
        text = raw.strip()
        try:
            value = json.loads(text) if text.startswith("[") else text.split(",")
        except json.JSONDecodeError as exc:
            raise ConfigError(f"context {key} is not a JSON list: {exc}") from None
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ConfigError(f"context {key} must be a list of strings, got {raw!r}")
    return tuple(v.strip() for v in value if v.strip())


_COERCE: Final[Mapping[str, Callable[[str, Any], Any]]] = {
    "instance_types": _str_list,
    "subnet_ids": _str_list,
    "max_nodes": _int,
    "max_concurrent_nodes": _int,
    "node_volume_gib": _int,
    "log_retention_days": _int,
    "checkpoint_expiration_days": _int,
    "intermediate_expiration_days": _int,
    "noncurrent_version_days": _int,
    "node_max_lifetime_hours": _float,
    "log_execution_data": _bool,
    "retain_data": _bool,
    "api_cloud_watch_role": _bool,
}
