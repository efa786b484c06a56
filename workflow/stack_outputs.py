"""The CloudFormation outputs of a lightHPC stack: one list of names for the CDK app (which
writes them), the local mode (which registers the same outputs in the emulator) and the CLI
(which reads them back into ``Settings`` plus the state machine ARN).

Each ``Settings`` field has an output; the CLI turns outputs into the same environment the
Lambdas get, so ``Settings.from_env`` does the parsing in one place.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

from workflow.settings import (
    ENV_DEFAULT_PROFILE,
    ENV_LAUNCH_TEMPLATE,
    ENV_MIN_HEARTBEAT_SECONDS,
    ENV_MISSION_TABLE,
    ENV_NODE_LOG_GROUP,
    ENV_NODE_MAX_LIFETIME,
    ENV_RESULT_BUCKET,
    ENV_SOURCE_BUCKET,
    ENV_SOURCE_PREFIX,
    ENV_SUBNET_IDS,
    ENV_TOPIC_ARN,
    ENV_TRANS_TABLE,
    Settings,
)

DEFAULT_STACK_NAME: Final = "LightHpcSfn"
ENV_STACK_NAME: Final = "LIGHTHPC_STACK"
# Set together with the Settings variables to skip CloudFormation discovery entirely.
ENV_STATE_MACHINE_ARN: Final = "LIGHTHPC_STATE_MACHINE_ARN"

STATE_MACHINE_ARN: Final = "StateMachineArn"
API_URL: Final = "ApiUrl"
MISSION_TABLE: Final = "MissionTableName"
TRANS_TABLE: Final = "TransTableName"
SOURCE_BUCKET: Final = "SourceBucketName"
SOURCE_PREFIX: Final = "SourcePrefix"
RESULT_BUCKET: Final = "ResultBucketName"
TOPIC_ARN: Final = "MissionTopicArn"
LAUNCH_TEMPLATE: Final = "LaunchTemplateName"
SUBNET_IDS: Final = "NodeSubnetIds"
NODE_MAX_LIFETIME: Final = "NodeMaxLifetimeSeconds"
DEFAULT_PROFILE: Final = "DefaultProfile"
MIN_HEARTBEAT: Final = "MinHeartbeatSeconds"
NODE_LOG_GROUP: Final = "NodeLogGroupName"
# Where ``lighthpc logs`` reads logs: the Lambdas' CloudWatch log groups (comma-separated) and
# NodeLogGroupName on AWS; the directory of the node logs and ``lambdas.log`` in the local cloud.
LOG_GROUPS: Final = "LogGroupNames"
NODE_LOG_DIR: Final = "NodeLogDir"

# Output name -> the environment variable that carries the same value to a Lambda.
SETTINGS_OUTPUTS: Final[Mapping[str, str]] = {
    MISSION_TABLE: ENV_MISSION_TABLE,
    TRANS_TABLE: ENV_TRANS_TABLE,
    SOURCE_BUCKET: ENV_SOURCE_BUCKET,
    SOURCE_PREFIX: ENV_SOURCE_PREFIX,
    RESULT_BUCKET: ENV_RESULT_BUCKET,
    TOPIC_ARN: ENV_TOPIC_ARN,
    LAUNCH_TEMPLATE: ENV_LAUNCH_TEMPLATE,
    SUBNET_IDS: ENV_SUBNET_IDS,
    NODE_MAX_LIFETIME: ENV_NODE_MAX_LIFETIME,
    DEFAULT_PROFILE: ENV_DEFAULT_PROFILE,
    MIN_HEARTBEAT: ENV_MIN_HEARTBEAT_SECONDS,
    NODE_LOG_GROUP: ENV_NODE_LOG_GROUP,
}

# What the CLI cannot work without (the others fall back to the Settings defaults).
REQUIRED: Final = frozenset(
    {STATE_MACHINE_ARN, MISSION_TABLE, TRANS_TABLE, SOURCE_BUCKET, RESULT_BUCKET}
)

DESCRIPTIONS: Final[Mapping[str, str]] = {
    STATE_MACHINE_ARN: "The mission state machine (StartExecution target).",
    API_URL: "REST API (IAM auth): /profiles, /missions.",
    MISSION_TABLE: "tblMission: missions and MissionCfg profiles.",
    TRANS_TABLE: "tblTrans: one item per shard and per work unit.",
    SOURCE_BUCKET: "Upload samples here (under SourcePrefix) to start a mission.",
    SOURCE_PREFIX: "Key prefix watched by the Object Created rule.",
    RESULT_BUCKET: "Manifests, shard results, checkpoints and final results.",
    TOPIC_ARN: "Mission notices (SNS).",
    LAUNCH_TEMPLATE: "Launch template of the compute nodes.",
    SUBNET_IDS: "Subnets the nodes are launched in (comma-separated).",
    NODE_MAX_LIFETIME: "A node powers itself off after this many seconds.",
    DEFAULT_PROFILE: "MissionCfg profile merged under every mission's params.",
    MIN_HEARTBEAT: "The smallest heartbeatSeconds a mission may ask: a node's start meets it.",
    NODE_LOG_GROUP: "CloudWatch log group the nodes ship their lines to: lighthpc logs.",
    LOG_GROUPS: "CloudWatch log groups of the Lambdas (comma-separated): lighthpc logs.",
    NODE_LOG_DIR: "Local cloud only: the directory of the node logs and lambdas.log.",
}


def outputs_for(
    settings: Settings, state_machine_arn: str, api_url: str | None = None
) -> dict[str, str]:
    """Output name -> value for a deployed (or emulated) stack; empty values are left out."""
    env = settings.as_env()
    values = {name: env[key] for name, key in SETTINGS_OUTPUTS.items()}
    values[STATE_MACHINE_ARN] = state_machine_arn
    if api_url:
        values[API_URL] = api_url
    return {name: value for name, value in values.items() if value != ""}


def settings_from_outputs(outputs: Mapping[str, str]) -> Settings:
    """The ``Settings`` a stack's outputs describe (missing optional outputs: defaults)."""
    env = {key: outputs[name] for name, key in SETTINGS_OUTPUTS.items() if name in outputs}
    return Settings.from_env(env)


def missing_outputs(outputs: Mapping[str, str]) -> list[str]:
    return sorted(REQUIRED - {name for name, value in outputs.items() if value})
