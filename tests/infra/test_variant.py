"""The optional knobs: an existing VPC, an e-mail subscription, an AMI parameter, ..."""

from __future__ import annotations

import json
from typing import Any

from tests.infra.conftest import PRIVATE_SUBNETS


def functions(variant: Any) -> list[dict[str, Any]]:
    return [
        r["Properties"]
        for r in variant.resources("AWS::Lambda::Function").values()
        if str(r["Properties"].get("Handler", "")).startswith("lambdas.")
    ]


def test_existing_vpc_private_subnets_are_used_and_no_vpc_is_created(variant: Any) -> None:
    assert not variant.resources("AWS::EC2::VPC")
    for fn in functions(variant):
        assert fn["Environment"]["Variables"]["LIGHTHPC_SUBNET_IDS"] == ",".join(PRIVATE_SUBNETS)
    (group,) = variant.resources("AWS::EC2::SecurityGroup").values()
    assert group["Properties"]["VpcId"] == "vpc-0abc12345def67890"


def test_email_subscription_and_runtime_and_prefix_come_from_context(variant: Any) -> None:
    (sub,) = variant.resources("AWS::SNS::Subscription").values()
    assert sub["Properties"]["Protocol"] == "email"
    assert sub["Properties"]["Endpoint"] == "ops@example.org"
    for fn in functions(variant):
        assert fn["Runtime"] == "python3.12"
        assert fn["Environment"]["Variables"]["LIGHTHPC_SOURCE_PREFIX"] == "drop/"
    rule = next(
        r
        for r in variant.resources("AWS::Events::Rule").values()
        if r["Properties"]["EventPattern"]["source"] == ["aws.s3"]
    )
    assert rule["Properties"]["EventPattern"]["detail"]["object"] == {"key": [{"prefix": "drop/"}]}


def test_ami_parameter_execution_data_and_removal_policy(variant: Any) -> None:
    (lt,) = variant.resources("AWS::EC2::LaunchTemplate").values()
    image = lt["Properties"]["LaunchTemplateData"]["ImageId"]["Ref"]
    assert variant.template["Parameters"][image]["Default"] == "/golden/lighthpc-node-ami"
    (machine,) = variant.resources("AWS::StepFunctions::StateMachine").values()
    assert machine["Properties"]["LoggingConfiguration"]["IncludeExecutionData"] is True
    for table in variant.resources("AWS::DynamoDB::Table").values():
        assert table["DeletionPolicy"] == "Delete"
    assert not variant.resources("AWS::ApiGateway::Account")  # apiCloudWatchRole=false


def test_default_profile_carries_the_context_instance_types_and_max_nodes(variant: Any) -> None:
    (seed,) = variant.resources("Custom::AWS").values()
    create = json.dumps(seed["Properties"]["Create"])
    assert '\\"maxNodes\\":{\\"N\\":\\"8\\"}' in create
    assert "c6i.xlarge" in create and "m6i.xlarge" in create
