"""Nodes that stop before their unit ends: interrupted, expired, killed or superseded.

REAL ``lighthpc-node`` processes on the embedded cloud, as in ``test_node_agent.py``. Each
test stops a node mid-shard and checks that attempt 2 resumes from the checkpoint, that the
result equals the one-piece search, and that a dead or superseded node reports nothing.
"""

from __future__ import annotations

import os
import signal
from functools import partial
from pathlib import Path
from typing import Any

import pytest
from boto3.dynamodb.types import TypeDeserializer

from localcloud.emulator import EmbeddedCloud
from localcloud.pool import LocalNodePool, NodeHandle
from localcloud.stack import LocalStack
from node_agent.agent import ExitCode
from tests.e2e._node_agent_fixtures import (
    LIBRARY_LINES,
    UNIT,
    assert_terminated,
    expected_hits,
    messages,
    mission_of,
    node_log,
    node_of,
    put_library,
    query_sample,
    result_bytes,
    start,
    upload_quietly,
    wait_execution,
)
from tests.e2e.conftest import NODE_ENV
from tests.waiting import wait_for
from workflow.keys import checkpoint_key, final_result_key, shard_result_key
from workflow.records import SHARD_PREFIX, ShardRecord
from workflow.states import ShardStatus, UnitStatus

S0 = "s000000"
# A slow-enough molsim unit for mid-shard events: 4,000 queries against the 600-molecule
# library, so the shards partition the queries (``molsim.shard_axis``): 2 shards of 2,000
# queries, run one at a time, a checkpoint every 20 queries (100 per shard). Every slow test
# uses the same sample under its own key (own mission), so the one-piece search runs once.
SLOW_QUERIES = 4000
SHARD_ITEMS = SLOW_QUERIES // 2
SLOW_PARAMS: dict[str, Any] = {
    "workload": "molsim",
    "shards": 2,
    "maxNodes": 1,
    "slotsPerNode": 1,
    "checkpointEvery": 20,
    "topK": 3,
}
# Short enough that a dead or frozen node is noticed quickly, long enough that a live node's
# beats (every third of it) still arrive on a machine loaded by other test runs: the first
# one comes after the agent's start (Python, boto3, RDKit: 2-5 s at a load of 5-7 on 2 cores).
HEARTBEAT_SHORT = 10
MID_SHARD = 1  # act as soon as shard 0 has made progress (its first block is 20 molecules)


def last_node(pool: LocalNodePool, mission_id: str) -> NodeHandle:
    """The node of the mission's latest attempt (a slow boot under load may add attempts)."""
    return max(pool.nodes(mission_id=mission_id), key=lambda n: n.attempt)


def shard(stack: LocalStack, mission_id: str, shard_id: str) -> ShardRecord:
    return next(s for s in stack.services.store.list_shards(mission_id) if s.shard_id == shard_id)


def raw_shard(stack: LocalStack, mission_id: str, shard_id: str) -> dict[str, Any]:
    """Every attribute of a shard item (timings, resume point), not only the typed ones."""
    item = stack.services.ddb.get_item(
        TableName=stack.settings.trans_table,
        Key={"missionId": {"S": mission_id}, "shardId": {"S": SHARD_PREFIX + shard_id}},
        ConsistentRead=True,
    )["Item"]
    de = TypeDeserializer()
    return {k: de.deserialize(v) for k, v in item.items()}


def progressed(stack: LocalStack, mission_id: str, attempt: int, beyond: int) -> bool:
    s = shard(stack, mission_id, S0)
    return (
        s.status is ShardStatus.RUNNING
        and s.attempt == attempt
        and s.position is not None
        and s.position >= s.start + beyond
    )


def freeze_mid_shard(
    stack: LocalStack, pool: LocalNodePool, mission_id: str, node: NodeHandle
) -> bool:
    """Freeze the node, then check that shard 0 is still unfinished; False (node thawed) if
    it finished before the freeze landed (a busy machine can be that late)."""
    pool.pause(node.instance_id)
    if shard(stack, mission_id, S0).status is not ShardStatus.RUNNING:
        pool.resume(node.instance_id)
        return False
    return True


REPORTS = {"reported failure", "unit succeeded"}


@pytest.fixture(scope="module")
def library(stack: LocalStack, tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Path]:
    return put_library(stack, tmp_path_factory.mktemp("library"))


