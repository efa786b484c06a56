"""The EventBridge parity fixes: 6a state-machine targets, 6b the S3 event shape.

For every fix there are two tests: ``test_bug_still_present_<fix>`` reverts the fix and
shows moto still has the bug (it FAILS the day moto fixes it: then drop the fix), and
``test_<fix>_...`` shows the behaviour with the fix applied.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from localcloud import moto_compat
from tests.functional._compat_fixtures import Harness, open_harness, output_of

ISO_TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")


@pytest.fixture(scope="module")
def harness() -> Iterator[Harness]:
    yield from open_harness()


# -------------------------------------------------------- 6a. eventbridge_sfn_target


def _echo_machine(harness: Harness) -> str:
    return harness.state_machine(
        {"StartAt": "Echo", "States": {"Echo": {"Type": "Pass", "End": True}}}
    )


def _rule_to(harness: Harness, machine: str, pattern: dict[str, Any], **target: Any) -> None:
    events = harness.client("events")
    rule = harness.unique("rule")
    events.put_rule(Name=rule, EventPattern=json.dumps(pattern))
    events.put_targets(
        Rule=rule,
        Targets=[{"Id": "sfn", "Arn": machine, "RoleArn": harness.role_arn, **target}],
    )


def _rules_for(harness: Harness, machine: str) -> list[str]:
    names: list[str] = harness.client("events").list_rule_names_by_target(TargetArn=machine)[
        "RuleNames"
    ]
    return names


def _executions(harness: Harness, machine: str) -> list[dict[str, Any]]:
    listed: list[dict[str, Any]] = harness.sfn.list_executions(stateMachineArn=machine)[
        "executions"
    ]
    return listed


def test_bug_still_present_eventbridge_sfn_target(harness: Harness) -> None:
    """Fails once moto delivers to state-machine targets: drop the fix."""
    machine = _echo_machine(harness)
    source = harness.unique("lighthpc.test")
    _rule_to(harness, machine, {"source": [source]})
    events = harness.cloud.client("events", config=Config(retries={"max_attempts": 0}))
    entry = {"Source": source, "DetailType": "Test", "Detail": json.dumps({"k": "v"})}
    with moto_compat.EVENTBRIDGE_SFN_TARGET.reverted(), pytest.raises(ClientError):
        events.put_events(Entries=[entry])  # moto: NotImplementedError -> HTTP 500
    assert _executions(harness, machine) == []


def test_eventbridge_rule_starts_execution_with_the_full_event(harness: Harness) -> None:
    machine = _echo_machine(harness)
    source = harness.unique("lighthpc.test")
    sqs = harness.client("sqs")
    queue_url = sqs.create_queue(QueueName=harness.unique("also"))["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])
    _rule_to(harness, machine, {"source": [source]})
    harness.client("events").put_targets(
        Rule=_rules_for(harness, machine)[0],
        Targets=[{"Id": "queue", "Arn": queue_arn["Attributes"]["QueueArn"]}],
    )
    entry = {"Source": source, "DetailType": "Test", "Detail": json.dumps({"k": "v"})}
    harness.client("events").put_events(Entries=[entry])
    [execution] = _executions(harness, machine)
    event = output_of(harness.wait(execution["executionArn"]))
    assert set(event) == {
        "version", "id", "detail-type", "source", "account", "time", "region", "resources", "detail"
    }  # fmt: skip
    assert (event["source"], event["detail-type"], event["detail"]) == (source, "Test", {"k": "v"})
    assert ISO_TIME.match(event["time"])
    assert event["region"] == harness.cloud.region
    [message] = sqs.receive_message(QueueUrl=queue_url)["Messages"]  # other targets still work
    assert json.loads(message["Body"])["id"] == event["id"]


def test_eventbridge_target_input_path(harness: Harness) -> None:
    machine = _echo_machine(harness)
    source = harness.unique("lighthpc.test")
    _rule_to(harness, machine, {"source": [source]}, InputPath="$.detail")
    entry = {"Source": source, "DetailType": "Test", "Detail": json.dumps({"k": "v"})}
    harness.client("events").put_events(Entries=[entry])
    [execution] = _executions(harness, machine)
    assert output_of(harness.wait(execution["executionArn"])) == {"k": "v"}


# --------------------------------------------------- 6b. s3_eventbridge_event_shape


def _s3_upload_machine(harness: Harness) -> tuple[str, str]:
    """A versioned bucket sending to EventBridge, and a rule starting an echo machine."""
    s3 = harness.client("s3")
    bucket = harness.unique("samples")
    s3.create_bucket(Bucket=bucket)
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    s3.put_bucket_notification_configuration(
        Bucket=bucket, NotificationConfiguration={"EventBridgeConfiguration": {}}
    )
    machine = _echo_machine(harness)
    pattern = {
        "source": ["aws.s3"],
        "detail-type": ["Object Created"],
        "detail": {"bucket": {"name": [bucket]}},
    }
    _rule_to(harness, machine, pattern)
    return bucket, machine


def test_bug_still_present_s3_eventbridge_event_shape(harness: Harness) -> None:
    """Fails once moto sends S3 events in AWS's shape (etag, reason, ids): drop the fix."""
    bucket, machine = _s3_upload_machine(harness)
    with moto_compat.S3_EVENTBRIDGE_EVENT_SHAPE.reverted():
        harness.client("s3").put_object(Bucket=bucket, Key="a.smi", Body=b"C")
        harness.client("s3").put_object(Bucket=bucket, Key="b.smi", Body=b"CC")
    events = [output_of(harness.wait(e["executionArn"])) for e in _executions(harness, machine)]
    assert len(events) == 2
    assert all(
        "eTag" in e["detail"]["object"] and "etag" not in e["detail"]["object"] for e in events
    )
    assert {e["detail"]["reason"] for e in events} == {"ObjectCreated"}  # AWS: PutObject
    assert events[0]["id"] == events[1]["id"]  # AWS: a UUID per event


def test_bug_still_present_s3_eventbridge_reaches_no_state_machine(harness: Harness) -> None:
    """Fails once moto starts executions for S3 events routed to a state machine."""
    bucket, machine = _s3_upload_machine(harness)
    with moto_compat.EVENTBRIDGE_SFN_TARGET.reverted():
        harness.client("s3").put_object(Bucket=bucket, Key="a.smi", Body=b"C")
    assert _executions(harness, machine) == []  # delivery is synchronous in moto


def test_s3_object_created_reaches_the_state_machine_in_aws_shape(harness: Harness) -> None:
    bucket, machine = _s3_upload_machine(harness)
    put = harness.client("s3").put_object(Bucket=bucket, Key="in/query 1.smi", Body=b"CCO\n")
    [execution] = _executions(harness, machine)
    event = output_of(harness.wait(execution["executionArn"]))
    assert (event["source"], event["detail-type"]) == ("aws.s3", "Object Created")
    assert event["resources"] == [f"arn:aws:s3:::{bucket}"]
    assert ISO_TIME.match(event["time"])
    assert uuid.UUID(event["id"])
    detail = event["detail"]
    assert detail["bucket"] == {"name": bucket}
    assert detail["reason"] == "PutObject"
    obj = detail["object"]
    assert (obj["key"], obj["size"], obj["etag"]) == ("in/query 1.smi", 4, put["ETag"].strip('"'))
    assert obj["version-id"] == put["VersionId"]
    assert re.fullmatch(r"[0-9A-F]{18}", obj["sequencer"])
