"""REAL ``lighthpc-node`` processes against the embedded moto and per-instance IMDS emulators.

The state machine, the handlers and the node agent are the production ones; only AWS is
emulated. Every scenario waits on observable conditions (DynamoDB items, S3 objects, process
exits) with timeouts, and checks that the node's instance ends terminated. This module runs
missions that end on their own (success, a failing command, a closed pool);
``test_node_agent_interruptions.py`` interrupts, expires, kills and supersedes nodes.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from localcloud.emulator import EmbeddedCloud
from localcloud.pool import LocalNodePool
from localcloud.stack import DEFAULT_LOCAL_PROFILE, LocalStack
from node_agent import proctree
from node_agent.agent import ExitCode
from node_agent.runner import CheckpointEvent, ProgressEvent, ShardPool, ShardTask
from tests.e2e._node_agent_fixtures import (
    UNIT,
    assert_terminated,
    expected_hits,
    history_text,
    mission_of,
    nci_lines,
    node_log,
    node_of,
    put_library,
    query_sample,
    result_bytes,
    start,
    upload_quietly,
    wait_execution,
)
from tests.waiting import wait_for
from workflow.states import ShardStatus
from workflow.workloads.base import ShardRange, WorkInputs
from workflow.workloads.molsim import Axis, partition


@pytest.fixture(scope="module")
def library(stack: LocalStack, tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Path]:
    return put_library(stack, tmp_path_factory.mktemp("library"))


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


def test_a_sample_longer_than_its_library_is_split_by_queries_and_equals_the_one_piece_search(
    stack: LocalStack, pool: LocalNodePool, tmp_path: Path
) -> None:
    """The query axis end to end: 40 queries (one unparsable) against a staged 25-molecule
    library (one unparsable): 3 shards of the sample's lines, the same bytes and skipped
    lines as the one-piece search."""
    local = tmp_path / "nci-25.smi"
    local.write_text("\n".join(["C1CC broken-ref", *nci_lines()[:24]]) + "\n")
    library_key = "libraries/nci-first-25.smi"  # outside incoming/: no mission trigger
    stack.services.s3.put_object(
        Bucket=stack.settings.source_bucket, Key=library_key, Body=local.read_bytes()
    )
    sample = query_sample(39) + b"xyz unparsable\n"
    (tmp_path / "q.smi").write_bytes(sample)
    assert partition(WorkInputs(sample=tmp_path / "q.smi", reference=local)) == (Axis.QUERIES, 40)
    key = "incoming/query-axis.smi"
    upload_quietly(stack, key, sample)
    uri = f"s3://{stack.settings.source_bucket}/{library_key}"
    params = {"workload": "molsim", "shards": 3, "maxNodes": 1, "library": uri, "topK": 4}
    arn = start(stack, key, {**params, "checkpointEvery": 5, "heartbeatSeconds": 30})
    mission_id = mission_of(stack, arn)
    desc = wait_execution(stack, arn)
    assert desc["status"] == "SUCCEEDED", desc
    assert result_bytes(stack, mission_id, ".csv") == expected_hits(sample, local, 4, tmp_path)
    shards = stack.services.store.list_shards(mission_id)
    assert [(s.start, s.end) for s in shards] == [(0, 14), (14, 27), (27, 40)]
    assert all(s.status is ShardStatus.DONE for s in shards)
    mission = stack.services.store.get_mission(mission_id)
    assert mission.invalid_sample_lines == (40,)  # RsltProc's union of the shards' skipped lines
    reduced = dict(mission.reduce or {})
    assert [int(n) for n in reduced["invalidLibraryLines"]] == [1]  # named by every shard
    node = node_of(pool, mission_id, 1)
    assert pool.wait(node.instance_id, 30) == ExitCode.SUCCEEDED
    assert_terminated(stack, node)


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


def test_an_instance_terminated_from_outside_takes_its_node_with_it(
    cloud: EmbeddedCloud, stack: LocalStack, pool: LocalNodePool
) -> None:
    """node_watch terminates a cancelled mission's instances; as on EC2, the node goes too
    (its token is still good: nothing else would stop it for the command's 300 s)."""
    key = "incoming/terminated.txt"
    upload_quietly(stack, key, b"one\n")
    script = "import time; time.sleep(300)\n"
    params = {"workload": "command", "shards": 1, "maxNodes": 1, "heartbeatSeconds": 30}
    arn = start(stack, key, {**params, "argv": [sys.executable, "-c", script]})
    node = node_of(pool, mission_of(stack, arn), 1)
    tree = wait_for(lambda: proctree.descendants(node.pid), 60, "the node's workers to start")
    stack.services.ec2.terminate_instances(InstanceIds=[node.instance_id])
    pids = [node.pid, *tree]
    wait_for(lambda: not any(proctree.is_alive(p) for p in pids), 30, "the node to end")
    stack.services.sfn.stop_execution(executionArn=arn)