@pytest.fixture(scope="module")
def slow_sample(
    library: tuple[str, Path], tmp_path_factory: pytest.TempPathFactory
) -> tuple[bytes, bytes]:
    """The slow units' queries and the one-piece search result they must reproduce."""
    sample = query_sample(SLOW_QUERIES, offset=LIBRARY_LINES)
    expected = expected_hits(sample, library[1], 3, tmp_path_factory.mktemp("expected"))
    return sample, expected


@pytest.mark.parametrize("signal_kind", ["spot-notice", "sigterm"])
def test_interruption_checkpoints_and_attempt_two_resumes(
    stack: LocalStack,
    pool: LocalNodePool,
    library: tuple[str, Path],
    slow_sample: tuple[bytes, bytes],
    signal_kind: str,
) -> None:
    uri = library[0]
    sample, expected = slow_sample
    key = f"incoming/interrupted-{signal_kind}.smi"
    upload_quietly(stack, key, sample)
    arn = start(stack, key, {**SLOW_PARAMS, "library": uri, "heartbeatSeconds": 30})
    mission_id = mission_of(stack, arn)
    first = node_of(pool, mission_id, 1)
    wait_for(lambda: progressed(stack, mission_id, 1, MID_SHARD), 60, "shard 0 to progress")

    # Freeze the workers so the stop lands mid-shard whatever the machine's speed: the agent
    # raises the stop flag; the worker stops at its next check, one block after the thaw.
    frozen_at = shard(stack, mission_id, S0).position or 0
    pool.pause(first.instance_id, include_agent=False)
    if signal_kind == "sigterm":
        os.kill(first.pid, signal.SIGTERM)  # what a shutting-down instance sends: warm stop
    else:
        pool.interrupt(first.instance_id)  # the emulated spot/instance-action notice
    wait_for(lambda: "stopping shards" in messages(first), 30, "the agent to stop its shards")
    pool.resume(first.instance_id)

    assert pool.wait(first.instance_id, 60) == ExitCode.INTERRUPTED
    second = node_of(pool, mission_id, 2)
    desc = wait_execution(stack, arn)
    assert desc["status"] == "SUCCEEDED", desc
    assert result_bytes(stack, mission_id, ".csv") == expected

    reports = [e for e in node_log(first) if e["message"] == "reported failure"]
    assert [r["errorName"] for r in reports] == ["Spot.Interrupted"]
    reason = "SIGTERM" if signal_kind == "sigterm" else "instance-action terminate"
    assert reason in reports[0]["cause"]
    unit = stack.services.store.get_unit(mission_id, UNIT)
    assert unit.interrupted_attempts == (1,)
    assert unit.attempt == 2 and unit.status is UnitStatus.SUCCEEDED

    item = raw_shard(stack, mission_id, S0)
    ckpt_key = checkpoint_key(mission_id, S0, 1)
    head = stack.services.s3.head_object(Bucket=stack.settings.result_bucket, Key=ckpt_key)
    saved = int(head["Metadata"]["position"])
    assert item["status"] == "DONE" and int(item["attempt"]) == 2
    assert item["resultKey"] == shard_result_key(mission_id, S0, 2, ".csv")
    assert item["resumedCheckpoint"] == ckpt_key
    assert int(item["resumedFrom"]) == saved > 0  # resumed, not restarted
    s3 = stack.services.s3
    for obj, kind in ((ckpt_key, "checkpoint"), (item["resultKey"], "shard-result")):
        tags = s3.get_object_tagging(Bucket=stack.settings.result_bucket, Key=obj)["TagSet"]
        assert tags == [{"Key": "lighthpc:kind", "Value": kind}]  # what lifecycle rules expire
    assert frozen_at <= saved < SHARD_ITEMS  # stopped mid-shard, one block after the thaw
    redo = int(item["redoItems"])
    assert redo == 0  # the stop checkpoint is taken exactly where the shard stopped
    mission = stack.services.store.get_mission(mission_id)
    assert (mission.interruptions, mission.shards_done) == (1, 2)
    assert pool.wait(second.instance_id, 30) == ExitCode.SUCCEEDED
    print(
        f"\n[{signal_kind}] shard {S0} checkpointed at {saved}/{SHARD_ITEMS} by attempt 1; "
        f"attempt 2 resumed from {item['resumedFrom']}; items recomputed beyond the "
        f"checkpoint: {redo}"
    )
    assert_terminated(stack, first, second)


