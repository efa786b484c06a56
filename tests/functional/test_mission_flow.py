"""The real statemachine.asl.json on the embedded moto, real handlers, simulated nodes."""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

from localcloud.emulator import EmbeddedCloud
from localcloud.reset import reset
from localcloud.stack import SOURCE_RULE_NAME, LocalStack
from tests.functional.conftest import (
    as_principal,
    executions,
    notices,
    start_manual,
    upload_sample,
    wait_execution,
    wait_for,
    without_grant,
)
from tests.functional.simnode import NodeSim, first_attempt_only, unit_scripted
from workflow.records import MissionRecord
from workflow.states import ShardStatus

SAMPLE = "".join(f"item-{i}\n" for i in range(120)).encode()


def noop_profile(stack: LocalStack, **params: Any) -> None:
    stack.services.store.put_profile(
        "default", {"workload": "noop", "heartbeatSeconds": 20, **params}, 0.0
    )


def manual(stack: LocalStack, key: str, **params: Any) -> str:
    return start_manual(
        stack,
        {"input": {"bucket": stack.settings.source_bucket, "key": key}, "params": params},
    )


def mission_of(stack: LocalStack, arn: str) -> MissionRecord:
    sfn = stack.services.sfn
    history = sfn.get_execution_history(executionArn=arn, maxResults=1000)["events"]
    for event in history:
        details = event.get("taskSucceededEventDetails")
        if details and "missionId" in details.get("output", ""):
            mission_id = json.loads(details["output"])["Payload"]["missionId"]
            return stack.services.store.get_mission(mission_id)
    raise AssertionError("no PlanMission output in the history")


def test_s3_upload_runs_a_12_shard_mission_on_4_units(
    stack: LocalStack, cloud: EmbeddedCloud
) -> None:
    """The simulated nodes act under the node role (claims, commits, reports, terminate)."""
    noop_profile(stack, shards=12, maxNodes=4)
    with NodeSim(stack.services, node_svc=as_principal(cloud, stack, "node")) as nodes:
        upload_sample(stack, "incoming/sample.txt", SAMPLE)
        started = wait_for(lambda: executions(stack), 20, "the S3 event to start an execution")
        desc = wait_execution(stack, started[0]["executionArn"])
    assert not nodes.errors
    assert desc["status"] == "SUCCEEDED", desc
    mission = mission_of(stack, desc["executionArn"])
    assert (mission.status, mission.shards, mission.units) == ("SUCCEEDED", 12, 4)
    assert (mission.shards_done, mission.shards_failed, mission.retries) == (12, 0, 0)
    assert len(nodes.attempts) == 4
    retention = stack.settings.retention_days * 86_400
    assert mission.expires_at is not None
    assert abs(mission.expires_at - (mission.created_at + retention)) < 60
    items = stack.services.ddb.scan(TableName=stack.settings.trans_table)["Items"]
    assert len(items) == 12 + 4
    assert all(int(i["expiresAt"]["N"]) == mission.expires_at for i in items)
    assert mission.result is not None
    result = stack.services.s3.get_object(
        Bucket=stack.settings.result_bucket,
        Key=mission.result.split("/", 3)[3],
    )
    assert json.loads(result["Body"].read()) == {"items": 120, "shards": 12}
    [message] = notices(stack)
    assert mission.mission_id in message
    assert "Shards: 12/12 done, 0 failed" in message
    assert mission.result in message
    events = stack.services.sfn.get_execution_history(
        executionArn=desc["executionArn"], maxResults=1000
    )["events"]
    entered = sum(1 for e in events if str(e["type"]).endswith("StateEntered"))
    print(
        f"\nparent execution: {len(events)} history events, {entered + 1} state transitions "
        f"for {mission.units} units ({len(events) / mission.units:.1f} events per unit); "
        "child executions per unit: see benchmarks/overhead.py"
    )


