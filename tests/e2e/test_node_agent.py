"""REAL ``lighthpc-node`` processes against the embedded moto and per-instance IMDS emulators.

The state machine, the handlers and the node agent are the production ones; only AWS is
emulated. Every scenario waits on observable conditions (DynamoDB items, S3 objects, process
exits) with timeouts, and checks that the node's instance ends terminated.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import uuid
from functools import partial
from pathlib import Path
from typing import Any

import pytest
from boto3.dynamodb.types import TypeDeserializer

from localcloud.emulator import EmbeddedCloud
from localcloud.pool import LocalNodePool, NodeHandle
from localcloud.stack import DEFAULT_LOCAL_PROFILE, SOURCE_RULE_NAME, LocalStack
from node_agent import proctree
from node_agent.agent import ExitCode
from node_agent.runner import CheckpointEvent, ProgressEvent, ShardPool, ShardTask
from tests.e2e.conftest import NODE_ENV
from tests.waiting import wait_for
from workflow.keys import checkpoint_key, final_result_key, shard_result_key
from workflow.records import SHARD_PREFIX, ShardRecord
from workflow.states import ShardStatus, UnitStatus
from workflow.workloads.base import ShardRange, WorkInputs
from workflow.workloads.molsim import default_library_path, search_library, write_hits_csv

LIBRARY_LINES = 600
LIBRARY_KEY = "libraries/nci-first-600.smi"  # outside incoming/: no mission trigger
TERMINAL = {"SUCCEEDED", "FAILED", "TIMED_OUT", "ABORTED"}
UNIT = "u0000"
S0 = "s000000"
# A slow-enough molsim unit for mid-shard events: 2 shards of 300 library molecules, run one
# at a time, 4,000 queries, a checkpoint every 20 molecules (15 per shard). Every slow test
# uses the same sample under its own key (own mission), so the one-piece search runs once.
SLOW_QUERIES = 4000
SLOW_PARAMS: dict[str, Any] = {
    "workload": "molsim",
    "shards": 2,
    "maxNodes": 1,
    "slotsPerNode": 1,
    "checkpointEvery": 20,
    "topK": 3,
}
MID_SHARD = 1  # act as soon as shard 0 has made progress (its first block is 20 molecules)


# ---- helpers ---------------------------------------------------------------------------------


def nci_lines() -> list[str]:
    return default_library_path().read_text(encoding="utf-8").splitlines()


def upload_quietly(stack: LocalStack, key: str, body: bytes) -> None:
    """Upload a sample without the S3 trigger (the test starts the execution by hand)."""
    events = stack.services.events
    events.disable_rule(Name=SOURCE_RULE_NAME)
    try:
        stack.services.s3.put_object(Bucket=stack.settings.source_bucket, Key=key, Body=body)
    finally:
        events.enable_rule(Name=SOURCE_RULE_NAME)


def start(stack: LocalStack, key: str, params: dict[str, Any]) -> str:
    payload = {"input": {"bucket": stack.settings.source_bucket, "key": key}, "params": params}
    resp = stack.services.sfn.start_execution(
        stateMachineArn=stack.state_machine_arn,
        name=f"e2e-{uuid.uuid4().hex[:12]}",
        input=json.dumps(payload),
    )
    return str(resp["executionArn"])


def wait_execution(stack: LocalStack, arn: str, timeout: float = 90) -> dict[str, Any]:
    sfn = stack.services.sfn

    def ended() -> dict[str, Any] | None:
        desc: dict[str, Any] = sfn.describe_execution(executionArn=arn)
        return desc if desc["status"] in TERMINAL else None

    return wait_for(ended, timeout, f"execution {arn} to end")


def mission_of(stack: LocalStack, arn: str) -> str:
    return wait_for(
        lambda: stack.services.store.mission_for_execution(arn), 30, "the mission to be planned"
    )


def node_of(pool: LocalNodePool, mission_id: str, attempt: int, timeout: float = 60) -> NodeHandle:
    def found() -> NodeHandle | None:
        nodes = [n for n in pool.nodes(mission_id=mission_id) if n.attempt == attempt]
        return nodes[0] if nodes else None

    return wait_for(found, timeout, f"the node of attempt {attempt}")


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


def result_bytes(stack: LocalStack, mission_id: str, suffix: str) -> bytes:
    obj = stack.services.s3.get_object(
        Bucket=stack.settings.result_bucket, Key=final_result_key(mission_id, suffix)
    )
    return bytes(obj["Body"].read())


def expected_hits(sample: bytes, library: Path, top_k: int, tmp: Path) -> bytes:
    queries = tmp / "expected-queries.smi"
    queries.write_bytes(sample)
    out = tmp / "expected.csv"
    write_hits_csv(search_library(queries, library, top_k), out)
    return out.read_bytes()


def instance_state(stack: LocalStack, instance_id: str) -> str:
    resp = stack.services.ec2.describe_instances(InstanceIds=[instance_id])
    return str(resp["Reservations"][0]["Instances"][0]["State"]["Name"])


def assert_terminated(stack: LocalStack, *handles: NodeHandle) -> None:
    """The instance ended terminated and, unless the node was killed, by its own agent."""
    for handle in handles:
        iid = handle.instance_id
        wait_for(
            lambda iid=iid: instance_state(stack, iid) == "terminated",  # type: ignore[misc]
            20,
            f"instance {iid} to be terminated",
        )
        if handle.returncode != -signal.SIGKILL:
            assert "instance terminated" in messages(handle), f"{iid} did not end itself"


def node_log(handle: NodeHandle) -> list[dict[str, Any]]:
    out = []
    for line in handle.log_path.read_text(errors="replace").splitlines():
        if line.startswith("{"):
            out.append(json.loads(line))
    return out


def messages(handle: NodeHandle) -> list[str]:
    return [e["message"] for e in node_log(handle)]


def history_text(stack: LocalStack, arn: str) -> str:
    events = stack.services.sfn.get_execution_history(executionArn=arn, maxResults=1000)
    return json.dumps(events["events"], default=str)


REPORTS = {"reported failure", "unit succeeded"}


# ---- fixtures ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def library(stack: LocalStack, tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Path]:
    """The first 600 molecules of RDKit's NCI library, in S3 and on local disk."""
    local = tmp_path_factory.mktemp("library") / "nci-600.smi"
    local.write_text("\n".join(nci_lines()[:LIBRARY_LINES]) + "\n", encoding="utf-8")
    stack.services.s3.put_object(
        Bucket=stack.settings.source_bucket, Key=LIBRARY_KEY, Body=local.read_bytes()
    )
    return f"s3://{stack.settings.source_bucket}/{LIBRARY_KEY}", local