def test_max_lifetime_checkpoints_and_reports_node_lost(
    cloud: EmbeddedCloud,
    stack: LocalStack,
    library: tuple[str, Path],
    slow_sample: tuple[bytes, bytes],
    tmp_path: Path,
) -> None:
    uri = library[0]
    sample, expected = slow_sample
    key = "incoming/lifetime.smi"
    upload_quietly(stack, key, sample)
    # The lifetime must outlast the worker's start and its first block (5-6 s at a load of
    # 5-7 on 2 cores); the pause below then holds the shard mid-way until the lifetime ends.
    env = {**NODE_ENV, "LIGHTHPC_NODE_MAX_LIFETIME_SECONDS": "15"}
    with LocalNodePool(cloud, stack.settings, env=env, log_dir=tmp_path / "nodes") as pool:
        arn = start(stack, key, {**SLOW_PARAMS, "library": uri, "heartbeatSeconds": 30})
        mission_id = mission_of(stack, arn)
        first = node_of(pool, mission_id, 1)
        pool.env.pop("LIGHTHPC_NODE_MAX_LIFETIME_SECONDS")  # only the first node is short-lived
        wait_for(lambda: progressed(stack, mission_id, 1, MID_SHARD), 60, "shard 0 to progress")
        pool.pause(first.instance_id, include_agent=False)  # still mid-shard at its end of life
        wait_for(lambda: "stopping shards" in messages(first), 30, "the lifetime to expire")
        pool.resume(first.instance_id)
        assert pool.wait(first.instance_id, 60) == ExitCode.LOST
        second = node_of(pool, mission_id, 2)
        desc = wait_execution(stack, arn)
        assert pool.wait(second.instance_id, 30) == ExitCode.SUCCEEDED
    assert desc["status"] == "SUCCEEDED", desc
    assert result_bytes(stack, mission_id, ".csv") == expected
    reports = [e for e in node_log(first) if e["message"] == "reported failure"]
    assert [(r["errorName"], r["cause"]) for r in reports] == [
        ("Node.Lost", "max lifetime reached")
    ]
    item = raw_shard(stack, mission_id, S0)
    assert int(item["resumedFrom"]) > 0  # resumed from the lifetime checkpoint
    assert stack.services.store.get_unit(mission_id, UNIT).interrupted_attempts == ()
    assert_terminated(stack, first, second)


def test_killed_node_is_not_reported_heartbeat_expires_attempt_two_finishes(
    stack: LocalStack,
    pool: LocalNodePool,
    library: tuple[str, Path],
    slow_sample: tuple[bytes, bytes],
) -> None:
    uri = library[0]
    sample, expected = slow_sample
    key = "incoming/killed.smi"
    upload_quietly(stack, key, sample)
    arn = start(stack, key, {**SLOW_PARAMS, "library": uri, "heartbeatSeconds": HEARTBEAT_SHORT})
    mission_id = mission_of(stack, arn)
    first = node_of(pool, mission_id, 1)
    wait_for(lambda: progressed(stack, mission_id, 1, MID_SHARD), 60, "shard 0 to progress")

    killed = pool.kill(first.instance_id)  # kill -9 of the agent and its workers
    reached = shard(stack, mission_id, S0).position

    assert first.returncode == -9 and len(killed) >= 2
    second = node_of(pool, mission_id, 2, timeout=30)  # after the heartbeat expired
    # A late upload to the dead attempt's result key must never become the result.
    stack.services.s3.put_object(
        Bucket=stack.settings.result_bucket,
        Key=shard_result_key(mission_id, S0, 1, ".csv"),
        Body=b"query_id,rank,ref_id,similarity,query_position,ref_index\nlate,1,bogus,1.0,0,0\n",
    )
    desc = wait_execution(stack, arn)
    assert desc["status"] == "SUCCEEDED", desc
    assert result_bytes(stack, mission_id, ".csv") == expected
    item = raw_shard(stack, mission_id, S0)
    final = last_node(pool, mission_id)
    assert item["resultKey"] == shard_result_key(mission_id, S0, int(item["attempt"]), ".csv")
    assert int(item["attempt"]) >= 2  # never the dead attempt's key
    assert not REPORTS & set(messages(first))  # a dead node says nothing
    unit = stack.services.store.get_unit(mission_id, UNIT)
    assert unit.interrupted_attempts == () and unit.attempt == final.attempt >= 2
    every = SLOW_PARAMS["checkpointEvery"]
    print(
        f"\n[kill -9] shard {S0} had reached >= {reached}/{SHARD_ITEMS}; attempt "
        f"{item['attempt']} resumed from {item['resumedFrom']} (last periodic checkpoint); "
        f"items recomputed: >= {item['redoItems']} (progress in tblTrans), about one "
        f"checkpoint interval ({every})"
    )
    assert pool.wait(final.instance_id, 30) == ExitCode.SUCCEEDED
    assert_terminated(stack, first, second, final)


