"""The narrowed node role (issue 12 §9): a node writes its outputs and its unit's items, and
nothing a mission relies on besides: not the manifest, not a final result, not a new item."""

from __future__ import annotations

from typing import Any

import pytest
from botocore.exceptions import ClientError

from localcloud.emulator import EmbeddedCloud
from localcloud.iam import principal_key
from localcloud.stack import LocalStack, local_services
from workflow.keys import checkpoint_key, final_result_key, manifest_key, shard_result_key

MISSION = "m-node-role"


def _node(cloud: EmbeddedCloud, stack: LocalStack) -> Any:
    return local_services(cloud, stack.settings, principal_key("node"))


def _refused(call: Any, **kwargs: Any) -> str:
    with pytest.raises(ClientError) as refused:
        call(**kwargs)
    return str(refused.value.response["Error"]["Code"])


def test_node_writes_shard_results_and_checkpoints(cloud: EmbeddedCloud, stack: LocalStack) -> None:
    s3 = _node(cloud, stack).s3
    bucket = stack.settings.result_bucket
    for key in (shard_result_key(MISSION, "s0001", 1, ".out"), checkpoint_key(MISSION, "s0001", 1)):
        s3.put_object(Bucket=bucket, Key=key, Body=b"x", Tagging="lighthpc:kind=checkpoint")
        assert s3.get_object(Bucket=bucket, Key=key)["Body"].read() == b"x"
    prefix = checkpoint_key(MISSION, "s0001", 1).rsplit("/", 1)[0] + "/"
    assert s3.list_objects_v2(Bucket=bucket, Prefix=prefix)["KeyCount"] == 1


def test_node_may_not_overwrite_the_manifest_or_a_final_result(
    cloud: EmbeddedCloud, stack: LocalStack
) -> None:
    s3 = _node(cloud, stack).s3
    bucket = stack.settings.result_bucket
    for key in (manifest_key(MISSION), final_result_key(MISSION, ".out")):
        assert _refused(s3.put_object, Bucket=bucket, Key=key, Body=b"forged") == "AccessDenied"
    assert _refused(s3.list_objects_v2, Bucket=bucket, Prefix="missions/") == "AccessDenied"


def test_node_may_not_create_delete_or_scan_transaction_items(
    cloud: EmbeddedCloud, stack: LocalStack
) -> None:
    ddb = _node(cloud, stack).ddb
    table = stack.settings.trans_table
    key = {"missionId": {"S": MISSION}, "shardId": {"S": "S#0001"}}
    denied = "AccessDeniedException"
    assert _refused(ddb.put_item, TableName=table, Item=key) == denied
    assert _refused(ddb.delete_item, TableName=table, Key=key) == denied
    assert _refused(ddb.scan, TableName=table) == denied
    batch = {table: [{"PutRequest": {"Item": key}}]}
    assert _refused(ddb.batch_write_item, RequestItems=batch) == denied