def query_sample(count: int, offset: int = 1000) -> bytes:
    return ("\n".join(nci_lines()[offset : offset + count]) + "\n").encode()


@pytest.fixture(scope="module")
def slow_sample(
    library: tuple[str, Path], tmp_path_factory: pytest.TempPathFactory
) -> tuple[bytes, bytes]:
    """The slow units' queries and the one-piece search result they must reproduce."""
    sample = query_sample(SLOW_QUERIES, offset=LIBRARY_LINES)
    expected = expected_hits(sample, library[1], 3, tmp_path_factory.mktemp("expected"))
    return sample, expected


# ---- the worker pool on its own ----------------------------------------------------------------


def test_worker_processes_bridge_stop_flag_and_checkpoints(tmp_path: Path) -> None:
    sample = tmp_path / "sample"
    sample.write_text("x\n")
    pool = ShardPool(2)
    try:
        inputs = WorkInputs(sample=sample, options={"items": 10_000, "sleepMs": 2})
        futures = [
            pool.submit(ShardTask("noop", ShardRange(f"s{i}", i, 0, 10_000), inputs, tmp_path))
            for i in range(2)
        ]
        seen: set[str] = set()

        def both_progressed() -> bool:
            seen.update(e.shard_id for e in pool.next_events(0.1) if isinstance(e, ProgressEvent))
            return len(seen) == 2

        wait_for(both_progressed, 30, "progress from both workers")
        pool.request_stop()
        outcomes = [f.result(timeout=30) for f in futures]
        checkpoints: dict[str, int] = {}

        def both_checkpoints() -> bool:
            for event in pool.next_events(0.1):
                if isinstance(event, CheckpointEvent):
                    checkpoints[event.shard_id] = event.position
            return len(checkpoints) == 2

        wait_for(both_checkpoints, 30, "the stop checkpoints of both shards")
    finally:
        pool.close()
    assert seen
    assert {o.kind for o in outcomes} == {"stopped"}
    assert all(0 < o.position < 10_000 for o in outcomes)
    assert checkpoints == {o.shard_id: o.position for o in outcomes}
    assert len(pool.worker_pids) == 2  # two processes, not threads
    assert not any(proctree.is_alive(pid) for pid in pool.worker_pids)


