"""The use cases end to end on the in-memory ports: plan → launch → node commits → aggregate.

No emulator, no threads: what a mission does (which shards run where, what is refused, what
the user reads at the end) in milliseconds. The node is simulated by the store writes the
real agent makes (``node_agent.agent``/``unit_run``).
"""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from tests.fakes import FakeCloud
from workflow import profiles
from workflow.aggregation import aggregate_mission
from workflow.attempt import UnitAttempt
from workflow.errors import (
    MissionInvalidInput,
    NodeCapacity,
    NodeTerminateFailed,
    ProfileInvalid,
    ProfileNotFound,
    SpotInterrupted,
)
from workflow.keys import manifest_key, shard_result_key
from workflow.launching import LaunchCommand, launch_unit, record_unit_failure
from workflow.planning import plan_mission
from workflow.settings import Settings
from workflow.states import MissionStatus, ShardStatus, UnitStatus
from workflow.watch import EXECUTION_CHANGE, SPOT_WARNING, handle_event

SAMPLE = b"".join(f"item-{i}\n".encode() for i in range(6))
KEY = "incoming/sample.txt"
ARN = "arn:aws:states:us-east-1:123456789012:execution:lighthpc-mission:first"


def start(cloud: FakeCloud, arn: str = ARN, key: str = KEY, **params: Any) -> str:
    """Upload the sample (once) and run PlanMission on a manual input; the mission id."""
    bucket = cloud.settings.source_bucket
    if (bucket, key) not in cloud.objects.objects:
        cloud.objects.put_bytes(bucket, key, SAMPLE)
    event = {"input": {"bucket": bucket, "key": key}, "params": {"workload": "noop", **params}}
    return plan_mission(event, arn, cloud.ports).mission_id


def launch(cloud: FakeCloud, mission_id: str, unit_id: str, attempt: int) -> dict[str, Any]:
    """LaunchNode as the Map's child execution calls it (RetryCount = attempt - 1)."""
    payload = {
        "missionId": mission_id,
        "unitId": unit_id,
        "retryCount": attempt - 1,
        "taskToken": token(unit_id, attempt),
    }
    return launch_unit(LaunchCommand.parse(payload), cloud.ports)


def token(unit_id: str, attempt: int) -> str:
    return f"token-{unit_id}-{attempt}"


def commit(cloud: FakeCloud, mission_id: str, shard_id: str, attempt: int) -> bool:
    """A node's result: upload to the attempt's key, then the conditional DONE move."""
    shard = cloud.store.get_shard(mission_id, shard_id)
    assert shard is not None
    key = shard_result_key(mission_id, shard_id, attempt, ".json")
    body = json.dumps({"shard": shard_id, "items": shard.end - shard.start}).encode()
    cloud.objects.put_bytes(cloud.settings.result_bucket, key, body)
    return UnitAttempt(cloud.store, mission_id, shard.unit_id, attempt).commit(shard_id, key, {})


def run_node(cloud: FakeCloud, mission_id: str, unit_id: str, attempt: int) -> list[str]:
    """The node of ``attempt``: claim and commit each shard queued for it, then report."""
    protocol = UnitAttempt(cloud.store, mission_id, unit_id, attempt)
    unit = cloud.store.get_unit(mission_id, unit_id)
    assert protocol.start(f"i-{unit_id}-{attempt}")
    ran = []
    for shard in protocol.shards_to_run(unit):
        assert protocol.claim(shard.shard_id)
        assert commit(cloud, mission_id, shard.shard_id, attempt)
        ran.append(shard.shard_id)
    assert protocol.succeed()
    cloud.tokens.report_success(token(unit_id, attempt), {"shards": len(ran)})
    return ran


def result_of(cloud: FakeCloud, uri: str | None) -> Any:
    assert uri is not None
    bucket, _, key = uri.removeprefix("s3://").partition("/")
    return json.loads(cloud.objects.get_bytes(bucket, key))


def test_a_mission_runs_from_the_sample_to_its_result() -> None:
    cloud = FakeCloud()
    began = time.monotonic()
    mission_id = start(cloud, shards=3, maxNodes=2)
    manifest = cloud.objects.get_bytes(cloud.settings.result_bucket, manifest_key(mission_id))
    assert json.loads(manifest) == [
        {"unitId": "u0000", "shards": 2},
        {"unitId": "u0001", "shards": 1},
    ]
    planned = cloud.store.get_mission(mission_id)
    assert (planned.status, planned.shards, planned.units) == (MissionStatus.RUNNING, 3, 2)
    assert (planned.sample.version_id, planned.sample.size) == ("1", len(SAMPLE))
    for unit_id in ("u0000", "u0001"):
        assert launch(cloud, mission_id, unit_id, 1)["capacity"] == "spot"
        run_node(cloud, mission_id, unit_id, 1)
    summary = aggregate_mission(mission_id, cloud.ports)
    assert (summary.status, summary.done, summary.failed, summary.retries) == (
        MissionStatus.SUCCEEDED,
        3,
        0,
        0,
    )
    assert result_of(cloud, summary.result_uri) == {"items": 6, "shards": 3}
    final = cloud.store.get_mission(mission_id)
    assert (final.status, final.shards_done, final.result) == (
        MissionStatus.SUCCEEDED,
        3,
        summary.result_uri,
    )
    assert [n.unit_id for n in cloud.compute.nodes.values()] == ["u0000", "u0001"]
    assert time.monotonic() - began < 5  # milliseconds in practice; seconds would mean I/O


