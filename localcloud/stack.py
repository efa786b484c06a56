"""Create the mission's resources inside the embedded cloud, named by the same ``Settings``
that the CDK stack passes to the deployed Lambdas, and wire the real handlers in-process.

``deploy`` creates the resources once; ``wire`` is the part of it that a test can undo (the
handlers, the S3 rule, the default profile) and that ``localcloud.reset`` repeats.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from localcloud import sdk_sessions
from workflow.asl import load_definition, placeholder_values
from workflow.aws.services import Services, make_services
from workflow.params import LOCAL_HEARTBEAT_SECONDS, LOCAL_MIN_HEARTBEAT_SECONDS
from workflow.records import EXECUTION_INDEX, MISSIONS_INDEX
from workflow.settings import Settings
from workflow.trigger import source_event_pattern

Handler = Callable[[dict[str, Any], Any], Any]

STATE_MACHINE_NAME = "lighthpc-mission"
SOURCE_RULE_NAME = "lighthpc-source-object-created"
LOCAL_ROLE_NAME = "lighthpc-local-role"
LOCAL_NODE_LOG_GROUP = "/lighthpc/local/nodes"
FUNCTIONS = {
    "light_scheduler": "lighthpc-light-scheduler",
    "rslt_proc": "lighthpc-rslt-proc",
    "mission_cfg": "lighthpc-mission-cfg",
    "node_watch": "lighthpc-node-watch",
}
DEFAULT_LOCAL_PROFILE: Mapping[str, Any] = {"heartbeatSeconds": LOCAL_HEARTBEAT_SECONDS}


@dataclass
class LocalStack:
    settings: Settings
    services: Services
    state_machine_arn: str
    topic_arn: str
    notice_queue_url: str
    function_arns: dict[str, str] = field(default_factory=dict)
    handlers: dict[str, Handler] = field(default_factory=dict)  # FUNCTIONS key -> handler
    profile: dict[str, Any] = field(default_factory=lambda: dict(DEFAULT_LOCAL_PROFILE))


def local_settings(**overrides: Any) -> Settings:
    return Settings(**overrides)


def deploy(
    cloud: Any,
    settings: Settings | None = None,
    handlers: Mapping[str, Handler] | None = None,
    profile: Mapping[str, Any] | None = None,
) -> LocalStack:
    """Create buckets, tables, topic, launch template, the nodes' log group, functions,
    state machine and rule."""
    settings = settings or Settings(min_heartbeat_seconds=LOCAL_MIN_HEARTBEAT_SECONDS)
    topic_arn = _topic(cloud)
    settings = Settings(
        **{
            **settings.__dict__,
            "topic_arn": topic_arn,
            "node_log_group": settings.node_log_group or LOCAL_NODE_LOG_GROUP,
        }
    )
    svc = local_services(cloud, settings)
    _buckets(cloud, settings)
    _tables(cloud, settings)
    cloud.client("logs").create_log_group(logGroupName=settings.node_log_group)
    _launch_template(cloud, settings)
    queue_url = _notice_queue(cloud, topic_arn)
    chosen = {**real_handlers(), **(handlers or {})}
    arns = {key: _function(cloud, key, chosen[key]) for key in FUNCTIONS}
    sm_arn = _state_machine(cloud, arns, topic_arn)
    _bind_iam(cloud, settings, sm_arn)
    stack = LocalStack(
        settings,
        svc,
        sm_arn,
        topic_arn,
        queue_url,
        arns,
        handlers=chosen,
        profile=dict(profile or DEFAULT_LOCAL_PROFILE),
    )
    wire(cloud, stack)  # creates the S3 rule
    _source_rule_target(cloud, sm_arn)
    from localcloud.outputs import register_outputs  # the remote CLI finds it by name

    register_outputs(cloud, stack)
    return stack


def _function(cloud: Any, key: str, handler: Handler) -> str:
    """Create the function with the template's limits (``function_limits.json``)."""
    from localcloud.lambda_runtime import create_stub_function, load_function_limits

    limits = load_function_limits()[key]
    arn = create_stub_function(
        cloud.client("lambda"),
        cloud.client("iam"),
        FUNCTIONS[key],
        timeout_seconds=int(limits.timeout_seconds),
        memory_mb=limits.memory_mb,
        ephemeral_mb=limits.ephemeral_mb,
    )
    cloud.lambdas.register(FUNCTIONS[key], handler)
    return arn


