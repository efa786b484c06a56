"""The embedded cloud holds each principal to the grants of the synthesized template."""

from __future__ import annotations

import pytest
from botocore.exceptions import ClientError

from localcloud.emulator import EmbeddedCloud
from localcloud.stack import LocalStack
from tests.functional.conftest import as_principal, without_grant
from workflow.aws.ec2 import node_tags

_as = as_principal


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
    with without_grant(cloud, stack, "node", "states:SendTaskSuccess"):
        node = _as(cloud, stack, "node")
        with pytest.raises(ClientError) as refused:
            node.sfn.send_task_success(taskToken="t" * 40, output="{}")
        assert refused.value.response["Error"]["Code"] == "AccessDeniedException"
        with pytest.raises(ClientError) as unknown:
            node.sfn.send_task_heartbeat(taskToken="t" * 40)
        assert unknown.value.response["Error"]["Code"] != "AccessDeniedException"


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
