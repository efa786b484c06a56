"""mission_cfg and node_watch handlers against the embedded cloud."""

from __future__ import annotations

import json
from typing import Any

import pytest

from lambdas import mission_cfg, node_watch
from localcloud.stack import SOURCE_RULE_NAME, LocalStack
from tests.functional.conftest import start_manual, wait_execution, wait_for
from tests.functional.simnode import NodeSim
from workflow.errors import ProfileInvalid, ProfileNotFound
from workflow.states import MissionStatus


class Ctx:
    function_name = "test"
    memory_limit_in_mb = 128
    invoked_function_arn = "arn:aws:lambda:local:0:function:test"
    aws_request_id = "req-1"

    def get_remaining_time_in_millis(self) -> int:
        return 30_000


def http(method: str, name: str | None = None, body: Any = None) -> dict[str, Any]:
    event: dict[str, Any] = {
        "httpMethod": method,
        "pathParameters": {"name": name} if name else None,
    }
    if body is not None:
        event["body"] = json.dumps(body)
    resp = mission_cfg.handler(event, Ctx())
    return {"status": resp["statusCode"], **json.loads(resp["body"])}


def test_profiles_round_trip_over_http(stack: LocalStack) -> None:
    assert http("PUT", "gpu-free", {"params": {"shards": 16, "topK": 5}})["status"] == 200
    got = http("GET", "gpu-free")
    assert (got["status"], got["params"]) == (200, {"shards": 16, "topK": 5})
    names = [p["profile"] for p in http("GET")["profiles"]]
    assert names == ["default", "gpu-free"]
    assert http("DELETE", "gpu-free")["status"] == 200
    assert http("GET", "gpu-free")["status"] == 404


def test_invalid_profiles_are_refused_with_a_reason(stack: LocalStack) -> None:
    bad = http("PUT", "p", {"params": {"shards": 0}})
    assert bad["status"] == 400 and bad["error"] == "Profile.Invalid"
    assert "profile.shards" in bad["message"]
    assert http("PUT", "bad name!", {"params": {}})["status"] == 400
    with pytest.raises(ProfileNotFound):
        mission_cfg.handler({"op": "get", "name": "nope"}, Ctx())
    with pytest.raises(ProfileInvalid):
        mission_cfg.handler({"op": "put", "name": "p", "params": {"maxNodes": 10**6}}, Ctx())


def test_a_profile_below_the_deployments_heartbeat_floor_is_refused(stack: LocalStack) -> None:
    """The floor is the deployment's (the handler's Settings), not a constant of the code."""
    floor = stack.settings.min_heartbeat_seconds
    bad = http("PUT", "eager", {"params": {"heartbeatSeconds": floor - 1}})
    assert bad["status"] == 400 and bad["error"] == "Profile.Invalid", bad
    assert "heartbeatSeconds" in bad["message"] and str(floor) in bad["message"]
    assert http("GET", "eager")["status"] == 404  # nothing written
    assert http("PUT", "eager", {"params": {"heartbeatSeconds": floor}})["status"] == 200


def _start_held_mission(stack: LocalStack, shards: int = 2) -> tuple[str, str]:
    """A mission whose nodes never report (no NodeSim), so node_watch has something to do."""
    stack.services.events.disable_rule(Name=SOURCE_RULE_NAME)
    stack.services.store.put_profile(
        "default", {"workload": "noop", "heartbeatSeconds": 600, "spotAttempts": 1}, 0.0
    )
    stack.services.s3.put_object(
        Bucket=stack.settings.source_bucket, Key="incoming/w.txt", Body=b"a\nb\nc\nd\n"
    )
    arn = start_manual(
        stack,
        {
            "input": {"bucket": stack.settings.source_bucket, "key": "incoming/w.txt"},
            "params": {"shards": shards, "maxNodes": 1},
        },
    )
    return arn, _running_instance(stack)


def _running_instance(stack: LocalStack, exclude: tuple[str, ...] = ()) -> str:
    def find() -> str | None:
        resp = stack.services.ec2.describe_instances(
            Filters=[{"Name": "instance-state-name", "Values": ["running", "pending"]}]
        )
        for r in resp["Reservations"]:
            for i in r["Instances"]:
                if i["InstanceId"] not in exclude:
                    return str(i["InstanceId"])
        return None

    return wait_for(find, 30, "a node to be launched")


def test_spot_warning_fails_the_token_at_once_and_next_launch_is_on_demand(
    stack: LocalStack,
) -> None:
    arn, first = _start_held_mission(stack)
    event = {
        "detail-type": "EC2 Spot Instance Interruption Warning",
        "source": "aws.ec2",
        "detail": {"instance-id": first, "instance-action": "terminate"},
    }
    result = node_watch.handler(event, Ctx())
    assert result == {"action": "failed-token", "error": "Spot.Interrupted", "reported": True}
    second = _running_instance(stack, exclude=(first,))
    lifecycle = stack.services.ec2.describe_instances(InstanceIds=[second])["Reservations"][0][
        "Instances"
    ][0].get("InstanceLifecycle")
    assert lifecycle != "spot"
    # the same warning again (EventBridge delivers at least once) changes nothing
    assert node_watch.handler(event, Ctx())["action"] == "ignored"
    with NodeSim(stack.services):
        assert wait_execution(stack, arn)["status"] == "SUCCEEDED"


def test_terminated_node_is_lost_and_relaunched(stack: LocalStack) -> None:
    arn, first = _start_held_mission(stack)
    stack.services.ec2.terminate_instances(InstanceIds=[first])
    event = {
        "detail-type": "EC2 Instance State-change Notification",
        "source": "aws.ec2",
        "detail": {"instance-id": first, "state": "terminated"},
    }
    assert node_watch.handler(event, Ctx())["error"] == "Node.Lost"
    _running_instance(stack, exclude=(first,))
    with NodeSim(stack.services):
        assert wait_execution(stack, arn)["status"] == "SUCCEEDED"


def test_aborted_execution_terminates_the_missions_nodes(stack: LocalStack) -> None:
    arn, node = _start_held_mission(stack)
    stack.services.sfn.stop_execution(executionArn=arn)
    event = {
        "detail-type": "Step Functions Execution Status Change",
        "source": "aws.states",
        "detail": {"executionArn": arn, "status": "ABORTED"},
    }
    result = node_watch.handler(event, Ctx())
    assert result["action"] == "terminated" and result["instances"] == [node]
    state = stack.services.ec2.describe_instances(InstanceIds=[node])["Reservations"][0][
        "Instances"
    ][0]["State"]["Name"]
    assert state in {"shutting-down", "terminated"}
    [mission] = list(stack.services.store.scan_missions())
    assert mission.status is MissionStatus.CANCELLED


def test_events_about_other_instances_are_ignored(stack: LocalStack) -> None:
    image = stack.services.ec2.describe_images(Owners=["amazon"])["Images"][0]["ImageId"]
    other = stack.services.ec2.run_instances(ImageId=image, MinCount=1, MaxCount=1)
    iid = other["Instances"][0]["InstanceId"]
    event = {
        "detail-type": "EC2 Instance State-change Notification",
        "detail": {"instance-id": iid, "state": "terminated"},
    }
    assert node_watch.handler(event, Ctx()) == {
        "action": "ignored",
        "reason": "not a lightHPC node",
    }
