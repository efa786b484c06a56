"""Context parsing, output names and the bundlers' pip commands (no synthesis)."""

from __future__ import annotations

import json
from dataclasses import fields
from pathlib import Path
from typing import Any

import pytest

from workflow.settings import Settings
from workflow.stack_outputs import (
    STATE_MACHINE_ARN,
    missing_outputs,
    outputs_for,
    settings_from_outputs,
)

INFRA = Path(__file__).resolve().parents[2] / "infra"


class FakeNode:
    def __init__(self, context: dict[str, Any]) -> None:
        self.context = context

    def try_get_context(self, key: str) -> Any:
        return self.context.get(key)


def test_every_context_key_in_cdk_json_is_a_knob() -> None:
    from lighthpc_infra.config import InfraConfig, context_key

    context = json.loads((INFRA / "cdk.json").read_text())["context"]
    ours = {k for k in context if not k.startswith(("@", "aws:", "aws-cdk:"))}
    knobs = {context_key(f.name) for f in fields(InfraConfig)}
    assert ours <= knobs
    assert InfraConfig.from_context(FakeNode(context)) == InfraConfig()  # type: ignore[arg-type]


def test_command_line_strings_are_coerced() -> None:
    from lighthpc_infra.config import InfraConfig

    config = InfraConfig.from_context(
        FakeNode(  # type: ignore[arg-type]
            {
                "maxNodes": "8",
                "maxConcurrentNodes": "3",
                "instanceTypes": "c6i.xlarge, m6i.xlarge",
                "subnetIds": '["subnet-0aaa1111bbbb2222c"]',
                "vpcId": "vpc-0abc12345def67890",
                "logExecutionData": "true",
                "nodeMaxLifetimeHours": "1.5",
            }
        )
    )
    assert config.max_nodes == 8
    assert config.max_concurrent_nodes == 3
    assert config.instance_types == ("c6i.xlarge", "m6i.xlarge")
    assert config.subnet_ids == ("subnet-0aaa1111bbbb2222c",)
    assert config.log_execution_data is True
    assert config.node_max_lifetime_seconds == 5400
    assert config.default_profile_params() == {
        "instanceTypes": ["c6i.xlarge", "m6i.xlarge"],
        "maxNodes": 8,
    }


@pytest.mark.parametrize(
    ("context", "says"),
    [
        ({"maxNodes": "many"}, "maxNodes must be an integer"),
        ({"maxNodes": 0}, "context.maxNodes"),
        ({"maxConcurrentNodes": -1}, "maxConcurrentNodes >= 0"),
        ({"instanceTypes": "c6i.lrage"}, "unknown instance type(s) c6i.lrage"),
        ({"vpcId": "default"}, "vpcId must be vpc-"),
        ({"subnetIds": "subnet-0aaa1111bbbb2222c"}, "subnetIds needs vpcId"),
        ({"lambdaPython": "3.9"}, "lambdaPython"),
        ({"sourcePrefix": "incoming"}, "sourcePrefix must end with '/'"),
        ({"retainData": "perhaps"}, "retainData must be true or false"),
        ({"notifyEmail": "nobody"}, "notifyEmail"),
    ],
)
def test_bad_context_is_refused_with_the_key_named(context: dict[str, Any], says: str) -> None:
    from lighthpc_infra.config import ConfigError, InfraConfig

    with pytest.raises(ConfigError, match=None) as refused:
        InfraConfig.from_context(FakeNode(context))  # type: ignore[arg-type]
    assert says in str(refused.value)


def test_outputs_round_trip_into_the_settings_the_lambdas_get() -> None:
    settings = Settings(
        mission_table="t-m",
        trans_table="t-t",
        source_bucket="src",
        source_prefix="drop/",
        result_bucket="res",
        topic_arn="arn:aws:sns:eu-west-1:123456789012:t",
        launch_template="LightHpcSfn-node",
        subnet_ids=("subnet-a", "subnet-b"),
        node_max_lifetime_seconds=3600,
        default_profile="gpu",
    )
    outputs = outputs_for(settings, "arn:aws:states:eu-west-1:123456789012:stateMachine:m")
    assert settings_from_outputs(outputs) == settings
    assert missing_outputs(outputs) == []
    assert missing_outputs({STATE_MACHINE_ARN: "x"}) == [
        "MissionTableName",
        "ResultBucketName",
        "SourceBucketName",
        "TransTableName",
    ]
    assert "NodeSubnetIds" not in outputs_for(Settings(), "arn")  # empty values are left out


def test_manylinux_platforms_stop_at_the_runtime_glibc() -> None:
    from lighthpc_infra.bundling import manylinux_platforms

    tags = manylinux_platforms(26)
    assert tags[0] == "manylinux_2_26_x86_64"
    assert "manylinux_2_27_x86_64" not in tags and "manylinux_2_28_x86_64" not in tags
    assert tags[-2:] == ["manylinux_2_17_x86_64", "manylinux2014_x86_64"]
    assert manylinux_platforms(34)[0] == "manylinux_2_34_x86_64"


def test_lambda_pip_command_targets_the_runtime_with_pinned_runtime_dependencies() -> None:
    from lighthpc_infra.bundling import LambdaBundling, runtime_requirements

    requirements = runtime_requirements()
    assert requirements and all("==" in r for r in requirements)
    assert not any(r.startswith(("moto", "pytest", "aws-cdk-lib")) for r in requirements)
    command = LambdaBundling(project_root=Path("."), python_version="3.11", glibc_minor=26).command(
        "/out"
    )
    joined = " ".join(command)
    assert "install" in command and "--target /out" in joined
    assert "--only-binary=:all: --implementation cp --python-version 3.11" in joined
    assert "--platform=manylinux2014_x86_64" in command
    assert command[-len(requirements) :] == requirements


def test_prune_keeps_the_handlers_imports_and_drops_what_lambda_provides(tmp_path: Path) -> None:
    from lighthpc_infra.bundling import prune_bundle

    for rel in (
        "boto3/__init__.py",
        "botocore/__init__.py",
        "boto3-1.44.8.dist-info/METADATA",
        "PIL/__init__.py",
        "rdkit/Contrib/x.py",
        "rdkit/Chem/__init__.py",
        "numpy/_core/tests/test_x.py",
        "numpy/__init__.py",
        "pydantic/__init__.py",
        "jmespath/__init__.py",
    ):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text("x")
    prune_bundle(tmp_path)
    left = sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*.py"))
    assert left == [
        "jmespath/__init__.py",
        "numpy/__init__.py",
        "pydantic/__init__.py",
        "rdkit/Chem/__init__.py",
    ]


def test_log_retention_rounds_up_to_a_cloudwatch_value() -> None:
    from aws_cdk import aws_logs as logs
    from lighthpc_infra.stack import log_retention

    assert log_retention(30) == logs.RetentionDays.ONE_MONTH
    assert log_retention(45) == logs.RetentionDays.TWO_MONTHS
    assert log_retention(100_000) == logs.RetentionDays.TEN_YEARS
