"""Runtime configuration in one typed place.

Explicit argument > environment > default. The CDK stack (and the local mode) set the
environment variables named here; nothing in code names a region, account, ARN or AMI.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

ENV_MISSION_TABLE = "LIGHTHPC_MISSION_TABLE"
ENV_TRANS_TABLE = "LIGHTHPC_TRANS_TABLE"
ENV_SOURCE_BUCKET = "LIGHTHPC_SOURCE_BUCKET"
ENV_SOURCE_PREFIX = "LIGHTHPC_SOURCE_PREFIX"
ENV_RESULT_BUCKET = "LIGHTHPC_RESULT_BUCKET"
ENV_TOPIC_ARN = "LIGHTHPC_TOPIC_ARN"
ENV_LAUNCH_TEMPLATE = "LIGHTHPC_LAUNCH_TEMPLATE"
ENV_SUBNET_IDS = "LIGHTHPC_SUBNET_IDS"
ENV_NODE_MAX_LIFETIME = "LIGHTHPC_NODE_MAX_LIFETIME_SECONDS"
ENV_DEFAULT_PROFILE = "LIGHTHPC_DEFAULT_PROFILE"
ENV_RETENTION_DAYS = "LIGHTHPC_RETENTION_DAYS"
ENV_MAX_CONCURRENT_NODES = "LIGHTHPC_MAX_CONCURRENT_NODES"
ENV_MIN_HEARTBEAT_SECONDS = "LIGHTHPC_MIN_HEARTBEAT_SECONDS"
ENV_NODE_LOG_GROUP = "LIGHTHPC_NODE_LOG_GROUP"


@dataclass(frozen=True)
class Settings:
    """Names of the deployed resources a handler or node talks to."""

    mission_table: str = "tblMission"
    trans_table: str = "tblTrans"
    source_bucket: str = "lighthpc-source"
    source_prefix: str = "incoming/"
    result_bucket: str = "lighthpc-results"
    topic_arn: str = ""
    launch_template: str = "lighthpc-node"
    subnet_ids: tuple[str, ...] = ()
    node_max_lifetime_seconds: int = 6 * 3600
    default_profile: str = "default"
    retention_days: int = 90  # tblMission/tblTrans items expire (TTL ``expiresAt``) after this
    # Nodes one mission may run at once, whatever its maxNodes (0: no cap). The local mode
    # sets its pool's capacity: units launched beyond it would queue, their heartbeats ticking.
    max_concurrent_nodes: int = 0
    # The smallest heartbeatSeconds a mission may ask for. An EC2 node needs 80-150 s from
    # launch to its first heartbeat (DESIGN §10) but the agent heartbeats every
    # heartbeatSeconds/3 once up; below 90 s a slow boot is retried as a lost node.
    min_heartbeat_seconds: int = 90
    # The CloudWatch Logs group the nodes ship their lines to ("": they log to stderr only).
    node_log_group: str = ""

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        """Build settings from ``env`` (default ``os.environ``), then explicit overrides."""
        source = os.environ if env is None else env
        values: dict[str, Any] = {}
        for name, key in _ENV_KEYS.items():
            raw = source.get(key)
            if raw is None or raw == "":
                continue
            values[name] = _coerce(name, raw)
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)

    def as_env(self) -> dict[str, str]:
        """The environment that reproduces these settings (for Lambdas and node processes)."""
        out: dict[str, str] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            out[_ENV_KEYS[f.name]] = ",".join(value) if isinstance(value, tuple) else str(value)
        return out


_ENV_KEYS = {
    "mission_table": ENV_MISSION_TABLE,
    "trans_table": ENV_TRANS_TABLE,
    "source_bucket": ENV_SOURCE_BUCKET,
    "source_prefix": ENV_SOURCE_PREFIX,
    "result_bucket": ENV_RESULT_BUCKET,
    "topic_arn": ENV_TOPIC_ARN,
    "launch_template": ENV_LAUNCH_TEMPLATE,
    "subnet_ids": ENV_SUBNET_IDS,
    "node_max_lifetime_seconds": ENV_NODE_MAX_LIFETIME,
    "default_profile": ENV_DEFAULT_PROFILE,
    "retention_days": ENV_RETENTION_DAYS,
    "max_concurrent_nodes": ENV_MAX_CONCURRENT_NODES,
    "min_heartbeat_seconds": ENV_MIN_HEARTBEAT_SECONDS,
    "node_log_group": ENV_NODE_LOG_GROUP,
}


def _coerce(name: str, raw: str) -> Any:
    if name == "subnet_ids":
        return tuple(s for s in raw.split(",") if s)
    if name in {
        "node_max_lifetime_seconds",
        "retention_days",
        "max_concurrent_nodes",
        "min_heartbeat_seconds",
    }:
        return int(raw)
    return raw
