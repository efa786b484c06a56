"""Helpers for the node-agent e2e tests: start missions, find their nodes, read results.

The test modules share these; each keeps its own module-scoped fixtures (``library``) on
top of ``tests/e2e/conftest.py``'s cloud, stack and pool.
"""

from __future__ import annotations

import json
import signal
import uuid
from pathlib import Path
from typing import Any

from localcloud.pool import LocalNodePool, NodeHandle
from localcloud.stack import SOURCE_RULE_NAME, LocalStack
from tests.waiting import wait_for
from workflow.keys import final_result_key
from workflow.states import TERMINAL_EXECUTION
from workflow.workloads.molsim import default_library_path, search_library, write_hits_csv

LIBRARY_LINES = 600
LIBRARY_KEY = "libraries/nci-first-600.smi"  # outside incoming/: no mission trigger
UNIT = "u0000"


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
        return desc if desc["status"] in TERMINAL_EXECUTION else None

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


def put_library(stack: LocalStack, directory: Path) -> tuple[str, Path]:
    """The first 600 molecules of RDKit's NCI library, in S3 and on local disk."""
    local = directory / "nci-600.smi"
    local.write_text("\n".join(nci_lines()[:LIBRARY_LINES]) + "\n", encoding="utf-8")
    stack.services.s3.put_object(
        Bucket=stack.settings.source_bucket, Key=LIBRARY_KEY, Body=local.read_bytes()
    )
    return f"s3://{stack.settings.source_bucket}/{LIBRARY_KEY}", local


def query_sample(count: int, offset: int = 1000) -> bytes:
    return ("\n".join(nci_lines()[offset : offset + count]) + "\n").encode()