# ---- scenarios -------------------------------------------------------------------------------


def test_six_molsim_shards_via_s3_upload_equal_the_one_piece_search(
    stack: LocalStack, pool: LocalNodePool, library: tuple[str, Path], tmp_path: Path
) -> None:
    uri, local = library
    sample = query_sample(40)
    params = {"workload": "molsim", "shards": 6, "maxNodes": 1, "library": uri, "topK": 5}
    store = stack.services.store
    store.put_profile(stack.settings.default_profile, {**params, "heartbeatSeconds": 30}, 0.0)
    try:
        key = "incoming/six-shards.smi"
        stack.services.s3.put_object(Bucket=stack.settings.source_bucket, Key=key, Body=sample)
        mission_id = wait_for(
            lambda: next(
                (m.mission_id for m in store.scan_missions() if m.sample.key == key), None
            ),
            30,
            "the S3 upload to start a mission",
        )
    finally:
        store.put_profile(stack.settings.default_profile, dict(DEFAULT_LOCAL_PROFILE), 0.0)
    arn = str(store.get_mission(mission_id).execution_arn)
    desc = wait_execution(stack, arn)
    assert desc["status"] == "SUCCEEDED", desc
    node = node_of(pool, mission_id, 1)
    assert pool.wait(node.instance_id, 30) == ExitCode.SUCCEEDED
    assert result_bytes(stack, mission_id, ".csv") == expected_hits(sample, local, 5, tmp_path)
    shards = store.list_shards(mission_id)
    assert len(shards) == 6
    assert all(s.status is ShardStatus.DONE and s.attempt == 1 for s in shards)
    assert [len(pool.nodes(mission_id=mission_id))] == [1]
    summary = next(e for e in node_log(node) if e["message"] == "unit succeeded")["summary"]
    assert (summary["shards"], summary["shardsRun"]) == (6, 6)
    assert all(
        set(e) >= {"time", "level", "message", "missionId", "unitId", "shardId", "attempt"}
        for e in node_log(node)
    )
    assert_terminated(stack, node)


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
    assert frozen_at <= saved < 300  # stopped mid-shard, one block after the thaw
    redo = int(item["redoItems"])
    assert redo == 0  # the stop checkpoint is taken exactly where the shard stopped
    mission = stack.services.store.get_mission(mission_id)
    assert (mission.interruptions, mission.shards_done) == (1, 2)
    assert pool.wait(second.instance_id, 30) == ExitCode.SUCCEEDED
    print(
        f"\n[{signal_kind}] shard {S0} checkpointed at {saved}/300 by attempt 1; attempt 2 "
        f"resumed from {item['resumedFrom']}; items recomputed beyond the checkpoint: {redo}"
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
    env = {**NODE_ENV, "LIGHTHPC_NODE_MAX_LIFETIME_SECONDS": "6"}
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
    arn = start(stack, key, {**SLOW_PARAMS, "library": uri, "heartbeatSeconds": 3})
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
        Body=b"query_id,rank,ref_id,similarity,query_index,ref_index\nlate,1,bogus,1.0,0,0\n",
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
        f"\n[kill -9] shard {S0} had reached >= {reached}/300; attempt {item['attempt']} resumed "
        f"from {item['resumedFrom']} (last periodic checkpoint); items recomputed: >= "
        f"{item['redoItems']} (progress in tblTrans), about one checkpoint interval ({every})"
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
        arn = start(stack, key, {**SLOW_PARAMS, "library": uri, "heartbeatSeconds": 3})
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


def test_command_workload_gets_a_key_with_shell_metacharacters_without_a_shell(
    stack: LocalStack, pool: LocalNodePool
) -> None:
    key = "incoming/a;rm -rf x$(id).smi"
    words = [f"word-{i}" for i in range(9)]
    upload_quietly(stack, key, ("\n".join(words) + "\n").encode())
    literal = "$(id);rm -rf x `whoami` | cat > y"
    script = (
        "import sys\n"
        "src, start, end, out, literal = sys.argv[1:6]\n"
        "lines = open(src).read().splitlines()[int(start):int(end)]\n"
        "with open(out, 'w') as f:\n"
        "    f.writelines(line.upper() + '\\n' for line in lines)\n"
        "    f.write(literal + '\\n')\n"
    )
    argv = [sys.executable, "-c", script, "{input}", "{start}", "{end}", "{output}", literal]
    params = {"workload": "command", "shards": 3, "maxNodes": 1, "argv": argv}
    arn = start(stack, key, {**params, "heartbeatSeconds": 30})
    mission_id = mission_of(stack, arn)
    desc = wait_execution(stack, arn)
    assert desc["status"] == "SUCCEEDED", desc
    expected = "".join(
        "".join(w.upper() + "\n" for w in words[i : i + 3]) + literal + "\n" for i in (0, 3, 6)
    )
    assert result_bytes(stack, mission_id, ".out").decode() == expected
    assert stack.services.store.get_mission(mission_id).sample.key == key
    node = node_of(pool, mission_id, 1)
    assert pool.wait(node.instance_id, 30) == ExitCode.SUCCEEDED
    assert_terminated(stack, node)


def test_failing_command_reports_shard_failed_with_the_stderr_tail(
    stack: LocalStack, pool: LocalNodePool
) -> None:
    key = "incoming/failing.txt"
    upload_quietly(stack, key, b"one\ntwo\n")
    script = (
        "import sys\n"
        "print('reading records', file=sys.stderr)\n"
        "sys.exit('fatal: cannot parse record 7')\n"
    )
    params = {"workload": "command", "shards": 2, "maxNodes": 1, "heartbeatSeconds": 30}
    arn = start(stack, key, {**params, "argv": [sys.executable, "-c", script]})
    mission_id = mission_of(stack, arn)
    desc = wait_execution(stack, arn)
    assert desc["status"] == "FAILED"
    assert desc["error"] == "Mission.TooManyFailures"
    assert "fatal: cannot parse record 7" in desc["cause"]
    history = history_text(stack, arn)
    assert "ExecutionFailed" in history and "fatal: cannot parse record 7" in history
    node = node_of(pool, mission_id, 1)
    assert pool.wait(node.instance_id, 30) == ExitCode.SHARD_FAILED
    reports = [e for e in node_log(node) if e["message"] == "reported failure"]
    assert [r["errorName"] for r in reports] == ["Shard.Failed"]
    assert "exited with code 1" in reports[0]["cause"]
    assert "fatal: cannot parse record 7" in reports[0]["cause"]
    for s in stack.services.store.list_shards(mission_id):
        assert s.status is ShardStatus.FAILED and "fatal: cannot parse record 7" in str(s.error)
    unit = stack.services.store.get_unit(mission_id, UNIT)
    assert unit.launches == 1  # a deterministic failure is not retried
    assert_terminated(stack, node)


def test_pool_close_leaves_no_process_behind(
    cloud: EmbeddedCloud, stack: LocalStack, tmp_path: Path
) -> None:
    key = "incoming/forever.txt"
    upload_quietly(stack, key, b"one\n")
    script = (
        "import subprocess, sys, time\n"
        "subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(300)'])\n"
        "time.sleep(300)\n"
    )
    params = {"workload": "command", "shards": 1, "maxNodes": 1, "heartbeatSeconds": 30}
    pool = LocalNodePool(cloud, stack.settings, log_dir=tmp_path / "nodes").start()
    try:
        arn = start(stack, key, {**params, "argv": [sys.executable, "-c", script]})
        mission_id = mission_of(stack, arn)
        node = node_of(pool, mission_id, 1)

        def whole_tree() -> list[int] | None:
            # resource tracker, worker, the command, its child
            found = proctree.descendants(node.pid)
            return found if len(found) >= 4 else None

        tree = wait_for(whole_tree, 60, "the command and its child to start")
        pids = [node.pid, *tree]
    finally:
        pool.close()
    stack.services.sfn.stop_execution(executionArn=arn)
    alive = [pid for pid in pids if proctree.is_alive(pid)]
    assert not alive
    assert_terminated(stack, node)
