"""cdk-nag (AwsSolutions) suppressions. Each one names the exact resource and finding (IAM5:
the exact wildcard, via ``applies_to``) and says why it stands. Nothing is suppressed
stack-wide.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import aws_cdk as cdk
from cdk_nag import NagPackSuppression, NagSuppressions
from constructs import IConstruct

from lighthpc_infra.storage import NODE_WRITE_PATTERNS
from workflow.aws.ec2 import TAG_MISSION

if TYPE_CHECKING:
    from lighthpc_infra.stack import LightHpcStack

# The path of CDK's AwsCustomResource singleton (its id is fixed by CDK).
AWS_CUSTOM_RESOURCE_ROLE = "AWS679f53fac002430cb0da5b7982bd2287/ServiceRole/Resource"


def _arn_of(stack: cdk.Stack, resource: IConstruct) -> str:
    """How cdk-nag prints ``Fn::GetAtt [X, Arn]``: ``<X.Arn>``."""
    default = resource.node.default_child
    assert isinstance(default, cdk.CfnElement)
    return f"<{stack.resolve(stack.get_logical_id(default))}.Arn>"


def _printed(value: str, pseudo: str) -> str:
    """A pseudo parameter as cdk-nag prints it: the literal when the stack's env fixes it."""
    return f"<AWS::{pseudo}>" if cdk.Token.is_unresolved(value) else value


def _arn_prefix(stack: cdk.Stack, service: str, *, account: bool = True) -> str:
    partition = _printed(stack.partition, "Partition")
    region = _printed(stack.region, "Region")
    acct = _printed(stack.account, "AccountId") if account else ""
    return f"Resource::arn:{partition}:{service}:{region}:{acct}:"


def _iam5(role: IConstruct, reasons: Sequence[tuple[str, str]]) -> None:
    """One IAM5 suppression per wildcard, on the role's DefaultPolicy (where the finding is)."""
    NagSuppressions.add_resource_suppressions(
        role.node.find_child("DefaultPolicy"),
        [
            NagPackSuppression(id="AwsSolutions-IAM5", reason=reason, applies_to=[finding])
            for finding, reason in reasons
        ],
        apply_to_children=True,
    )


