"""Inputs are pinned: every node reads the library version PlanMission saw (issue 12 §7).

The real ASL and handlers on the embedded cloud (versioned source bucket); the simulated
nodes stage their inputs with the node agent's own ``stage_inputs`` and run the real molsim
workload, so what they read is what a real node would read.
"""

from __future__ import annotations

import json
import tempfile
import threading
from pathlib import Path

from localcloud.stack import LocalStack
from node_agent.inputs import stage_inputs
from tests.functional.conftest import start_manual, wait_execution
from tests.functional.simnode import Attempt, Behaviour, NodeSim
from workflow.keys import final_result_key, shard_result_key
from workflow.workloads import load_workload
from workflow.workloads.base import ShardContext, ShardDone
from workflow.workloads.molsim import default_library_path, search_library, write_hits_csv

LIBRARY_KEY = "libraries/pinned.smi"  # outside incoming/: no mission trigger
SAMPLE_KEY = "incoming/pinned-queries.smi"
TOP_K = 3


def nci(start: int, stop: int) -> bytes:
    lines = default_library_path().read_text(encoding="utf-8").splitlines()
    return ("\n".join(lines[start:stop]) + "\n").encode()


class WorkloadNodes(NodeSim):
    """Simulated nodes that stage the mission's inputs as the agent does and run molsim."""

    def run_shard(self, a: Attempt, shard_id: str, items: int) -> bool:
        attempt = a.protocol(self.svc.store)
        if not attempt.claim(shard_id):
            return False
        mission = self.svc.store.get_mission(a.mission_id)
        params = mission.mission_params()
        [shard] = [s for s in self.svc.store.list_shards(a.mission_id) if s.shard_id == shard_id]
        with tempfile.TemporaryDirectory(prefix="pinned-node-") as tmp:
            work = Path(tmp)
            staged = stage_inputs(
                self.svc.objects,
                mission.sample,
                params,
                work / "in",
                work / "cache",
                library=mission.library,
            )
            outcome = load_workload(params.workload).run(
                shard.range, staged.inputs, ShardContext(work_dir=work)
            )
            assert isinstance(outcome, ShardDone)
            key = shard_result_key(a.mission_id, shard_id, a.attempt, outcome.result.suffix)
            self.svc.objects.upload(outcome.result, self.svc.settings.result_bucket, key)
        ok = attempt.commit(shard_id, key, {})
        if ok:
            a.shards_run.append(shard_id)
        return ok


def test_a_library_overwritten_after_planning_does_not_change_the_result(
    stack: LocalStack, tmp_path: Path
) -> None:
    s3, bucket = stack.services.s3, stack.settings.source_bucket
    original, replacement = nci(0, 300), nci(2000, 2300)  # same size in lines, other molecules
    first = s3.put_object(Bucket=bucket, Key=LIBRARY_KEY, Body=original)
    queries = nci(1000, 1006)
    s3.put_object(Bucket=bucket, Key=SAMPLE_KEY, Body=queries)
    overwritten = threading.Event()

    def overwrite_then_succeed(_a: Attempt) -> Behaviour:
        # The first node starts after PlanMission: the library changes under the mission.
        if not overwritten.is_set():
            s3.put_object(Bucket=bucket, Key=LIBRARY_KEY, Body=replacement)
            overwritten.set()
        return "succeed"

    params = {
        "workload": "molsim",
        "library": f"s3://{bucket}/{LIBRARY_KEY}",
        "shards": 4,
        "maxNodes": 2,
        "topK": TOP_K,
        "heartbeatSeconds": 30,
    }
    with WorkloadNodes(stack.services, overwrite_then_succeed) as nodes:
        request = {"input": {"bucket": bucket, "key": SAMPLE_KEY}, "params": params}
        arn = start_manual(stack, request)
        desc = wait_execution(stack, arn, timeout=120)
    assert not nodes.errors
    assert desc["status"] == "SUCCEEDED", desc
    assert overwritten.is_set()
    mission_id = json.loads(desc["output"])["missionId"]
    mission = stack.services.store.get_mission(mission_id)
    assert mission.library is not None
    assert mission.library.version_id == first["VersionId"]
    assert mission.library.size == len(original)

    got = s3.get_object(
        Bucket=stack.settings.result_bucket, Key=final_result_key(mission_id, ".csv")
    )["Body"].read()
    (tmp_path / "q.smi").write_bytes(queries)
    (tmp_path / "original.smi").write_bytes(original)
    (tmp_path / "replacement.smi").write_bytes(replacement)
    write_hits_csv(
        search_library(tmp_path / "q.smi", tmp_path / "original.smi", TOP_K), tmp_path / "a.csv"
    )
    write_hits_csv(
        search_library(tmp_path / "q.smi", tmp_path / "replacement.smi", TOP_K),
        tmp_path / "b.csv",
    )
    assert (tmp_path / "a.csv").read_bytes() != (tmp_path / "b.csv").read_bytes()  # can fail
    assert got == (tmp_path / "a.csv").read_bytes()