def test_a_mission_whose_nodes_lack_send_task_success_is_refused_access(
    stack: LocalStack, cloud: EmbeddedCloud
) -> None:
    """The same mission with one grant missing from the node role: every node's report is
    refused with AccessDeniedException, as AWS refuses it."""
    noop_profile(stack, shards=4, maxNodes=2)
    with without_grant(cloud, stack, "node", "states:SendTaskSuccess"):
        node = as_principal(cloud, stack, "node")
        with NodeSim(stack.services, node_svc=node) as nodes:
            upload_sample(stack, "incoming/denied.txt", SAMPLE)
            started = wait_for(lambda: executions(stack), 20, "the S3 event to start an execution")
            wait_for(lambda: len(nodes.errors) >= 2, 30, "both nodes' reports to be refused")
        stack.services.sfn.stop_execution(executionArn=started[0]["executionArn"])
    codes = {getattr(e, "response", {}).get("Error", {}).get("Code") for e in nodes.errors}
    assert codes == {"AccessDeniedException"}, nodes.errors
    assert all("states:SendTaskSuccess" in str(e) for e in nodes.errors)


def test_manual_params_override_the_profile(stack: LocalStack) -> None:
    noop_profile(stack, shards=12, maxNodes=4, topK=5)
    _upload(stack, "incoming/manual.txt")
    with NodeSim(stack.services) as nodes:
        arn = manual(
            stack,
            "incoming/manual.txt",
            shards=6,
            maxNodes=2,
            instanceTypes=["c7i.large", "m7i.large"],
            spotAttempts=1,
            heartbeatSeconds=15,
            topK=3,
        )
        desc = wait_execution(stack, arn)
    assert desc["status"] == "SUCCEEDED", desc
    mission = mission_of(stack, arn)
    params = mission.params
    assert (params["shards"], params["maxNodes"], params["topK"]) == (6, 2, 3)
    assert params["instanceTypes"] == ["c7i.large", "m7i.large"]
    assert (mission.units, len(nodes.attempts)) == (2, 2)


def test_spot_interruption_relaunches_only_unfinished_shards_then_on_demand(
    stack: LocalStack,
) -> None:
    noop_profile(stack, shards=4, maxNodes=1, spotAttempts=1)
    with NodeSim(stack.services, first_attempt_only("interrupt")) as nodes:
        _upload(stack, "incoming/spot.txt")
        arn = manual(stack, "incoming/spot.txt")
        desc = wait_execution(stack, arn)
    assert desc["status"] == "SUCCEEDED", desc
    first, second = nodes.attempts
    assert (first.attempt, second.attempt) == (1, 2)
    assert first.instance_lifecycle == "spot"
    assert second.instance_lifecycle != "spot"  # On-Demand after spotAttempts=1 interruption
    assert set(first.shards_run).isdisjoint(second.shards_run)
    assert len(first.shards_run) == 2 and len(second.shards_run) == 2
    mission = mission_of(stack, arn)
    assert (mission.shards_done, mission.interruptions, mission.retries) == (4, 1, 1)


def test_silent_node_times_out_and_its_late_report_is_refused(stack: LocalStack) -> None:
    noop_profile(stack, shards=2, maxNodes=1, heartbeatSeconds=2)
    with NodeSim(stack.services, first_attempt_only("silent")) as nodes:
        _upload(stack, "incoming/silent.txt")
        arn = manual(stack, "incoming/silent.txt")
        desc = wait_execution(stack, arn, timeout=90)
    assert desc["status"] == "SUCCEEDED", desc
    stale, fresh = nodes.attempts[0], nodes.attempts[-1]
    assert (stale.attempt, fresh.attempt) == (1, 2)
    mission = mission_of(stack, arn)
    # The dead attempt wakes up and reports: every write is refused, nothing is counted.
    shard = stack.services.store.list_shards(mission.mission_id)[0]
    assert not nodes.run_shard(stale, shard.shard_id, 999)
    after = stack.services.store.get_mission(mission.mission_id)
    assert after.shards_done == 2
    assert stack.services.store.list_shards(mission.mission_id)[0].result_key == shard.result_key


def test_permanent_failure_within_tolerance_is_partial(stack: LocalStack) -> None:
    noop_profile(stack, shards=4, maxNodes=4, maxFailedShardPercent=25)
    with NodeSim(stack.services, unit_scripted({("u0001", 1): "fail"})):
        _upload(stack, "incoming/partial.txt")
        arn = manual(stack, "incoming/partial.txt")
        desc = wait_execution(stack, arn)
    assert desc["status"] == "SUCCEEDED", desc
    mission = mission_of(stack, arn)
    assert (mission.status, mission.shards_done, mission.shards_failed) == ("PARTIAL", 3, 1)
    assert mission.failed_shards is not None
    assert [f.shard_id for f in mission.failed_shards] == ["s000001"]
    assert "Shard.Failed" in mission.failed_shards[0].error
    shards = {s.shard_id: s.status for s in stack.services.store.list_shards(mission.mission_id)}
    assert shards["s000001"] is ShardStatus.FAILED


