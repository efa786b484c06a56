"""What the synthesized template must contain, with its security properties."""

from __future__ import annotations

import json
import re
import shlex
from typing import Any

import pytest
from aws_cdk.assertions import Match, Template
from lighthpc_infra.bundling import node_install_commands

from workflow.asl import placeholders, read_definition, substitute, validate_structure
from workflow.records import EXECUTION_INDEX, MISSIONS_INDEX
from workflow.settings import Settings
from workflow.stack_outputs import (
    API_URL,
    LOG_GROUPS,
    NODE_LOG_GROUP,
    SETTINGS_OUTPUTS,
    STATE_MACHINE_ARN,
)
from workflow.watch import ENDED_EXECUTION, EXECUTION_CHANGE, GONE_STATES, SPOT_WARNING

HANDLERS = {
    "lambdas.light_scheduler.handler",
    "lambdas.rslt_proc.handler",
    "lambdas.mission_cfg.handler",
    "lambdas.node_watch.handler",
}
LITERAL_AWS = re.compile(r"arn:aws|\b\d{12}\b|\b(us|eu|ap|sa|ca|me|af)-[a-z]+-\d\b")


@pytest.fixture(scope="module")
def template(synth: Any) -> Template:
    return Template.from_json(synth.template)


def one(synth: Any, type_name: str, **match: Any) -> dict[str, Any]:
    found = [
        r
        for r in synth.resources(type_name).values()
        if all(r["Properties"].get(k) == v for k, v in match.items())
    ]
    assert len(found) == 1, f"expected one {type_name} matching {match}, got {len(found)}"
    resource: dict[str, Any] = found[0]
    return resource


def our_functions(synth: Any) -> list[dict[str, Any]]:
    return [
        r
        for r in synth.resources("AWS::Lambda::Function").values()
        if r["Properties"].get("Handler") in HANDLERS
    ]


# ---- storage ---------------------------------------------------------------------------


