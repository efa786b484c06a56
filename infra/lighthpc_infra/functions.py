"""The four Lambda functions, each with its own role and log group (no managed policies)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

import aws_cdk as cdk
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from constructs import Construct

from lambdas.runtime import SERVICE

METRICS_NAMESPACE: Final = "LightHPC"
POWERTOOLS_ENV: Final[Mapping[str, str]] = {
    "POWERTOOLS_SERVICE_NAME": SERVICE,
    "POWERTOOLS_METRICS_NAMESPACE": METRICS_NAMESPACE,
    "POWERTOOLS_LOG_LEVEL": "INFO",
}


@dataclass(frozen=True)
class FunctionSpec:
    construct_id: str
    handler: str
    description: str
    memory_mb: int
    timeout: cdk.Duration


SPECS: Final[Mapping[str, FunctionSpec]] = {
    "light_scheduler": FunctionSpec(
        "LightScheduler",
        "lambdas.light_scheduler.handler",
        "lightScheduler: plan a mission, launch a node per work-unit attempt",
        1024,
        cdk.Duration.minutes(5),
    ),
    "rslt_proc": FunctionSpec(
        "RsltProc",
        "lambdas.rslt_proc.handler",
        "RsltProc: merge shard results, apply the failure tolerance",
        1024,
        cdk.Duration.minutes(10),
    ),
    "mission_cfg": FunctionSpec(
        "MissionCfg",
        "lambdas.mission_cfg.handler",
        "MissionCfg: parameter profiles (REST API)",
        256,
        cdk.Duration.seconds(30),
    ),
    "node_watch": FunctionSpec(
        "NodeWatch",
        "lambdas.node_watch.handler",
        "node_watch: Spot warnings, lost nodes, ended executions",
        256,
        cdk.Duration.minutes(1),
    ),
}


class MissionFunctions(Construct):
    """``light_scheduler``, ``rslt_proc``, ``mission_cfg``, ``node_watch`` (and ``by_key``)."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        code: lambda_.Code,
        runtime: lambda_.Runtime,
        environment: Mapping[str, str],
        log_retention: logs.RetentionDays,
        removal_policy: cdk.RemovalPolicy,
    ) -> None:
        super().__init__(scope, construct_id)
        self.by_key: dict[str, lambda_.Function] = {}
        self.log_groups: dict[str, logs.LogGroup] = {}
        for key, spec in SPECS.items():
            role = iam.Role(
                self,
                f"{spec.construct_id}Role",
                assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
                description=spec.description,
            )
            log_group = logs.LogGroup(
                self,
                f"{spec.construct_id}Logs",
                retention=log_retention,
                removal_policy=removal_policy,
            )
            log_group.grant_write(role)  # its own log group only (no AWSLambdaBasicExecutionRole)
            self.log_groups[key] = log_group
            self.by_key[key] = lambda_.Function(
                self,
                spec.construct_id,
                runtime=runtime,
                architecture=lambda_.Architecture.X86_64,
                code=code,
                handler=spec.handler,
                role=role,
                log_group=log_group,
                memory_size=spec.memory_mb,
                timeout=spec.timeout,
                description=spec.description,
                environment={**environment, **POWERTOOLS_ENV},
            )
        self.light_scheduler = self.by_key["light_scheduler"]
        self.rslt_proc = self.by_key["rslt_proc"]
        self.mission_cfg = self.by_key["mission_cfg"]
        self.node_watch = self.by_key["node_watch"]
