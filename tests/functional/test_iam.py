"""The embedded cloud holds each principal to the grants of the synthesized template."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from botocore.exceptions import ClientError

from localcloud.emulator import EmbeddedCloud
from localcloud.iam import principal_key
from localcloud.stack import LocalStack, _bind_iam, local_services
from workflow.aws.ec2 import node_tags


def _as(cloud: EmbeddedCloud, stack: LocalStack, principal: str) -> Any:
    return local_services(cloud, stack.settings, principal_key(principal))


def _instance(stack: LocalStack) -> str:
    resp = stack.services.ec2.run_instances(
        ImageId="ami-12c6146b",
        MinCount=1,
        MaxCount=1,
        TagSpecifications=[{"ResourceType": "instance", "Tags": node_tags("m-iam", "u0000", 1)}],
    )
    return str(resp["Instances"][0]["InstanceId"])


def test_node_may_not_write_a_profile_it_was_not_granted(
    cloud: EmbeddedCloud, stack: LocalStack
) -> None:
    node = _as(cloud, stack, "node")
    with pytest.raises(ClientError) as refused:
        node.ddb.put_item(TableName=stack.settings.mission_table, Item={"missionId": {"S": "x"}})
    assert refused.value.response["Error"]["Code"] == "AccessDeniedException"
    assert refused.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert "dynamodb:PutItem" in str(refused.value)


def test_removed_send_task_success_grant_refuses_the_nodes_report(
    cloud: EmbeddedCloud, stack: LocalStack
) -> None:
    assert cloud.iam is not None
    saved = copy.deepcopy(cloud.iam.snapshot)
    for statement in cloud.iam.snapshot["principals"]["node"]["statements"]:
        statement["Action"] = [a for a in statement["Action"] if a != "states:SendTaskSuccess"]
    _bind_iam(cloud, stack.settings, stack.state_machine_arn)
    try:
        node = _as(cloud, stack, "node")
        with pytest.raises(ClientError) as refused:
            node.sfn.send_task_success(taskToken="t" * 40, output="{}")
        assert refused.value.response["Error"]["Code"] == "AccessDeniedException"
        with pytest.raises(ClientError) as unknown:
            node.sfn.send_task_heartbeat(taskToken="t" * 40)
        assert unknown.value.response["Error"]["Code"] != "AccessDeniedException"
    finally:
        cloud.iam.snapshot = saved
        _bind_iam(cloud, stack.settings, stack.state_machine_arn)


def test_terminate_is_refused_for_an_untagged_instance(
    cloud: EmbeddedCloud, stack: LocalStack
) -> None:
    untagged = stack.services.ec2.run_instances(ImageId="ami-12c6146b", MinCount=1, MaxCount=1)
    iid = untagged["Instances"][0]["InstanceId"]
    with pytest.raises(ClientError) as refused:
        _as(cloud, stack, "node_watch").ec2.terminate_instances(InstanceIds=[iid])
    assert refused.value.response["Error"]["Code"] == "UnauthorizedOperation"
    _as(cloud, stack, "node_watch").ec2.terminate_instances(InstanceIds=[_instance(stack)])


def test_light_scheduler_can_terminate_the_node_of_a_failed_unit(
    cloud: EmbeddedCloud, stack: LocalStack
) -> None:
    _as(cloud, stack, "light_scheduler").compute.terminate([_instance(stack)])