def test_a_spot_warning_fails_the_attempt_and_the_relaunch_runs_only_open_shards_on_demand() -> (
    None
):
    cloud = FakeCloud()
    mission_id = start(cloud, shards=3, maxNodes=1, spotAttempts=1)
    first = launch(cloud, mission_id, "u0000", 1)
    store = cloud.store
    assert store.set_unit(mission_id, "u0000", 1, {"status": UnitStatus.RUNNING.value})
    assert store.move_shard(mission_id, "s000000", ShardStatus.RUNNING, attempt=1)
    assert commit(cloud, mission_id, "s000000", 1)
    assert store.move_shard(mission_id, "s000001", ShardStatus.RUNNING, attempt=1)
    warning = {"detail-type": SPOT_WARNING, "detail": {"instance-id": first["instanceId"]}}
    assert handle_event(warning, cloud.ports)["error"] == SpotInterrupted.error_name
    assert cloud.tokens.failures[token("u0000", 1)][0] == "Spot.Interrupted"
    second = launch(cloud, mission_id, "u0000", 2)
    assert (second["capacity"], second["shards"]) == ("on-demand", 2)
    assert store.move_shard(mission_id, "s000001", ShardStatus.RUNNING, attempt=2)
    assert not commit(cloud, mission_id, "s000001", 1)  # the interrupted node's late result
    assert commit(cloud, mission_id, "s000001", 2)
    assert run_node(cloud, mission_id, "u0000", 2) == ["s000002"]
    late = store.get_shard(mission_id, "s000001")
    assert late is not None and str(late.result_key).endswith("attempt-002.json")
    summary = aggregate_mission(mission_id, cloud.ports)
    assert (summary.status, summary.done, summary.retries, summary.interruptions) == (
        MissionStatus.SUCCEEDED,
        3,
        1,
        1,
    )
    assert cloud.store.get_mission(mission_id).retries == 1


def test_the_same_upload_twice_plans_one_mission() -> None:
    cloud = FakeCloud()
    mission_id = start(cloud, shards=3)
    items = {k: dict(v) for k, v in cloud.store.trans[mission_id].items()}
    event = {"input": {"bucket": cloud.settings.source_bucket, "key": KEY}}
    again = plan_mission(
        {**event, "params": {"workload": "noop", "shards": 3}}, "arn:2", cloud.ports
    )
    assert (again.mission_id, again.duplicate) == (mission_id, True)
    assert list(cloud.store.missions) == [mission_id]
    assert cloud.store.get_mission(mission_id).execution_arn == ARN
    assert cloud.store.trans[mission_id] == items


@pytest.mark.parametrize(
    ("bucket", "key", "cause"),
    [
        ("lighthpc-source", "incoming/absent.txt", r"cannot be read \(NoSuchKey\)"),
        ("elsewhere", KEY, "is not the mission source bucket"),
        ("lighthpc-source", "outside/sample.txt", "outside the watched prefix"),
    ],
)
def test_an_input_that_cannot_be_read_is_rejected_before_any_write(
    bucket: str, key: str, cause: str
) -> None:
    cloud = FakeCloud()
    cloud.objects.put_bytes(bucket, "outside/sample.txt", SAMPLE)
    with pytest.raises(MissionInvalidInput, match=cause):
        plan_mission({"input": {"bucket": bucket, "key": key}}, ARN, cloud.ports)
    assert cloud.store.missions == {} and cloud.store.trans == {}


def test_a_failed_unit_fails_its_open_shards_and_the_tolerance_decides() -> None:
    cloud = FakeCloud()
    mission_id = start(cloud, shards=4, maxNodes=2, maxFailedShardPercent=50)
    launch(cloud, mission_id, "u0000", 1)
    run_node(cloud, mission_id, "u0000", 1)
    node = launch(cloud, mission_id, "u0001", 1)["instanceId"]
    error = {"Error": "Shard.Failed", "Cause": json.dumps({"errorMessage": "exit status 3"})}
    payload = {"missionId": mission_id, "unitId": "u0001", "error": error}
    assert record_unit_failure(payload, cloud.ports) == {"unitId": "u0001", "failedShards": 2}
    assert node in cloud.compute.terminated
    summary = aggregate_mission(mission_id, cloud.ports)
    assert (summary.status, summary.done, summary.failed) == (MissionStatus.PARTIAL, 2, 2)
    assert summary.failed_shards == ("s000002", "s000003")
    failed = cloud.store.get_mission(mission_id).failed_shards
    assert failed is not None
    assert failed[0].error == "Shard.Failed: exit status 3"