def test_permanent_failure_beyond_tolerance_fails_the_mission(stack: LocalStack) -> None:
    noop_profile(stack, shards=4, maxNodes=4, maxFailedShardPercent=10)
    with NodeSim(stack.services, unit_scripted({("u0001", 1): "fail"})):
        _upload(stack, "incoming/failed.txt")
        arn = manual(stack, "incoming/failed.txt")
        desc = wait_execution(stack, arn)
    assert desc["status"] == "FAILED"
    assert desc["error"] == "Mission.TooManyFailures"
    assert "s000001" in desc["cause"]
    [message] = [m for m in notices(stack) if "FAILED" in m]
    assert "Shards: 3/4 done, 1 failed" in message


def test_duplicate_s3_event_starts_one_mission(stack: LocalStack) -> None:
    noop_profile(stack, shards=2, maxNodes=2)
    event = _object_created_event(stack, "incoming/dup.txt")
    with NodeSim(stack.services) as nodes:
        first = start_manual(stack, event)
        second = start_manual(stack, event)
        a, b = wait_execution(stack, first), wait_execution(stack, second)
    assert a["status"] == b["status"] == "SUCCEEDED"
    outputs = sorted(json.loads(d.get("output", "{}")).get("duplicate", False) for d in (a, b))
    assert outputs == [False, True]
    assert len(nodes.attempts) == 2  # one set of instances
    missions = list(stack.services.store.scan_missions())
    assert len(missions) == 1


def test_deployment_node_cap_bounds_the_map_concurrency(
    cloud: EmbeddedCloud, stack: LocalStack
) -> None:
    """``max_concurrent_nodes`` (the local pool's capacity) caps units running at once
    below the mission's maxNodes; every unit still runs, one after another."""
    # The handlers read it from their Settings: the stack as deployed with the cap.
    capped = reset(cloud, stack, settings=replace(stack.settings, max_concurrent_nodes=1))
    noop_profile(capped, shards=6, maxNodes=3)
    _upload(capped, "incoming/capped.txt")
    with NodeSim(capped.services, hold_seconds=0.5) as nodes:
        arn = manual(capped, "incoming/capped.txt")
        desc = wait_execution(capped, arn)
    assert desc["status"] == "SUCCEEDED", desc
    mission = mission_of(capped, arn)
    assert (mission.units, mission.shards_done, len(nodes.attempts)) == (3, 6, 3)
    assert nodes.peak_live == 1
    [plan] = [o for o in _task_outputs(capped, arn) if "maxConcurrency" in o]
    assert plan["maxConcurrency"] == 1


def _task_outputs(stack: LocalStack, arn: str) -> list[dict[str, Any]]:
    history = stack.services.sfn.get_execution_history(executionArn=arn, maxResults=1000)
    return [
        json.loads(e["taskSucceededEventDetails"]["output"]).get("Payload") or {}
        for e in history["events"]
        if "taskSucceededEventDetails" in e
    ]


def _upload(stack: LocalStack, key: str) -> None:
    """Upload without triggering the S3 rule (these tests start the mission by hand)."""
    events = stack.services.events
    events.disable_rule(Name=SOURCE_RULE_NAME)
    try:
        upload_sample(stack, key, SAMPLE)
    finally:
        events.enable_rule(Name=SOURCE_RULE_NAME)


def _object_created_event(stack: LocalStack, key: str) -> dict[str, Any]:
    s3 = stack.services.s3
    _upload(stack, key)
    head = s3.head_object(Bucket=stack.settings.source_bucket, Key=key)
    return {
        "version": "0",
        "id": "dup-event",
        "detail-type": "Object Created",
        "source": "aws.s3",
        "detail": {
            "bucket": {"name": stack.settings.source_bucket},
            "object": {
                "key": key,
                "size": head["ContentLength"],
                "etag": head["ETag"].strip('"'),
                "version-id": head.get("VersionId"),
            },
        },
    }
