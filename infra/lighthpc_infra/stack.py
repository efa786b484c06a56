"""``LightHpcStack``: the constructs, wired together. Every grant is made here, statement by
statement (no ``grant_*`` helper that widens to ``*`` actions or index wildcards), and every
``Resource: "*"`` is beside the reason it cannot be scoped.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, Final

import aws_cdk as cdk
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import custom_resources as cr
from boto3.dynamodb.types import TypeSerializer
from constructs import Construct

from lighthpc_infra.api import MissionApi
from lighthpc_infra.bundling import lambda_code, node_package
from lighthpc_infra.compute import Compute, machine_image, node_environment
from lighthpc_infra.config import NODE_GLIBC, NODE_PYTHON, InfraConfig
from lighthpc_infra.dead_letters import WatchDeadLetters
from lighthpc_infra.events import MissionEvents
from lighthpc_infra.functions import MissionFunctions
from lighthpc_infra.network import Network
from lighthpc_infra.notifications import Notifications
from lighthpc_infra.orchestration import MissionStateMachine
from lighthpc_infra.storage import (
    MISSIONS_PREFIX,
    NODE_LIST_PREFIX,
    NODE_WRITE_PATTERNS,
    Storage,
)
from workflow.aws.ec2 import TAG_MISSION
from workflow.keys import manifest_key
from workflow.records import EXECUTION_INDEX, PROFILE_PREFIX
from workflow.settings import Settings
from workflow.stack_outputs import DESCRIPTIONS, LOG_GROUPS, outputs_for
from workflow.trigger import source_event_pattern

PROJECT_ROOT: Final = Path(__file__).resolve().parents[2]
LAMBDA_RUNTIMES: Final = {"3.11": lambda_.Runtime.PYTHON_3_11, "3.12": lambda_.Runtime.PYTHON_3_12}

TABLE_RW: Final = (
    "dynamodb:GetItem",
    "dynamodb:PutItem",
    "dynamodb:UpdateItem",
    "dynamodb:DeleteItem",
    "dynamodb:Query",
    "dynamodb:Scan",
    "dynamodb:BatchGetItem",
    "dynamodb:BatchWriteItem",
    "dynamodb:ConditionCheckItem",
)
TASK_RESPONSE: Final = (
    "states:SendTaskSuccess",
    "states:SendTaskFailure",
    "states:SendTaskHeartbeat",
)
# What a node calls (node_agent, workflow.attempt, workflow.aws.dynamodb); a transaction of
# Update/ConditionCheck items is authorised as dynamodb:UpdateItem/ConditionCheckItem per item.
NODE_TRANS_ACTIONS: Final = (
    "dynamodb:GetItem",
    "dynamodb:Query",
    "dynamodb:UpdateItem",
    "dynamodb:ConditionCheckItem",
)
NODE_MISSION_ACTIONS: Final = (
    "dynamodb:GetItem",  # the mission's pinned inputs and params
    "dynamodb:UpdateItem",  # the node's billed seconds (bill_instance)
    "dynamodb:ConditionCheckItem",
)
NODE_LOG_ACTIONS: Final = ("logs:CreateLogStream", "logs:PutLogEvents")
# EC2 describe calls support no resource-level permissions: the only Resource "*" of the app
# besides the X-Ray and log-delivery actions that CDK adds to the state machine role.
EC2_DESCRIBE: Final = ("ec2:DescribeInstances", "ec2:DescribeTags")
SPOT_SERVICE: Final = "spot.amazonaws.com"
LAUNCH_CREATES: Final = ("volume", "network-interface", "fleet", "spot-instances-request")


def _tag_present(prefix: str, tag: str) -> dict[str, Any]:
    return {"Null": {f"{prefix}/{tag}": "false"}}


class LightHpcStack(cdk.Stack):
    """Storage, notifications, network, compute, functions, state machine, events, API."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: InfraConfig,
        project_root: Path = PROJECT_ROOT,
        **kwargs: Any,
    ) -> None:
        super().__init__(
            scope,
            construct_id,
            description="lightHPC-SFN: event-driven HPC missions on Step Functions + EC2 Spot",
            **kwargs,
        )
        self.config = config
        removal = cdk.RemovalPolicy.RETAIN if config.retain_data else cdk.RemovalPolicy.DESTROY
        retention = log_retention(config.log_retention_days)

        self.storage = Storage(
            self,
            "Storage",
            checkpoint_expiration=cdk.Duration.days(config.checkpoint_expiration_days),
            intermediate_expiration=cdk.Duration.days(config.intermediate_expiration_days),
            noncurrent_expiration=cdk.Duration.days(config.noncurrent_version_days),
            removal_policy=removal,
        )
        self.notifications = Notifications(
            self, "Notifications", notify_email=config.notify_email, removal_policy=removal
        )
        self.network = Network(
            self,
            "Network",
            vpc_id=config.vpc_id,
            subnet_ids=config.subnet_ids,
            flow_log_bucket=self.storage.log_bucket,
        )
        self.node_package = node_package(
            self,
            "NodePackage",
            project_root=project_root,
            python_version=NODE_PYTHON,
            glibc=NODE_GLIBC,
        )
        base = Settings(
            mission_table=self.storage.mission_table.table_name,
            trans_table=self.storage.trans_table.table_name,
            source_bucket=self.storage.source_bucket.bucket_name,
            source_prefix=config.source_prefix,
            result_bucket=self.storage.result_bucket.bucket_name,
            topic_arn=self.notifications.topic.topic_arn,
            launch_template="",  # the nodes do not launch nodes
            node_max_lifetime_seconds=config.node_max_lifetime_seconds,
            default_profile=config.default_profile,
            max_concurrent_nodes=config.max_concurrent_nodes,
        )
        self.compute = Compute(
            self,
            "Compute",
            vpc=self.network.vpc,
            machine_image=machine_image(
                ami_id=config.ami_id, ssm_parameter=config.ami_ssm_parameter
            ),
            package=self.node_package,
            environment=node_environment(base.as_env(), cdk.Aws.REGION),
            max_lifetime_seconds=config.node_max_lifetime_seconds,
            volume_gib=config.node_volume_gib,
            log_retention=retention,
            removal_policy=removal,
        )
        self.settings = Settings(
            **{
                **base.__dict__,
                "launch_template": self.compute.launch_template_name,
                "subnet_ids": tuple(self.network.subnet_ids),
                "node_log_group": self.compute.log_group.log_group_name,
            }
        )
        self.functions = MissionFunctions(
            self,
            "Functions",
            code=lambda_code(
                project_root=project_root,
                python_version=config.lambda_python,
                glibc_minor=config.lambda_glibc,
            ),
            runtime=LAMBDA_RUNTIMES[config.lambda_python],
            environment=self.settings.as_env(),
            log_retention=retention,
            removal_policy=removal,
        )
        self.workflow = MissionStateMachine(
            self,
            "Workflow",
            name=config.state_machine_name,
            light_scheduler=self.functions.light_scheduler,
            rslt_proc=self.functions.rslt_proc,
            topic=self.notifications.topic,
            include_execution_data=config.log_execution_data,
            log_retention=retention,
            removal_policy=removal,
        )
        self.dead_letters = WatchDeadLetters(
            self,
            "WatchDeadLetters",
            node_watch=self.functions.node_watch,
            topic=self.notifications.topic,
            removal_policy=removal,
        )
        self.events = MissionEvents(
            self,
            "Events",
            source_pattern=source_event_pattern(self.settings),
            state_machine=self.workflow.state_machine,
            node_watch=self.functions.node_watch,
            dead_letter_queue=self.dead_letters.queue,
        )
        self.api = MissionApi(
            self,
            "Api",
            mission_cfg=self.functions.mission_cfg,
            state_machine=self.workflow.state_machine,
            cloud_watch_role=config.api_cloud_watch_role,
            log_retention=retention,
            removal_policy=removal,
        )
        self._grant()
        self._seed_default_profile()
        self._outputs()

    # ---- ARNs ---------------------------------------------------------------------------

    def ec2_arn(self, resource: str, name: str = "*", *, account: str | None = None) -> str:
        return self.format_arn(
            service="ec2",
            resource=resource,
            resource_name=name,
            account=account,
            arn_format=cdk.ArnFormat.SLASH_RESOURCE_NAME,
        )

    @property
    def launch_template_arn(self) -> str:
        return self.ec2_arn(
            "launch-template", self.compute.launch_template.launch_template_id or ""
        )

    @property
    def node_log_streams_arn(self) -> str:
        """Every stream of the nodes' log group (both node calls are authorised on a stream)."""
        return self.format_arn(
            service="logs",
            resource="log-group",
            resource_name=f"{self.compute.log_group.log_group_name}:log-stream:*",
            arn_format=cdk.ArnFormat.COLON_RESOURCE_NAME,
        )

    def _objects(self, bucket_arn: str, pattern: str = "*") -> str:
        return f"{bucket_arn}/{pattern}"

    # ---- grants -------------------------------------------------------------------------

    def _grant(self) -> None:
        fns = self.functions
        st = self.storage
        mission, trans = st.mission_table.table_arn, st.trans_table.table_arn
        gsi = f"{mission}/index/{EXECUTION_INDEX}"
        source_objects = self._objects(st.source_bucket.bucket_arn)
        mission_objects = self._objects(st.result_bucket.bucket_arn, f"{MISSIONS_PREFIX}*")
        read_sample = ("s3:GetObject", "s3:GetObjectVersion")

        # lightScheduler: plan (sample, profile, tblMission/tblTrans, manifest) and launch.
        ls = fns.light_scheduler.role
        assert ls is not None
        _allow(ls, TABLE_RW, [mission, trans])
        _allow(ls, read_sample, [source_objects])
        _allow(ls, ("s3:PutObject",), [mission_objects])
        self._grant_launch(ls)
        self._grant_terminate(ls)  # a failed or superseded unit's node
        self._grant_task_response(ls, TASK_RESPONSE)

        # RsltProc: reduce the committed shard results, write the final result.
        rp = fns.rslt_proc.role
        assert rp is not None
        _allow(rp, TABLE_RW, [mission, trans])
        _allow(rp, read_sample, [source_objects])
        _allow(rp, ("s3:GetObject", "s3:PutObject"), [mission_objects])

        # MissionCfg: profiles live in tblMission as CONFIG#<name>.
        mc = fns.mission_cfg.role
        assert mc is not None
        _allow(
            mc,
            ("dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:DeleteItem", "dynamodb:Scan"),
            [mission],
        )

        # node_watch: read tags, fail tokens, terminate a mission's nodes.
        nw = fns.node_watch.role
        assert nw is not None
        _allow(nw, TABLE_RW, [mission, trans])
        _allow(nw, ("dynamodb:Query",), [gsi])
        _allow(nw, EC2_DESCRIBE, ["*"], sid="DescribeNodesCannotBeScoped")
        self._grant_terminate(nw)
        self._grant_task_response(nw, ("states:SendTaskFailure",))

        self._grant_node()

        # The state machine: its two functions, the manifest, the topic, its child executions.
        wf = self.workflow
        sm_role = wf.role
        _allow(
            sm_role,
            ("lambda:InvokeFunction",),
            [fns.light_scheduler.function_arn, fns.rslt_proc.function_arn],
        )
        _allow(
            sm_role,
            ("s3:GetObject",),
            [self._objects(st.result_bucket.bucket_arn, manifest_key("*"))],
        )
        _allow(sm_role, ("sns:Publish",), [self.notifications.topic.topic_arn])
        _allow(sm_role, ("kms:GenerateDataKey", "kms:Decrypt"), [self.notifications.key.key_arn])
        _allow(
            sm_role, ("states:StartExecution",), [wf.arn_for_policies], sid="DistributedMapChildren"
        )
        _allow(
            sm_role,
            ("states:DescribeExecution", "states:StopExecution", "states:RedriveExecution"),
            [wf.child_executions_arn],
            sid="DistributedMapChildExecutions",
        )

        # API Gateway's role for POST /missions.
        wf.state_machine.grant_start_execution(self.api.start_role)

    def _grant_node(self) -> None:
        """The nodes: exactly the calls node_agent and workflow.attempt make (docs/deploy.md,
        "What the node role still shares"). Transactions are authorised per item action."""
        st = self.storage
        source_objects = self._objects(st.source_bucket.bucket_arn)
        mission_objects = self._objects(st.result_bucket.bucket_arn, f"{MISSIONS_PREFIX}*")
        trans, mission = st.trans_table.table_arn, st.mission_table.table_arn
        read_sample = ("s3:GetObject", "s3:GetObjectVersion")
        node = self.compute.role
        _allow(node, NODE_TRANS_ACTIONS, [trans])
        _allow(node, NODE_MISSION_ACTIONS, [mission])
        _allow(node, read_sample, [source_objects])
        _allow(node, ("s3:GetObject",), [mission_objects])  # checkpoints to resume from
        # Writes only where a node's outputs go: the manifest and the final results are not
        # the node's to overwrite.
        _allow(
            node,
            ("s3:PutObject", "s3:PutObjectTagging"),
            [
                self._objects(st.result_bucket.bucket_arn, pattern)
                for pattern in NODE_WRITE_PATTERNS
            ],
        )
        node.add_to_principal_policy(
            iam.PolicyStatement(
                actions=["s3:ListBucket"],
                resources=[st.result_bucket.bucket_arn],
                conditions={"StringLike": {"s3:prefix": [NODE_LIST_PREFIX]}},
            )
        )
        # The installer: exactly the node package object of the CDK assets bucket.
        _allow(
            node,
            ("s3:GetObject",),
            [self.node_package.bucket.arn_for_objects(self.node_package.s3_object_key)],
        )
        _allow(node, ("ec2:DescribeTags",), ["*"], sid="DescribeTagsCannotBeScoped")
        # node_agent.log_shipping: its own streams in the nodes' group, nothing else of Logs.
        _allow(node, NODE_LOG_ACTIONS, [self.node_log_streams_arn], sid="ShipNodeLogs")
        self._grant_terminate(node)
        self._grant_task_response(node, TASK_RESPONSE)

    def _grant_task_response(self, role: iam.IRole, actions: Sequence[str]) -> None:
        """Task-token calls, scoped to the state machine that issued the token.

        The Service Authorization Reference lists no resource type for these actions, but Step
        Functions authorizes them against the issuing state machine (AccessDenied messages
        name ``…:stateMachine:<name>``; CDK's ``grantTaskResponse`` scopes the same way). The
        Distributed Map's children run as ``<name>/<mapRunLabel>``, hence the second ARN.
        """
        wf = self.workflow
        _allow(role, actions, [wf.arn_for_policies, f"{wf.arn_for_policies}/*"], sid="TaskTokens")

    def _grant_terminate(self, role: iam.IRole) -> None:
        role.add_to_principal_policy(
            iam.PolicyStatement(
                sid="TerminateOnlyLightHpcNodes",
                actions=["ec2:TerminateInstances"],
                resources=[self.ec2_arn("instance")],
                conditions=_tag_present("ec2:ResourceTag", TAG_MISSION),
            )
        )

    def _grant_launch(self, role: iam.IRole) -> None:
        """CreateFleet(instant)/RunInstances from our launch template only."""
        compute = self.compute
        launch = ["ec2:CreateFleet", "ec2:RunInstances"]
        inputs = [
            self.launch_template_arn,
            self.ec2_arn("security-group", compute.security_group.security_group_id),
            self.ec2_arn("image", account=""),  # resolved from SSM at launch: any image id
            *(self.ec2_arn("subnet", sid) for sid in self.network.subnet_ids),
        ]
        role.add_to_principal_policy(
            iam.PolicyStatement(sid="LaunchFromOurTemplate", actions=launch, resources=inputs)
        )
        role.add_to_principal_policy(
            iam.PolicyStatement(
                sid="LaunchOnlyTaggedNodes",
                actions=launch,
                resources=[self.ec2_arn("instance")],
                conditions=_tag_present("aws:RequestTag", TAG_MISSION),
            )
        )
        role.add_to_principal_policy(
            iam.PolicyStatement(
                sid="LaunchCreatesVolumesInterfacesRequests",
                actions=launch,
                resources=[self.ec2_arn(kind) for kind in LAUNCH_CREATES],
            )
        )
        role.add_to_principal_policy(
            iam.PolicyStatement(
                sid="TagOnlyAtLaunch",
                actions=["ec2:CreateTags"],
                resources=[self.ec2_arn(kind) for kind in ("instance", *LAUNCH_CREATES)],
                conditions={"StringEquals": {"ec2:CreateAction": launch_actions()}},
            )
        )
        _allow(role, EC2_DESCRIBE, ["*"], sid="DescribeNodesCannotBeScoped")
        role.add_to_principal_policy(
            iam.PolicyStatement(
                sid="PassOnlyTheNodeRole",
                actions=["iam:PassRole"],
                resources=[compute.role.role_arn],
                conditions={"StringEquals": {"iam:PassedToService": "ec2.amazonaws.com"}},
            )
        )
        role.add_to_principal_policy(
            iam.PolicyStatement(
                sid="SpotServiceLinkedRole",
                actions=["iam:CreateServiceLinkedRole"],
                resources=[
                    self.format_arn(
                        service="iam",
                        region="",
                        resource="role",
                        resource_name=f"aws-service-role/{SPOT_SERVICE}/AWSServiceRoleForEC2Spot",
                    )
                ],
                conditions={"StringEquals": {"iam:AWSServiceName": SPOT_SERVICE}},
            )
        )

    # ---- default profile ----------------------------------------------------------------

    def _seed_default_profile(self) -> None:
        """Write the context's instance types / max nodes as the default MissionCfg profile
        (on create, and again when those context values change)."""
        name = self.config.default_profile
        item = {
            "missionId": PROFILE_PREFIX + name,
            "profile": name,
            "params": self.config.default_profile_params(),
            "updatedAt": 0,
        }
        serializer = TypeSerializer()
        call = cr.AwsSdkCall(
            service="DynamoDB",
            action="putItem",
            parameters={
                "TableName": self.storage.mission_table.table_name,
                "Item": {k: serializer.serialize(v) for k, v in item.items()},
            },
            physical_resource_id=cr.PhysicalResourceId.of(PROFILE_PREFIX + name),
        )
        self.default_profile = cr.AwsCustomResource(
            self,
            "DefaultProfileSeed",
            on_create=call,
            on_update=call,
            policy=cr.AwsCustomResourcePolicy.from_statements(
                [
                    iam.PolicyStatement(
                        actions=["dynamodb:PutItem"],
                        resources=[self.storage.mission_table.table_arn],
                    )
                ]
            ),
            install_latest_aws_sdk=False,
        )

    # ---- outputs ------------------------------------------------------------------------

    def _outputs(self) -> None:
        values = outputs_for(
            self.settings, self.workflow.state_machine.state_machine_arn, self.api.api.url
        )
        # ``lighthpc logs`` reads these groups (the names are CloudFormation's to choose).
        values[LOG_GROUPS] = cdk.Fn.join(
            ",", [group.log_group_name for group in self.functions.log_groups.values()]
        )
        for name, value in values.items():
            cdk.CfnOutput(self, name, value=value, description=DESCRIPTIONS.get(name))