def real_handlers() -> dict[str, Handler]:
    """The Lambda handlers the CDK stack deploys, keyed like ``FUNCTIONS``."""
    from lambdas import light_scheduler, mission_cfg, node_watch, rslt_proc

    return {
        "light_scheduler": light_scheduler.handler,
        "rslt_proc": rslt_proc.handler,
        "mission_cfg": mission_cfg.handler,
        "node_watch": node_watch.handler,
    }


def local_services(cloud: Any, settings: Settings, access_key: str = "testing") -> Services:
    """Clients for ``settings`` at the embedded cloud, as the deployed Lambdas would build;
    ``access_key`` names the principal (default: the account's unrestricted administrator)."""
    session = sdk_sessions.session(access_key, "testing", cloud.region)  # dummy credentials
    return make_services(settings, session=session, endpoint_url=cloud.endpoint_url)


def principal_services(cloud: Any, settings: Settings, key: str) -> Services | None:
    """The clients of function ``key`` (keyed like ``FUNCTIONS``) under its own role, or None
    when the cloud enforces no IAM (then every handler uses the stack's clients)."""
    iam = getattr(cloud, "iam", None)
    if iam is None:
        return None
    return iam.cached(  # type: ignore[no-any-return]
        key, settings, lambda: local_services(cloud, settings, iam.access_key(key))
    )


def _as_principal(handler: Handler, svc: Services) -> Handler:
    from lambdas import runtime

    def invoke(event: dict[str, Any], context: Any) -> Any:
        with runtime.acting_as(svc):
            return handler(event, context)

    return invoke


def _bind_iam(cloud: Any, settings: Settings, state_machine_arn: str) -> None:
    """Resolve the snapshot's placeholders to what this deployment created; enforce it."""
    iam = getattr(cloud, "iam", None)
    if iam is None:
        return
    from moto.core.models import DEFAULT_ACCOUNT_ID

    from localcloud.iam.requests import ArnContext

    templates = cloud.client("ec2").describe_launch_templates(
        LaunchTemplateNames=[settings.launch_template]
    )["LaunchTemplates"]
    values = {
        "AWS::Partition": "aws",
        "AWS::Region": cloud.region,
        "AWS::AccountId": DEFAULT_ACCOUNT_ID,
        **{name: str(value) for name, value in settings.__dict__.items()},
        **{f"function:{key}": name for key, name in FUNCTIONS.items()},
        "launch_template_id": str(templates[0]["LaunchTemplateId"]),
    }
    admin: dict[str, Any] = {}

    def admin_client(name: str) -> Any:
        if name not in admin:
            admin[name] = cloud.client(name)
        return admin[name]

    arns = ArnContext("aws", cloud.region, DEFAULT_ACCOUNT_ID)
    iam.bind(values, arns, state_machine_arn, admin_client)


def wire(cloud: Any, stack: LocalStack, handlers: Mapping[str, Handler] | None = None) -> None:
    """Hand the in-process Lambdas ``stack``'s clients and handlers (``handlers`` override
    some, until the next ``wire``), enable the S3 rule and store the default profile."""
    from lambdas import runtime

    runtime.configure(stack.services)
    for key, handler in {**stack.handlers, **(handlers or {})}.items():
        svc = principal_services(cloud, stack.settings, key)
        cloud.lambdas.register(
            FUNCTIONS[key], handler if svc is None else _as_principal(handler, svc)
        )
    _put_source_rule(stack.services.events, stack.settings)  # keeps the rule's targets
    stack.services.store.put_profile(stack.settings.default_profile, dict(stack.profile), 0.0)


def _topic(cloud: Any) -> str:
    return str(cloud.client("sns").create_topic(Name="lighthpc-missions")["TopicArn"])


def _buckets(cloud: Any, settings: Settings) -> None:
    s3 = cloud.client("s3")
    for name in (settings.source_bucket, settings.result_bucket):
        s3.create_bucket(Bucket=name)
    s3.put_bucket_versioning(
        Bucket=settings.source_bucket, VersioningConfiguration={"Status": "Enabled"}
    )
    s3.put_bucket_notification_configuration(
        Bucket=settings.source_bucket,
        NotificationConfiguration={"EventBridgeConfiguration": {}},
    )