def test_superseded_node_stops_silently_and_leaves_committed_results_alone(
    stack: LocalStack,
    pool: LocalNodePool,
    library: tuple[str, Path],
    slow_sample: tuple[bytes, bytes],
) -> None:
    uri = library[0]
    sample, expected = slow_sample
    for tries in range(1, 4):
        key = f"incoming/superseded-{tries}.smi"
        upload_quietly(stack, key, sample)
        arn = start(
            stack, key, {**SLOW_PARAMS, "library": uri, "heartbeatSeconds": HEARTBEAT_SHORT}
        )
        mission_id = mission_of(stack, arn)
        first = node_of(pool, mission_id, 1)
        moved = partial(progressed, stack, mission_id, 1, MID_SHARD)
        wait_for(moved, 60, "shard 0 to progress")
        if freeze_mid_shard(stack, pool, mission_id, first):
            break  # frozen: no heartbeat; attempt 2 takes over
        wait_execution(stack, arn)  # shard 0 beat the freeze on a busy machine: again
    else:
        pytest.fail("shard 0 finished before the freeze in 3 tries")
    second = node_of(pool, mission_id, 2, timeout=30)
    desc = wait_execution(stack, arn)
    assert desc["status"] == "SUCCEEDED", desc
    s3 = stack.services.s3
    bucket = stack.settings.result_bucket
    prefix = f"missions/{mission_id}/shards/"

    def snapshot() -> tuple[list[str | None], dict[str, str], str]:
        keys = [s.result_key for s in stack.services.store.list_shards(mission_id)]
        objects = s3.list_objects_v2(Bucket=bucket, Prefix=prefix).get("Contents", [])
        final = s3.head_object(Bucket=bucket, Key=final_result_key(mission_id, ".csv"))
        return keys, {o["Key"]: o["ETag"] for o in objects}, final["ETag"]

    before = snapshot()
    pool.resume(first.instance_id)  # wakes up superseded

    assert pool.wait(first.instance_id, 60) == ExitCode.SUPERSEDED
    after = snapshot()
    assert after[0] == before[0] and after[2] == before[2]
    assert {k: v for k, v in after[1].items() if k in before[1]} == before[1]
    assert before[0] and not any(k is None or k.endswith("attempt-001.csv") for k in before[0])
    assert result_bytes(stack, mission_id, ".csv") == expected
    log = messages(first)
    assert not REPORTS & set(log)
    assert any("superseded" in m for m in log)
    final = last_node(pool, mission_id)
    assert pool.wait(final.instance_id, 30) == ExitCode.SUCCEEDED

    # A node whose tags name an attempt that is no longer current stops before any work.
    stale = stack.services.ec2.run_instances(
        LaunchTemplate={"LaunchTemplateName": stack.settings.launch_template},
        MinCount=1,
        MaxCount=1,
        TagSpecifications=[
            {
                "ResourceType": "instance",
                "Tags": [
                    {"Key": "lighthpc:missionId", "Value": mission_id},
                    {"Key": "lighthpc:unitId", "Value": UNIT},
                    {"Key": "lighthpc:attempt", "Value": "1"},
                ],
            }
        ],
    )["Instances"][0]["InstanceId"]
    late = wait_for(
        lambda: next(iter(n for n in pool.nodes() if n.instance_id == stale), None),
        30,
        "the stale node",
    )
    assert pool.wait(stale, 30) == ExitCode.SUPERSEDED
    assert stack.services.store.get_unit(mission_id, UNIT).status is UnitStatus.SUCCEEDED
    assert snapshot()[0] == before[0]
    assert_terminated(stack, first, second, final, late)