def launch_actions() -> list[str]:
    return ["CreateFleet", "RunInstances"]


def _allow(
    role: iam.IRole, actions: Sequence[str], resources: Sequence[str], *, sid: str | None = None
) -> None:
    role.add_to_principal_policy(
        iam.PolicyStatement(sid=sid, actions=list(actions), resources=list(resources))
    )


_RETENTION: Final = {
    1: logs.RetentionDays.ONE_DAY,
    3: logs.RetentionDays.THREE_DAYS,
    5: logs.RetentionDays.FIVE_DAYS,
    7: logs.RetentionDays.ONE_WEEK,
    14: logs.RetentionDays.TWO_WEEKS,
    30: logs.RetentionDays.ONE_MONTH,
    60: logs.RetentionDays.TWO_MONTHS,
    90: logs.RetentionDays.THREE_MONTHS,
    180: logs.RetentionDays.SIX_MONTHS,
    365: logs.RetentionDays.ONE_YEAR,
    731: logs.RetentionDays.TWO_YEARS,
    1827: logs.RetentionDays.FIVE_YEARS,
    3653: logs.RetentionDays.TEN_YEARS,
}


def log_retention(days: int) -> logs.RetentionDays:
    """The shortest CloudWatch Logs retention that keeps at least ``days`` days."""
    return next(
        (r for d, r in sorted(_RETENTION.items()) if d >= days), logs.RetentionDays.TEN_YEARS
    )