def _tables(cloud: Any, settings: Settings) -> None:
    ddb = cloud.client("dynamodb")
    ddb.create_table(
        TableName=settings.mission_table,
        BillingMode="PAY_PER_REQUEST",
        AttributeDefinitions=[
            {"AttributeName": "missionId", "AttributeType": "S"},
            {"AttributeName": "executionArn", "AttributeType": "S"},
            {"AttributeName": "kind", "AttributeType": "S"},
            {"AttributeName": "createdAt", "AttributeType": "N"},
        ],
        KeySchema=[{"AttributeName": "missionId", "KeyType": "HASH"}],
        GlobalSecondaryIndexes=[
            {
                "IndexName": EXECUTION_INDEX,
                "KeySchema": [{"AttributeName": "executionArn", "KeyType": "HASH"}],
                "Projection": {"ProjectionType": "KEYS_ONLY"},
            },
            {
                "IndexName": MISSIONS_INDEX,
                "KeySchema": [
                    {"AttributeName": "kind", "KeyType": "HASH"},
                    {"AttributeName": "createdAt", "KeyType": "RANGE"},
                ],
                "Projection": {"ProjectionType": "ALL"},
            },
        ],
    )
    ddb.create_table(
        TableName=settings.trans_table,
        BillingMode="PAY_PER_REQUEST",
        AttributeDefinitions=[
            {"AttributeName": "missionId", "AttributeType": "S"},
            {"AttributeName": "shardId", "AttributeType": "S"},
        ],
        KeySchema=[
            {"AttributeName": "missionId", "KeyType": "HASH"},
            {"AttributeName": "shardId", "KeyType": "RANGE"},
        ],
    )


def _launch_template(cloud: Any, settings: Settings) -> None:
    ec2 = cloud.client("ec2")
    image = _local_image(ec2)
    ec2.create_launch_template(
        LaunchTemplateName=settings.launch_template,
        LaunchTemplateData={
            "ImageId": image,
            "InstanceInitiatedShutdownBehavior": "terminate",
            "MetadataOptions": {"HttpTokens": "required", "HttpPutResponseHopLimit": 1},
        },
    )


def _local_image(ec2: Any) -> str:
    """An Amazon Linux image from the emulator's catalog (the CDK resolves AL2023 via SSM)."""
    for pattern in ("al2023-ami-2023*", "amzn2-ami-*", "*"):
        images = ec2.describe_images(
            Owners=["amazon"], Filters=[{"Name": "name", "Values": [pattern]}]
        )["Images"]
        if images:
            return str(sorted(images, key=lambda i: i.get("CreationDate", ""))[-1]["ImageId"])
    return str(ec2.describe_images()["Images"][0]["ImageId"])


def _notice_queue(cloud: Any, topic_arn: str) -> str:
    """An SQS queue subscribed to the topic, so the local mode can show what SNS sent."""
    sqs = cloud.client("sqs")
    url = str(sqs.create_queue(QueueName="lighthpc-notices")["QueueUrl"])
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    cloud.client("sns").subscribe(
        TopicArn=topic_arn,
        Protocol="sqs",
        Endpoint=arn,
        Attributes={"RawMessageDelivery": "true"},
    )
    return url


def _state_machine(cloud: Any, arns: Mapping[str, str], topic_arn: str) -> str:
    definition = load_definition(placeholder_values(arns, topic_arn))
    role = _role(cloud)
    resp = cloud.client("stepfunctions").create_state_machine(
        name=STATE_MACHINE_NAME, definition=json.dumps(definition), roleArn=role
    )
    return str(resp["stateMachineArn"])


def _role(cloud: Any) -> str:
    """A role for the state machine and rule (the emulator checks only that it exists)."""
    iam = cloud.client("iam")
    try:
        return str(iam.get_role(RoleName=LOCAL_ROLE_NAME)["Role"]["Arn"])
    except iam.exceptions.NoSuchEntityException:
        trust = {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Effect": "Allow",
                    "Principal": {"Service": ["states.amazonaws.com", "events.amazonaws.com"]},
                    "Action": "sts:AssumeRole",
                }
            ],
        }
        role = iam.create_role(RoleName=LOCAL_ROLE_NAME, AssumeRolePolicyDocument=json.dumps(trust))
        return str(role["Role"]["Arn"])


def _source_rule_target(cloud: Any, state_machine_arn: str) -> None:
    cloud.client("events").put_targets(
        Rule=SOURCE_RULE_NAME,
        Targets=[
            {
                "Id": "mission",
                "Arn": state_machine_arn,
                "RoleArn": _role(cloud),
            }
        ],
    )


def _put_source_rule(events: Any, settings: Settings) -> None:
    events.put_rule(
        Name=SOURCE_RULE_NAME,
        EventPattern=json.dumps(source_event_pattern(settings)),
        State="ENABLED",
    )