def test_a_terminate_that_fails_does_not_fail_the_unit(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """RecordUnitFailure must end cleanly whatever EC2 says: the shards are failed already,
    and an error here would fail the child execution (AWS's Map tolerance is 0 by default)."""
    cloud = FakeCloud()
    mission_id = start(cloud, shards=2, maxNodes=1)
    node = launch(cloud, mission_id, "u0000", 1)["instanceId"]

    def refuse(instance_ids: object) -> None:
        raise NodeTerminateFailed("UnauthorizedOperation")

    monkeypatch.setattr(cloud.compute, "terminate", refuse)
    payload = {"missionId": mission_id, "unitId": "u0000", "error": {"Error": "Node.Lost"}}
    assert record_unit_failure(payload, cloud.ports) == {"unitId": "u0000", "failedShards": 2}
    assert f"could not terminate {node}" in caplog.text


def test_an_aborted_execution_terminates_every_node_and_marks_the_mission() -> None:
    cloud = FakeCloud()
    mission_id = start(cloud, shards=2, maxNodes=2)
    nodes = [launch(cloud, mission_id, u, 1)["instanceId"] for u in ("u0000", "u0001")]
    event = {"detail-type": EXECUTION_CHANGE, "detail": {"status": "ABORTED", "executionArn": ARN}}
    assert handle_event(event, cloud.ports)["instances"] == nodes
    assert sorted(cloud.compute.terminated) == nodes
    assert cloud.store.get_mission(mission_id).status is MissionStatus.CANCELLED


def test_a_relaunch_after_every_shard_is_done_reports_success_without_a_node() -> None:
    cloud = FakeCloud()
    mission_id = start(cloud, shards=2, maxNodes=1)
    launch(cloud, mission_id, "u0000", 1)
    for shard_id in ("s000000", "s000001"):  # done, but the node's report was lost
        assert cloud.store.move_shard(mission_id, shard_id, ShardStatus.RUNNING, attempt=1)
        assert commit(cloud, mission_id, shard_id, 1)
    assert launch(cloud, mission_id, "u0000", 2)["launched"] is False
    assert cloud.tokens.successes[token("u0000", 2)] == {"unitId": "u0000", "alreadyDone": True}
    assert len(cloud.compute.launched) == 1
    assert cloud.store.get_unit(mission_id, "u0000").status is UnitStatus.SUCCEEDED


def test_a_launch_retried_after_no_capacity_starts_exactly_one_node() -> None:
    cloud = FakeCloud()
    mission_id = start(cloud, shards=2, maxNodes=1)
    cloud.compute.capacity_errors = 1
    with pytest.raises(NodeCapacity):
        launch(cloud, mission_id, "u0000", 1)
    launched = launch(cloud, mission_id, "u0000", 1)  # Step Functions' Retry: same payload
    assert (launched["attempt"], launched["shards"], len(cloud.compute.launched)) == (1, 2, 1)
    assert cloud.store.get_unit(mission_id, "u0000").instance_id == launched["instanceId"]


def test_profiles_are_validated_as_a_mission_would_see_them() -> None:
    store = FakeCloud().store
    floor = Settings().min_heartbeat_seconds
    fast = {"workload": "noop", "shards": 2}
    profiles.put_profile(store, "fast", fast, min_heartbeat_seconds=floor)
    assert profiles.get_profile(store, "fast")["params"] == {"workload": "noop", "shards": 2}
    with pytest.raises(ProfileInvalid, match="shards"):
        profiles.put_profile(store, "bad", {"shards": 0}, min_heartbeat_seconds=floor)
    # A profile below the deployment's heartbeat floor could only start refused missions.
    with pytest.raises(ProfileInvalid, match="heartbeatSeconds"):
        profiles.put_profile(
            store, "eager", {"heartbeatSeconds": floor - 1}, min_heartbeat_seconds=floor
        )
    profiles.put_profile(store, "eager", {"heartbeatSeconds": floor}, min_heartbeat_seconds=floor)
    profiles.delete_profile(store, "eager")
    assert profiles.list_profiles(store) == {
        "profiles": [{"profile": "fast", "params": {"workload": "noop", "shards": 2}}]
    }
    profiles.delete_profile(store, "fast")
    with pytest.raises(ProfileNotFound):
        profiles.get_profile(store, "fast")