def test_every_bucket_is_private_encrypted_and_tls_only(synth: Any, template: Template) -> None:
    template.resource_count_is("AWS::S3::Bucket", 3)
    template.all_resources_properties(
        "AWS::S3::Bucket",
        {
            "PublicAccessBlockConfiguration": {
                "BlockPublicAcls": True,
                "BlockPublicPolicy": True,
                "IgnorePublicAcls": True,
                "RestrictPublicBuckets": True,
            },
            "BucketEncryption": {
                "ServerSideEncryptionConfiguration": [
                    {"ServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}
                ]
            },
        },
    )
    buckets = set(synth.resources("AWS::S3::Bucket"))
    tls_only = {
        p["Properties"]["Bucket"]["Ref"]
        for p in synth.resources("AWS::S3::BucketPolicy").values()
        if any(
            s["Effect"] == "Deny" and s["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
            for s in p["Properties"]["PolicyDocument"]["Statement"]
        )
    }
    assert tls_only == buckets


def test_source_bucket_notifies_eventbridge_and_logs_access(synth: Any) -> None:
    source = [
        r
        for r in synth.resources("AWS::S3::Bucket").values()
        if "NotificationConfiguration" in r["Properties"]
    ]
    assert len(source) == 1
    props = source[0]["Properties"]
    assert props["NotificationConfiguration"] == {
        "EventBridgeConfiguration": {"EventBridgeEnabled": True}
    }
    assert props["VersioningConfiguration"] == {"Status": "Enabled"}
    logged = [
        r
        for r in synth.resources("AWS::S3::Bucket").values()
        if "LoggingConfiguration" in r["Properties"]
    ]
    assert len(logged) == 2  # source and results log to the third (the log bucket)


def test_result_bucket_expires_checkpoints_and_shard_results(template: Template) -> None:
    template.has_resource_properties(
        "AWS::S3::Bucket",
        {
            "LifecycleConfiguration": {
                "Rules": Match.array_with(
                    [
                        Match.object_like(
                            {
                                "Id": "expire-checkpoints",
                                "Prefix": "missions/",
                                "TagFilters": [{"Key": "lighthpc:kind", "Value": "checkpoint"}],
                                "ExpirationInDays": 7,
                                "Status": "Enabled",
                            }
                        ),
                        Match.object_like(
                            {
                                "Id": "expire-shard-results",
                                "Prefix": "missions/",
                                "TagFilters": [{"Key": "lighthpc:kind", "Value": "shard-result"}],
                                "ExpirationInDays": 30,
                            }
                        ),
                    ]
                )
            }
        },
    )


def test_tables_are_on_demand_with_pitr_ttl_and_the_execution_index(synth: Any) -> None:
    tables = list(synth.resources("AWS::DynamoDB::Table").values())
    assert len(tables) == 2
    for table in tables:
        p = table["Properties"]
        assert p["BillingMode"] == "PAY_PER_REQUEST"
        assert p["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": True}
        assert p["TimeToLiveSpecification"] == {"AttributeName": "expiresAt", "Enabled": True}
        assert table["DeletionPolicy"] == "Retain"
    keys = {
        tuple(k["AttributeName"] for k in t["Properties"]["KeySchema"]): t["Properties"]
        for t in tables
    }
    assert set(keys) == {("missionId",), ("missionId", "shardId")}
    assert keys[("missionId",)]["GlobalSecondaryIndexes"] == [
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
    ]


# ---- functions -------------------------------------------------------------------------


def test_four_python_functions_get_every_setting_by_name_not_by_literal(synth: Any) -> None:
    functions = our_functions(synth)
    assert {f["Properties"]["Handler"] for f in functions} == HANDLERS
    expected_keys = set(Settings().as_env()) | {
        "POWERTOOLS_SERVICE_NAME",
        "POWERTOOLS_METRICS_NAMESPACE",
    }
    for fn in functions:
        p = fn["Properties"]
        assert p["Runtime"] == "python3.12"
        assert p["Architectures"] == ["x86_64"]
        env = p["Environment"]["Variables"]
        assert expected_keys <= set(env)
        assert env["POWERTOOLS_SERVICE_NAME"] == "lighthpc"
        for key, value in env.items():
            assert not LITERAL_AWS.search(json.dumps(value)), f"{key} holds a literal: {value}"
        assert "S3Bucket" in p["Code"]  # an asset, never inline code


def test_lambda_environment_points_at_the_stack_resources(synth: Any) -> None:
    env = our_functions(synth)[0]["Properties"]["Environment"]["Variables"]
    refs = {key: value.get("Ref") for key, value in env.items() if isinstance(value, dict)}
    types = {key: synth.template["Resources"][ref]["Type"] for key, ref in refs.items() if ref}
    assert types == {
        "LIGHTHPC_MISSION_TABLE": "AWS::DynamoDB::Table",
        "LIGHTHPC_TRANS_TABLE": "AWS::DynamoDB::Table",
        "LIGHTHPC_SOURCE_BUCKET": "AWS::S3::Bucket",
        "LIGHTHPC_RESULT_BUCKET": "AWS::S3::Bucket",
        "LIGHTHPC_TOPIC_ARN": "AWS::SNS::Topic",
        "LIGHTHPC_NODE_LOG_GROUP": "AWS::Logs::LogGroup",
    }
    assert env["LIGHTHPC_SOURCE_PREFIX"] == "incoming/"
    assert env["LIGHTHPC_LAUNCH_TEMPLATE"] == "LightHpcSfn-node"
    lt = one(synth, "AWS::EC2::LaunchTemplate")
    assert lt["Properties"]["LaunchTemplateName"] == env["LIGHTHPC_LAUNCH_TEMPLATE"]
    assert "Fn::Join" in env["LIGHTHPC_SUBNET_IDS"]  # the subnets of the new VPC


# ---- state machine ---------------------------------------------------------------------


def test_definition_is_inline_and_every_placeholder_is_substituted(synth: Any) -> None:
    machine = one(synth, "AWS::StepFunctions::StateMachine")
    p = machine["Properties"]
    assert isinstance(p["DefinitionString"], str)
    assert "DefinitionS3Location" not in p
    assert json.loads(p["DefinitionString"]) == json.loads(read_definition())
    subs = p["DefinitionSubstitutions"]
    assert set(subs) == placeholders(read_definition())
    resolved = substitute(p["DefinitionString"], {k: f"resolved-{k}" for k in subs})
    assert "${" not in resolved
    validate_structure(json.loads(resolved))
    resources = synth.template["Resources"]
    assert (
        resources[subs["LightSchedulerFunctionArn"]["Fn::GetAtt"][0]]["Properties"]["Handler"]
        == "lambdas.light_scheduler.handler"
    )
    assert (
        resources[subs["RsltProcFunctionArn"]["Fn::GetAtt"][0]]["Properties"]["Handler"]
        == "lambdas.rslt_proc.handler"
    )
    assert resources[subs["MissionTopicArn"]["Ref"]]["Type"] == "AWS::SNS::Topic"


def test_state_machine_logs_everything_but_execution_data_and_traces(synth: Any) -> None:
    p = one(synth, "AWS::StepFunctions::StateMachine")["Properties"]
    assert p["StateMachineName"] == "lighthpc-mission"
    assert p["StateMachineType"] == "STANDARD"
    assert p["LoggingConfiguration"]["Level"] == "ALL"
    assert p["LoggingConfiguration"]["IncludeExecutionData"] is False
    assert p["TracingConfiguration"] == {"Enabled": True}


# ---- events ----------------------------------------------------------------------------


def test_s3_rule_uses_the_local_pattern_and_passes_the_raw_event(synth: Any) -> None:
    rules = synth.resources("AWS::Events::Rule")
    source = [r for r in rules.values() if r["Properties"]["EventPattern"]["source"] == ["aws.s3"]]
    assert len(source) == 1
    pattern = source[0]["Properties"]["EventPattern"]
    assert pattern["detail-type"] == ["Object Created"]
    assert pattern["detail"]["object"] == {"key": [{"prefix": "incoming/"}]}
    bucket_ref = pattern["detail"]["bucket"]["name"][0]["Ref"]
    assert synth.template["Resources"][bucket_ref]["Properties"].get("NotificationConfiguration")
    (target,) = source[0]["Properties"]["Targets"]
    assert synth.template["Resources"][target["Arn"]["Ref"]]["Type"] == (
        "AWS::StepFunctions::StateMachine"
    )
    assert "Input" not in target and "InputTransformer" not in target and "InputPath" not in target
    assert "RoleArn" in target


def test_node_watch_hears_spot_warnings_lost_instances_and_ended_executions(synth: Any) -> None:
    patterns = [
        r["Properties"]["EventPattern"] for r in synth.resources("AWS::Events::Rule").values()
    ]
    by_type = {p["detail-type"][0]: p for p in patterns}
    assert by_type[SPOT_WARNING]["source"] == ["aws.ec2"]
    gone = by_type["EC2 Instance State-change Notification"]["detail"]["state"]
    assert set(gone) == set(GONE_STATES) == {"shutting-down", "terminated", "stopping", "stopped"}
    ended = by_type[EXECUTION_CHANGE]["detail"]
    assert set(ended["status"]) == set(ENDED_EXECUTION) == {"ABORTED", "FAILED", "TIMED_OUT"}
    machine_id = next(iter(synth.resources("AWS::StepFunctions::StateMachine")))
    assert ended["stateMachineArn"] == [{"Ref": machine_id}]
    watch_targets = [
        r["Properties"]["Targets"][0]["Arn"]["Fn::GetAtt"][0]
        for r in synth.resources("AWS::Events::Rule").values()
        if r["Properties"]["EventPattern"]["source"] != ["aws.s3"]
    ]
    assert len(watch_targets) == 3
    for logical_id in watch_targets:
        assert synth.template["Resources"][logical_id]["Properties"]["Handler"] == (
            "lambdas.node_watch.handler"
        )


# ---- compute ---------------------------------------------------------------------------


def test_launch_template_enforces_imdsv2_encryption_and_terminate(synth: Any) -> None:
    data = one(synth, "AWS::EC2::LaunchTemplate")["Properties"]["LaunchTemplateData"]
    assert data["MetadataOptions"] == {
        "HttpEndpoint": "enabled",
        "HttpTokens": "required",
        "HttpPutResponseHopLimit": 1,
        "InstanceMetadataTags": "enabled",
    }
    assert data["InstanceInitiatedShutdownBehavior"] == "terminate"
    (volume,) = data["BlockDeviceMappings"]
    assert volume["Ebs"]["Encrypted"] is True
    image = data["ImageId"]["Ref"]
    assert synth.template["Parameters"][image]["Default"].startswith(
        "/aws/service/ami-amazon-linux-latest/al2023-ami-"
    )


def test_user_data_installs_the_agent_from_the_asset_and_runs_it_under_systemd(
    synth: Any,
) -> None:
    data = one(synth, "AWS::EC2::LaunchTemplate")["Properties"]["LaunchTemplateData"]
    parts = data["UserData"]["Fn::Base64"]["Fn::Join"][1]
    script = "".join(p if isinstance(p, str) else "<token>" for p in parts)
    assert "aws s3 cp 's3://<token>/" in script and ".zip'" in script
    install = [
        shlex.join(argv)
        for argv in node_install_commands(
            package_dir="/opt/lighthpc/pkg", venv="/opt/lighthpc/venv", python="python3.11"
        )
    ]
    at = [script.index(line) for line in install]  # each present: ValueError otherwise
    assert at == sorted(at) and at[-1] < script.index("systemctl enable --now")
    assert "uv pip install --quiet --offline --no-index" in script  # uv, never the network
    assert "pip install" not in script.replace("uv pip install", "")
    assert "ExecStart=/opt/lighthpc/venv/bin/lighthpc-node" in script
    assert "EnvironmentFile=/etc/lighthpc/node.env" in script
    assert "systemctl enable --now lighthpc-node.service" in script
    assert "shutdown -P +360" in script  # the 6 h maximum lifetime
    for key in ("LIGHTHPC_MISSION_TABLE", "LIGHTHPC_TRANS_TABLE", "LIGHTHPC_RESULT_BUCKET"):
        assert f"\n{key}=<token>\n" in script


def test_nodes_ship_to_their_own_log_group_and_may_only_write_its_streams(
    synth: Any,
) -> None:
    resources = synth.template["Resources"]
    lt = one(synth, "AWS::EC2::LaunchTemplate")["Properties"]["LaunchTemplateData"]
    parts = lt["UserData"]["Fn::Base64"]["Fn::Join"][1]
    (at,) = [
        i
        for i, p in enumerate(parts)
        if isinstance(p, str) and p.endswith("\nLIGHTHPC_NODE_LOG_GROUP=")
    ]
    group = parts[at + 1]["Ref"]  # the env file names the group by reference, never a literal
    props = resources[group]["Properties"]
    assert resources[group]["Type"] == "AWS::Logs::LogGroup"
    assert "LogGroupName" not in props  # CloudFormation's name: new at every stack creation
    function_groups = {
        f["Properties"]["LoggingConfig"]["LogGroup"]["Ref"] for f in our_functions(synth)
    }
    assert group not in function_groups
    for other in function_groups:  # retention and retained-with-the-data like the Lambdas'
        assert props.get("RetentionInDays") == resources[other]["Properties"]["RetentionInDays"]
        assert resources[group]["DeletionPolicy"] == resources[other]["DeletionPolicy"]
    assert synth.template["Outputs"][NODE_LOG_GROUP]["Value"] == {"Ref": group}

    (node_policy,) = [
        r
        for r in synth.resources("AWS::IAM::Policy").values()
        if [ref["Ref"] for ref in r["Properties"]["Roles"]] == [lt_role(synth)]
    ]
    (grant,) = [
        s
        for s in node_policy["Properties"]["PolicyDocument"]["Statement"]
        if "logs:" in json.dumps(s["Action"])
    ]  # the node's only Logs statement
    assert sorted(grant["Action"]) == ["logs:CreateLogStream", "logs:PutLogEvents"]
    arn = grant["Resource"]["Fn::Join"][1]
    assert {"Ref": group} in arn and arn[-1] == ":log-stream:*"
    assert ":logs:" in "".join(p for p in arn if isinstance(p, str))


def lt_role(synth: Any) -> str:
    """The role of the launch template's instance profile: the node role."""
    lt = one(synth, "AWS::EC2::LaunchTemplate")["Properties"]["LaunchTemplateData"]
    profile = lt["IamInstanceProfile"]["Arn"]["Fn::GetAtt"][0]
    (role,) = synth.template["Resources"][profile]["Properties"]["Roles"]
    return str(role["Ref"])


def test_node_security_group_has_no_inbound_rule(synth: Any) -> None:
    assert not synth.resources("AWS::EC2::SecurityGroupIngress")
    node_groups = [
        g
        for g in synth.resources("AWS::EC2::SecurityGroup").values()
        if "lightHPC nodes" in g["Properties"]["GroupDescription"]
    ]
    assert len(node_groups) == 1
    props = node_groups[0]["Properties"]
    assert "SecurityGroupIngress" not in props
    assert [
        (e["IpProtocol"], e["FromPort"], e["ToPort"]) for e in props["SecurityGroupEgress"]
    ] == [("tcp", 443, 443)]


def test_new_vpc_has_no_nat_but_s3_and_dynamodb_endpoints_and_flow_logs(synth: Any) -> None:
    assert not synth.resources("AWS::EC2::NatGateway")
    endpoints = synth.resources("AWS::EC2::VPCEndpoint").values()
    services = {json.dumps(e["Properties"]["ServiceName"]) for e in endpoints}
    assert len(services) == 2
    assert any(".s3" in s for s in services) and any(".dynamodb" in s for s in services)
    assert all(e["Properties"]["VpcEndpointType"] == "Gateway" for e in endpoints)
    assert len(synth.resources("AWS::EC2::FlowLog")) == 1


# ---- notifications and API -------------------------------------------------------------


def test_topic_is_kms_encrypted_and_tls_only(synth: Any) -> None:
    topic = one(synth, "AWS::SNS::Topic")
    key_id = topic["Properties"]["KmsMasterKeyId"]["Fn::GetAtt"][0]
    key = synth.template["Resources"][key_id]
    assert key["Type"] == "AWS::KMS::Key" and key["Properties"]["EnableKeyRotation"] is True
    (policy,) = synth.resources("AWS::SNS::TopicPolicy").values()
    statements = policy["Properties"]["PolicyDocument"]["Statement"]
    assert any(
        s["Effect"] == "Deny" and s["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
        for s in statements
    )
    assert not synth.resources("AWS::SNS::Subscription")  # no notifyEmail in cdk.json


def test_api_methods_all_require_iam_and_are_validated(synth: Any, template: Template) -> None:
    methods = list(synth.resources("AWS::ApiGateway::Method").values())
    routes = {
        (m["Properties"]["HttpMethod"], m["Properties"]["ResourceId"]["Ref"]) for m in methods
    }
    assert len(routes) == 5  # GET /profiles, GET|PUT|DELETE /profiles/{name}, POST /missions
    for m in methods:
        assert m["Properties"]["AuthorizationType"] == "AWS_IAM"
        assert "RequestValidatorId" in m["Properties"]
    template.has_resource_properties(
        "AWS::ApiGateway::RequestValidator",
        {"ValidateRequestBody": True, "ValidateRequestParameters": True},
    )
    template.has_resource_properties(
        "AWS::ApiGateway::Stage",
        {"AccessLogSetting": Match.object_like({"DestinationArn": Match.any_value()})},
    )
    paths = {
        r["Properties"]["PathPart"] for r in synth.resources("AWS::ApiGateway::Resource").values()
    }
    assert paths == {"profiles", "{name}", "missions"}


def test_post_missions_starts_the_state_machine_directly(synth: Any) -> None:
    post = one(synth, "AWS::ApiGateway::Method", HttpMethod="POST")["Properties"]
    integration = post["Integration"]
    assert integration["Type"] == "AWS"
    assert "states:action/StartExecution" in json.dumps(integration["Uri"])
    assert integration["PassthroughBehavior"] == "NEVER"
    template = json.dumps(integration["RequestTemplates"]["application/json"])
    assert "stateMachineArn" in template and "escapeJavaScript" in template
    role_id = integration["Credentials"]["Fn::GetAtt"][0]
    machine_id = next(iter(synth.resources("AWS::StepFunctions::StateMachine")))
    grants = [
        s
        for p in synth.resources("AWS::IAM::Policy").values()
        if {"Ref": role_id} in p["Properties"]["Roles"]
        for s in p["Properties"]["PolicyDocument"]["Statement"]
    ]
    assert grants == [
        {"Action": "states:StartExecution", "Effect": "Allow", "Resource": {"Ref": machine_id}}
    ]
    model_ref = post["RequestModels"]["application/json"]["Ref"]
    schema = synth.template["Resources"][model_ref]["Properties"]["Schema"]
    assert schema["required"] == ["input"] and schema["additionalProperties"] is False
    assert "shards" in schema["properties"]["params"]["properties"]


# ---- outputs and the default profile ---------------------------------------------------


def test_outputs_are_the_names_the_cli_reads(synth: Any) -> None:
    outputs = synth.template["Outputs"]
    assert set(outputs) == {*SETTINGS_OUTPUTS, STATE_MACHINE_ARN, API_URL, LOG_GROUPS}
    # lighthpc logs reads exactly the four functions' own log groups
    joined = outputs[LOG_GROUPS]["Value"]["Fn::Join"]
    groups = synth.resources("AWS::Logs::LogGroup")
    function_groups = {
        f["Properties"]["LoggingConfig"]["LogGroup"]["Ref"] for f in our_functions(synth)
    }
    assert joined[0] == "," and {ref["Ref"] for ref in joined[1]} == function_groups
    assert function_groups <= set(groups)


def test_default_profile_is_seeded_from_the_context(synth: Any) -> None:
    (seed,) = synth.resources("Custom::AWS").values()
    create = json.dumps(seed["Properties"]["Create"])
    assert "putItem" in create and "CONFIG#default" in create
    assert '\\"maxNodes\\":{\\"N\\":\\"4\\"}' in create