def add_suppressions(stack: LightHpcStack) -> None:
    name = stack.config.state_machine_name

    def _ec2(kind: str, *, account: bool = True) -> str:
        return f"{_arn_prefix(stack, 'ec2', account=account)}{kind}/*"

    source = f"Resource::{_arn_of(stack, stack.storage.source_bucket)}/*"
    missions = f"Resource::{_arn_of(stack, stack.storage.result_bucket)}/missions/*"
    manifest = f"Resource::{_arn_of(stack, stack.storage.result_bucket)}/missions/*/manifest.json"
    children = f"{_arn_prefix(stack, 'states')}stateMachine:{name}/*"
    child_executions = f"{_arn_prefix(stack, 'states')}execution:{name}/*"
    read_samples = (
        source,
        "Samples and reference libraries are read (GetObject/GetObjectVersion only) by the "
        "key a mission names; keys are chosen by users at run time, anywhere in the source "
        "bucket.",
    )
    mission_objects = (
        missions,
        "Manifests, shard results and checkpoints live under missions/<missionId>/; mission "
        "ids are created at run time, so the missions/ prefix is the narrowest static scope.",
    )
    task_tokens = (
        children,
        "Task-token calls of the Distributed Map's child executions are authorized against "
        f"{name}/<mapRunLabel>; map run labels are generated per execution.",
    )
    terminate = (
        _ec2("instance"),
        "Instance ids are created at run time; TerminateInstances (and, for lightScheduler, "
        f"RunInstances/CreateFleet and CreateTags) carry a Condition on the {TAG_MISSION} tag "
        "(ec2:ResourceTag / aws:RequestTag) or ec2:CreateAction, so only lightHPC nodes match.",
    )
    describe = (
        "Resource::*",
        "ec2:DescribeInstances and ec2:DescribeTags support no resource-level permissions "
        "(Service Authorization Reference); they are read-only.",
    )

    roles = stack.functions
    node_writes = [
        (
            f"Resource::{_arn_of(stack, stack.storage.result_bucket)}/{pattern}",
            "A node writes only shard results and checkpoints, under "
            "missions/<missionId>/shards|checkpoints/; mission ids are created at run time, so "
            "the id is the only wildcard (docs/deploy.md: what the node role still shares).",
        )
        for pattern in NODE_WRITE_PATTERNS
    ]
    node_group = stack.compute.log_group.node.default_child
    assert isinstance(node_group, cdk.CfnElement)
    node_streams = (
        f"{_arn_prefix(stack, 'logs')}log-group:<{stack.resolve(stack.get_logical_id(node_group))}>"
        ":log-stream:*",
        "A node creates and writes its own stream <missionId>/<unitId>/<attempt>/<instanceId> "
        "in the nodes' log group (node_agent.log_shipping); the names exist only at run time, "
        "so the stream is the only wildcard. No other Logs action is granted.",
    )
    _iam5(
        stack.compute.role,
        [
            read_samples,
            mission_objects,
            task_tokens,
            terminate,
            describe,
            node_streams,
            *node_writes,
        ],
    )
    assert roles.light_scheduler.role is not None
    _iam5(
        roles.light_scheduler.role,
        [
            read_samples,
            mission_objects,
            task_tokens,
            terminate,
            describe,
            (
                _ec2("image", account=False),
                "The AMI id is resolved from an SSM parameter at deploy time and can change "
                "with every deploy; images are read-only inputs of the launch.",
            ),
            *(
                (
                    _ec2(kind),
                    f"EC2 creates the {kind} of each launch (CreateFleet/RunInstances from our "
                    "launch template only); its id does not exist before the call.",
                )
                for kind in ("fleet", "network-interface", "spot-instances-request", "volume")
            ),
        ],
    )
    assert roles.rslt_proc.role is not None
    _iam5(roles.rslt_proc.role, [read_samples, mission_objects])
    assert roles.node_watch.role is not None
    _iam5(roles.node_watch.role, [task_tokens, terminate, describe])
    _iam5(
        stack.workflow.role,
        [
            (
                "Resource::*",
                "Added by CDK for the state machine's X-Ray tracing (xray:PutTraceSegments, "
                "PutTelemetryRecords, GetSamplingRules, GetSamplingTargets) and CloudWatch Logs "
                "delivery (logs:*LogDelivery*, PutResourcePolicy, DescribeResourcePolicies, "
                "DescribeLogGroups); none of these actions supports resource-level permissions.",
            ),
            (
                manifest,
                "The Distributed Map's ItemReader reads missions/<missionId>/manifest.json; "
                "mission ids are created at run time.",
            ),
            (
                child_executions,
                "The Distributed Map describes, stops and redrives its child executions "
                f"(execution:{name}/<mapRunLabel>:<id>), created at run time.",
            ),
        ],
    )
    NagSuppressions.add_resource_suppressions(
        [roles.by_key[key] for key in sorted(roles.by_key)],
        [
            NagPackSuppression(
                id="AwsSolutions-L1",
                reason=(
                    f"Python {stack.config.lambda_python} is pinned: the bundle's wheels are "
                    "built for exactly this runtime at synth, and the project supports "
                    "3.11-3.12 only (pyproject requires-python); switch with -c lambdaPython."
                ),
            )
        ],
    )
    NagSuppressions.add_resource_suppressions(
        stack.dead_letters.queue,
        [
            NagPackSuppression(
                id="AwsSolutions-SQS3",
                reason=(
                    "This queue is itself the dead-letter queue of node_watch (EventBridge "
                    "target DLQ and Lambda on-failure destination); cdk-nag recognises only "
                    "queues named in another queue's RedrivePolicy."
                ),
            )
        ],
    )
    api = stack.api.api
    if stack.config.api_cloud_watch_role:
        NagSuppressions.add_resource_suppressions(
            api.node.find_child("CloudWatchRole"),
            [
                NagPackSuppression(
                    id="AwsSolutions-IAM4",
                    reason=(
                        "API Gateway's account-level CloudWatch Logs role (required for stage "
                        "access logging) uses AWS's AmazonAPIGatewayPushToCloudWatchLogs, the "
                        "documented setup; -c apiCloudWatchRole=false if the account has one."
                    ),
                    applies_to=[
                        "Policy::arn:<AWS::Partition>:iam::aws:policy/"
                        "service-role/AmazonAPIGatewayPushToCloudWatchLogs"
                    ],
                )
            ],
            apply_to_children=True,
        )
    NagSuppressions.add_resource_suppressions(
        api.deployment_stage,
        [
            NagPackSuppression(
                id="AwsSolutions-APIG3",
                reason=(
                    "Every method requires SigV4 (AWS_IAM) from principals of this account; "
                    "there is no anonymous traffic for a WAF web ACL to filter."
                ),
            )
        ],
    )
    NagSuppressions.add_resource_suppressions(
        list(api.methods),
        [
            NagPackSuppression(
                id="AwsSolutions-COG4",
                reason=(
                    "Methods use IAM authorization (AWS_IAM): the callers are IAM principals "
                    "(the CLI, scripts), not users of a Cognito user pool."
                ),
            )
        ],
    )
    NagSuppressions.add_resource_suppressions_by_path(
        stack,
        f"/{stack.stack_name}/{AWS_CUSTOM_RESOURCE_ROLE}",
        [
            NagPackSuppression(
                id="AwsSolutions-IAM4",
                reason=(
                    "CDK's AwsCustomResource provider (seeds the default MissionCfg profile at "
                    "deploy) logs with AWSLambdaBasicExecutionRole; its only data permission "
                    "is dynamodb:PutItem on tblMission."
                ),
                applies_to=[
                    "Policy::arn:<AWS::Partition>:iam::aws:policy/"
                    "service-role/AWSLambdaBasicExecutionRole"
                ],
            )
        ],
    )
