"""The moto compatibility fixes (DESIGN §6) and the in-process Lambda runtime.

For every fix there are two tests: ``test_bug_still_present_<fix>`` reverts the fix and
shows moto still has the bug (it FAILS the day moto fixes it: then drop the fix), and
``test_<fix>_...`` shows the behaviour with the fix applied.
"""

from __future__ import annotations

import json
import os
import queue
import re
import sys
import threading
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from aws_lambda_powertools import Logger
from botocore.config import Config
from botocore.exceptions import ClientError
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from localcloud import moto_compat
from localcloud.emulator import MOTO_PORT_ENV, EmbeddedCloud
from localcloud.lambda_runtime import LambdaContext
from tests.functional._compat_fixtures import (
    Harness,
    open_harness,
    output_of,
    state_machine_role,
    wait_for,
)
from workflow.errors import MissionInvalidInput

HEARTBEAT_SECONDS = 1
ISO_TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")


# ------------------------------------------------------------------ lifecycle first
# (it needs no other EmbeddedCloud running, so it runs before the module fixture starts)


def _hello_machine(cloud: EmbeddedCloud, role_arn: str) -> str:
    arn = cloud.deploy_function("hello", lambda event, _ctx: {"hello": event["name"]})
    definition = {
        "StartAt": "Hello",
        "States": {
            "Hello": {
                "Type": "Task",
                "Resource": "arn:aws:states:::lambda:invoke",
                "Parameters": {"FunctionName": arn, "Payload.$": "$"},
                "OutputPath": "$.Payload",
                "End": True,
            }
        },
    }
    sfn = cloud.client("stepfunctions")
    return str(
        sfn.create_state_machine(name="hello", definition=json.dumps(definition), roleArn=role_arn)[
            "stateMachineArn"
        ]
    )


def test_embedded_cloud_starts_and_stops_twice_cleanly(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(MOTO_PORT_ENV, "4999")
    EmbeddedCloud().stop()  # stopping a cloud that never started changes nothing
    assert os.environ[MOTO_PORT_ENV] == "4999"
    for _ in range(2):
        with EmbeddedCloud() as cloud:
            assert os.environ[MOTO_PORT_ENV] == str(cloud.port)
            assert moto_compat.EARLY_TASK_OUTCOME.is_applied()
            sfn = cloud.client("stepfunctions")
            assert sfn.list_state_machines()["stateMachines"] == []  # the first run left nothing
            assert cloud.client("lambda").list_functions()["Functions"] == []
            role = state_machine_role(cloud)
            machine = _hello_machine(cloud, role)
            started = sfn.start_execution(stateMachineArn=machine, input='{"name": "moto"}')
            described = Harness(cloud, sfn, role).wait(started["executionArn"])
            assert output_of(described) == {"hello": "moto"}
        assert os.environ[MOTO_PORT_ENV] == "4999"
        assert not moto_compat.EARLY_TASK_OUTCOME.is_applied()
        assert not cloud.lambdas.installed


def test_only_one_embedded_cloud_at_a_time() -> None:
    with EmbeddedCloud(), pytest.raises(RuntimeError, match="already running"):
        EmbeddedCloud().start()


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def harness() -> Iterator[Harness]:
    yield from open_harness()


class Reporter:
    """A Lambda handler that hands each task token to the test (the node agent's role)."""

    def __init__(self, harness: Harness) -> None:
        self.sfn = harness.cloud.client("stepfunctions")
        self.tokens: queue.Queue[dict[str, Any]] = queue.Queue()
        self.heartbeat_errors: list[str] = []
        self.stop = threading.Event()
        self.mode = "queue"

    def __call__(self, event: dict[str, Any], _context: LambdaContext) -> dict[str, Any]:
        token = event["token"]
        if self.mode == "heartbeat_then_succeed":
            try:
                self.sfn.send_task_heartbeat(taskToken=token)
            except ClientError as exc:
                self.heartbeat_errors.append(exc.response["Error"]["Code"])
            self.sfn.send_task_success(taskToken=token, output=json.dumps({"done": True}))
        elif self.mode == "keep_heartbeating":
            threading.Thread(target=self._heartbeat, args=(token,), daemon=True).start()
        self.tokens.put(event)
        return {"accepted": True}

    def _heartbeat(self, token: str) -> None:
        while not self.stop.wait(0.2):
            try:
                self.sfn.send_task_heartbeat(taskToken=token)
            except ClientError:
                return  # the task ended

    def next_token(self, timeout: float = 10.0) -> dict[str, Any]:
        return self.tokens.get(timeout=timeout)


@pytest.fixture
def reporter(harness: Harness) -> Iterator[Reporter]:
    reporter = Reporter(harness)
    yield reporter
    reporter.stop.set()


def callback_machine(
    harness: Harness,
    function_arn: str,
    *,
    heartbeat: int | None = None,
    timeout: int = 20,
    retry: list[dict[str, Any]] | None = None,
    catch: list[dict[str, Any]] | None = None,
) -> str:
    task: dict[str, Any] = {
        "Type": "Task",
        "Resource": "arn:aws:states:::lambda:invoke.waitForTaskToken",
        "Parameters": {
            "FunctionName": function_arn,
            "Payload": {"token.$": "$$.Task.Token", "attempt.$": "$$.State.RetryCount"},
        },
        "TimeoutSeconds": timeout,
        "End": True,
    }
    if heartbeat is not None:
        task["HeartbeatSeconds"] = heartbeat
    if retry:
        task["Retry"] = retry
    states: dict[str, Any] = {"Wait": task}
    if catch:
        task["Catch"] = catch
        for catcher in catch:
            states[catcher["Next"]] = {
                "Type": "Pass",
                "Parameters": {"caughtBy": catcher["Next"], "error.$": "$.Error"},
                "End": True,
            }
    return harness.state_machine({"StartAt": "Wait", "States": states})


# ------------------------------------------------------------ 1. early_task_outcome


def _seconds(described: dict[str, Any]) -> float:
    return float((described["stopDate"] - described["startDate"]).total_seconds())


def _early_outcome_machine(harness: Harness, reporter: Reporter) -> str:
    reporter.mode = "heartbeat_then_succeed"
    function = harness.function(reporter)
    return callback_machine(harness, function, heartbeat=2, timeout=20)


def test_bug_still_present_early_task_outcome(harness: Harness, reporter: Reporter) -> None:
    """Fails once moto honours a SendTaskSuccess sent before its heartbeat wait: drop the fix."""
    machine = _early_outcome_machine(harness, reporter)
    with moto_compat.EARLY_TASK_OUTCOME.reverted():
        described = harness.run(machine)
    assert described["status"] == "FAILED"
    assert described["error"] in {"States.Timeout", "States.HeartbeatTimeout"}
    assert _seconds(described) >= 2  # it waited out HeartbeatSeconds though the outcome was in
    assert reporter.heartbeat_errors == ["InvalidToken"]


def test_early_task_outcome_is_honoured_at_once(harness: Harness, reporter: Reporter) -> None:
    machine = _early_outcome_machine(harness, reporter)
    described = harness.run(machine)
    assert output_of(described) == {"done": True}
    assert _seconds(described) < 2  # well before HeartbeatSeconds
    assert reporter.heartbeat_errors == []  # the early heartbeat was accepted


# ------------------------------------------------------- 2. heartbeat_timeout_error

CATCH_BY_KIND = [
    {"ErrorEquals": ["States.HeartbeatTimeout"], "Next": "Heartbeat"},
    {"ErrorEquals": ["States.Timeout"], "Next": "Timeout"},
    {"ErrorEquals": ["States.ALL"], "Next": "Other"},
]


def test_bug_still_present_heartbeat_timeout_error(harness: Harness, reporter: Reporter) -> None:
    """Fails once moto names heartbeat expiry States.HeartbeatTimeout: drop the fix."""
    function = harness.function(reporter)
    machine = callback_machine(harness, function, heartbeat=HEARTBEAT_SECONDS, catch=CATCH_BY_KIND)
    with moto_compat.HEARTBEAT_TIMEOUT_ERROR.reverted():
        described = harness.run(machine)
    assert output_of(described) == {"caughtBy": "Timeout", "error": "States.Timeout"}


def test_heartbeat_expiry_is_states_heartbeat_timeout(harness: Harness, reporter: Reporter) -> None:
    function = harness.function(reporter)
    machine = callback_machine(harness, function, heartbeat=HEARTBEAT_SECONDS, catch=CATCH_BY_KIND)
    described = harness.run(machine)
    assert output_of(described) == {"caughtBy": "Heartbeat", "error": "States.HeartbeatTimeout"}
    timed_out = [
        e for e in harness.history(described["executionArn"]) if e["type"] == "TaskTimedOut"
    ]
    assert timed_out[0]["taskTimedOutEventDetails"]["error"] == "States.HeartbeatTimeout"


def test_timeout_seconds_expiry_stays_states_timeout(harness: Harness, reporter: Reporter) -> None:
    reporter.mode = "keep_heartbeating"
    function = harness.function(reporter)
    machine = callback_machine(harness, function, heartbeat=2, timeout=3, catch=CATCH_BY_KIND)
    described = harness.run(machine)
    assert output_of(described) == {"caughtBy": "Timeout", "error": "States.Timeout"}


def test_states_timeout_still_matches_a_heartbeat_timeout(
    harness: Harness, reporter: Reporter
) -> None:
    """On AWS ``States.Timeout`` covers heartbeat expiry too; the fix must not lose that."""
    function = harness.function(reporter)
    catch = [{"ErrorEquals": ["States.Timeout"], "Next": "Timeout"}]
    machine = callback_machine(harness, function, heartbeat=HEARTBEAT_SECONDS, catch=catch)
    described = harness.run(machine)
    assert output_of(described) == {"caughtBy": "Timeout", "error": "States.HeartbeatTimeout"}


# --------------------------------------------------------------- 3. dynamodb_write_lock

INCREMENTS = 400


def _concurrent_increments(harness: Harness) -> int:
    """400 ``ADD n :1`` from 8 threads over HTTP, with aggressive thread switching."""
    ddb = harness.client("dynamodb")
    table = harness.unique("counter")
    ddb.create_table(
        TableName=table,
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    ddb.put_item(TableName=table, Item={"pk": {"S": "c"}, "n": {"N": "0"}})
    clients = [harness.cloud.client("dynamodb") for _ in range(8)]

    def increment(i: int) -> None:
        clients[i % len(clients)].update_item(
            TableName=table,
            Key={"pk": {"S": "c"}},
            UpdateExpression="ADD n :one",
            ExpressionAttributeValues={":one": {"N": "1"}},
        )

    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # preempt often: the lost update needs a switch mid-write
    try:
        with ThreadPoolExecutor(len(clients)) as pool:
            list(pool.map(increment, range(INCREMENTS)))
    finally:
        sys.setswitchinterval(interval)
    item = ddb.get_item(TableName=table, Key={"pk": {"S": "c"}}, ConsistentRead=True)["Item"]
    return int(item["n"]["N"])


def test_bug_still_present_dynamodb_write_lock(harness: Harness) -> None:
    """Fails once moto's concurrent ADDs stop losing writes: drop the fix.

    The race needs a thread switch inside moto's read-modify-write; with a 1 µs switch
    interval it showed up in every round measured (391-397 of 400). Three rounds at most.
    """
    totals = []
    with moto_compat.DYNAMODB_WRITE_LOCK.reverted():
        for _ in range(3):
            totals.append(_concurrent_increments(harness))
            if totals[-1] < INCREMENTS:
                break
    assert min(totals) < INCREMENTS, f"no write was lost in {len(totals)} rounds: {totals}"


def test_concurrent_adds_are_all_counted(harness: Harness) -> None:
    assert _concurrent_increments(harness) == INCREMENTS


# ----------------------------------------------------- 4. fresh_task_token_per_attempt

RETRY_ON_NODE_LOST = [
    {"ErrorEquals": ["Node.Lost"], "IntervalSeconds": 1, "MaxAttempts": 1, "BackoffRate": 1.0}
]


def test_bug_still_present_fresh_task_token_per_attempt(
    harness: Harness, reporter: Reporter
) -> None:
    """Fails once moto mints a new token per retry: drop the fix."""
    function = harness.function(reporter)
    machine = callback_machine(harness, function, retry=RETRY_ON_NODE_LOST)
    with moto_compat.FRESH_TASK_TOKEN_PER_ATTEMPT.reverted():
        execution = harness.start(machine)
        first = reporter.next_token()
        harness.sfn.send_task_failure(taskToken=first["token"], error="Node.Lost", cause="gone")
        second = reporter.next_token()
        described = harness.wait(execution)  # nobody reports for the retry...
    assert second["attempt"] == 1
    assert second["token"] == first["token"]
    assert described["status"] == "FAILED"  # ...yet it failed with the old outcome
    assert described["error"] == "Node.Lost"


def test_each_retry_gets_a_fresh_token(harness: Harness, reporter: Reporter) -> None:
    function = harness.function(reporter)
    machine = callback_machine(harness, function, retry=RETRY_ON_NODE_LOST)
    execution = harness.start(machine)
    first = reporter.next_token()
    harness.sfn.send_task_failure(taskToken=first["token"], error="Node.Lost", cause="gone")
    second = reporter.next_token()
    assert (second["attempt"], second["token"] != first["token"]) == (1, True)
    assert harness.sfn.describe_execution(executionArn=execution)["status"] == "RUNNING"
    harness.sfn.send_task_success(taskToken=second["token"], output='{"unit": "done"}')
    assert output_of(harness.wait(execution)) == {"unit": "done"}


# ----------------------------------------------------------- 5. execution_name_default


def _pass_machine(harness: Harness) -> str:
    return harness.state_machine({"StartAt": "P", "States": {"P": {"Type": "Pass", "End": True}}})


def test_bug_still_present_execution_name_default(harness: Harness) -> None:
    """Fails once moto names unnamed executions itself: drop the fix."""
    machine = _pass_machine(harness)
    with moto_compat.EXECUTION_NAME_DEFAULT.reverted():
        first = harness.sfn.start_execution(stateMachineArn=machine, input='{"n": 1}')
        with pytest.raises(ClientError, match="ExecutionAlreadyExists"):
            harness.sfn.start_execution(stateMachineArn=machine, input='{"n": 2}')
    assert first["executionArn"].endswith(":None")


def test_unnamed_executions_get_uuid_names(harness: Harness) -> None:
    machine = _pass_machine(harness)
    arns = [
        harness.sfn.start_execution(stateMachineArn=machine, input=json.dumps({"n": n}))[
            "executionArn"
        ]
        for n in range(2)
    ]
    names = [harness.wait(arn)["name"] for arn in arns]
    assert len(set(names)) == 2
    assert all(uuid.UUID(name) for name in names)


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


# ------------------------------------------------------------------ lambda runtime


def _invoke(harness: Harness, function: str, payload: Any, **kwargs: Any) -> dict[str, Any]:
    response: dict[str, Any] = harness.client("lambda").invoke(
        FunctionName=function, Payload=json.dumps(payload), **kwargs
    )
    response["Body"] = response["Payload"].read()
    return response


def _rejecting_handler(event: dict[str, Any], _context: LambdaContext) -> dict[str, Any]:
    if event.get("sample") != "ok":
        raise MissionInvalidInput(f"sample {event.get('sample')!r} cannot be accepted")
    return {"accepted": True}


def test_handler_exception_is_reported_like_the_python_runtime(harness: Harness) -> None:
    function = harness.function(_rejecting_handler)
    response = _invoke(harness, function, {"sample": "bad"})
    assert (response["StatusCode"], response["FunctionError"]) == (200, "Unhandled")
    body = json.loads(response["Body"])
    assert body["errorType"] == "Mission.InvalidInput"
    assert body["errorMessage"] == "sample 'bad' cannot be accepted"
    assert any("_rejecting_handler" in frame for frame in body["stackTrace"])


def test_catch_matches_the_dotted_error_name(harness: Harness) -> None:
    function = harness.function(_rejecting_handler)
    machine = harness.state_machine(
        {
            "StartAt": "Plan",
            "States": {
                "Plan": {
                    "Type": "Task",
                    "Resource": "arn:aws:states:::lambda:invoke",
                    "Parameters": {"FunctionName": function, "Payload.$": "$"},
                    "OutputPath": "$.Payload",
                    "Catch": [{"ErrorEquals": ["Mission.InvalidInput"], "Next": "Rejected"}],
                    "End": True,
                },
                "Rejected": {
                    "Type": "Pass",
                    "Parameters": {"error.$": "$.Error", "cause.$": "States.StringToJson($.Cause)"},
                    "End": True,
                },
            },
        }
    )
    assert output_of(harness.run(machine, {"sample": "ok"})) == {"accepted": True}
    rejected = output_of(harness.run(machine, {"sample": "bad"}))
    assert rejected["error"] == "Mission.InvalidInput"
    assert rejected["cause"]["errorMessage"] == "sample 'bad' cannot be accepted"


def test_function_is_found_by_arn_and_qualified_name(harness: Harness) -> None:
    arn = harness.function(lambda event, _ctx: event["n"] + 1)
    name = arn.rsplit(":", 1)[-1]
    assert json.loads(_invoke(harness, arn, {"n": 1})["Body"]) == 2
    assert json.loads(_invoke(harness, name, {"n": 2}, Qualifier="$LATEST")["Body"]) == 3


def test_context_works_with_powertools_logger(harness: Harness) -> None:
    logger = Logger(service="compat-test")

    @logger.inject_lambda_context
    def handler(_event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
        keys = logger.get_current_keys()
        return {
            "function_name": keys["function_name"],
            "function_arn": keys["function_arn"],
            "request_id": keys["function_request_id"],
            "memory": keys["function_memory_size"],
            "remaining_ms": context.get_remaining_time_in_millis(),
        }

    arn = harness.cloud.deploy_function(harness.unique("powertools"), handler, timeout_seconds=30)
    seen = json.loads(_invoke(harness, arn, {})["Body"])
    assert (seen["function_name"], seen["function_arn"]) == (arn.rsplit(":", 1)[-1], arn)
    assert uuid.UUID(seen["request_id"])
    assert seen["memory"] == 512
    assert 0 < seen["remaining_ms"] <= 30_000


def test_event_invocation_runs_in_the_background(harness: Harness) -> None:
    release, finished = threading.Event(), threading.Event()
    received: list[Any] = []

    def handler(event: dict[str, Any], _context: LambdaContext) -> None:
        release.wait(10)
        received.append(event)
        finished.set()

    function = harness.function(handler)
    response = _invoke(harness, function, {"spot": "notice"}, InvocationType="Event")
    assert response["StatusCode"] == 202
    assert not finished.is_set()  # Invoke returned while the handler was still blocked
    release.set()
    wait_for(finished.is_set, 10, "the asynchronous handler to finish")
    assert received == [{"spot": "notice"}]


def test_unserialisable_result_is_a_marshal_error(harness: Harness) -> None:
    function = harness.function(lambda _event, _ctx: {"not": object()})
    response = _invoke(harness, function, {})
    assert response["FunctionError"] == "Unhandled"
    assert json.loads(response["Body"])["errorType"] == "Runtime.MarshalError"


def test_function_without_handler_is_not_found(harness: Harness) -> None:
    arn = harness.function(lambda _event, _ctx: None)
    harness.cloud.lambdas.unregister(arn)
    with pytest.raises(ClientError, match="no in-process handler") as raised:
        _invoke(harness, arn, {})
    assert raised.value.response["Error"]["Code"] == "ResourceNotFoundException"
    with pytest.raises(ClientError, match="ResourceNotFoundException"):
        _invoke(harness, harness.unique("never-created"), {})


def test_every_fix_still_fits_the_installed_moto() -> None:
    """A fix whose target changed shape is skipped with a warning; this makes it loud."""
    assert [fix.name for fix in moto_compat.FIXES if not fix.applies()] == []


def test_other_moto_version_warns_but_applies(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(moto_compat, "installed_moto_version", lambda: "9.9.9")
    with pytest.warns(moto_compat.MotoCompatWarning, match=r"moto 9\.9\.9"):
        assert moto_compat.check_moto_version() is False


def test_fix_for_a_changed_target_is_skipped_with_a_warning() -> None:
    stale = moto_compat.Fix(
        name="stale",
        design_ref="test",
        description="patches a method moto no longer has",
        patches=(
            moto_compat.Patch(
                "moto.stepfunctions.parser.models:StepFunctionsParserBackend",
                "no_such_method",
                lambda inner: inner,
            ),
            moto_compat.Patch(
                moto_compat.SFN_PARSER_BACKEND,
                "start_execution",
                lambda inner: inner,
                ("self", "renamed_parameter"),
            ),
        ),
    )
    assert not stale.applies()
    with pytest.warns(moto_compat.MotoCompatWarning, match="'stale'"):
        assert stale.apply() is False
    assert not stale.is_applied()


# ------------------------------------------------------------ 7. task_failure_cause


def _caught_failure(harness: Harness, reporter: Reporter) -> dict[str, Any]:
    function = harness.function(reporter)
    machine = harness.state_machine(
        {
            "StartAt": "Wait",
            "States": {
                "Wait": {
                    "Type": "Task",
                    "Resource": "arn:aws:states:::lambda:invoke.waitForTaskToken",
                    "Parameters": {
                        "FunctionName": function,
                        "Payload": {"token.$": "$$.Task.Token"},
                    },
                    "TimeoutSeconds": 20,
                    "Catch": [
                        {"ErrorEquals": ["States.ALL"], "ResultPath": "$.error", "Next": "Caught"}
                    ],
                    "End": True,
                },
                "Caught": {"Type": "Pass", "End": True},
            },
        }
    )
    arn = harness.start(machine)
    token = reporter.next_token()["token"]
    harness.sfn.send_task_failure(taskToken=token, error="Shard.Failed", cause="exit 3: boom")
    return output_of(harness.wait(arn))["error"]  # type: ignore[no-any-return]


def test_bug_still_present_task_failure_cause(harness: Harness, reporter: Reporter) -> None:
    """Fails once moto passes SendTaskFailure's cause on: drop the fix."""
    with moto_compat.TASK_FAILURE_CAUSE.reverted():
        caught = _caught_failure(harness, reporter)
    assert caught == {"Error": "Shard.Failed", "Cause": None}


def test_task_failure_cause_reaches_the_catcher(harness: Harness, reporter: Reporter) -> None:
    caught = _caught_failure(harness, reporter)
    assert caught == {"Error": "Shard.Failed", "Cause": "exit 3: boom"}


# ------------------------------------------------------ 8. transaction_item_snapshot


def _keyed_table(harness: Harness) -> str:
    """A table keyed like tblTrans (hash ``pk`` + range ``sk``)."""
    name = harness.unique("txn")
    harness.client("dynamodb").create_table(
        TableName=name,
        KeySchema=[
            {"AttributeName": "pk", "KeyType": "HASH"},
            {"AttributeName": "sk", "KeyType": "RANGE"},
        ],
        AttributeDefinitions=[
            {"AttributeName": "pk", "AttributeType": "S"},
            {"AttributeName": "sk", "AttributeType": "N"},
        ],
        BillingMode="PAY_PER_REQUEST",
    )
    return name


def _moto_table(harness: Harness, name: str) -> Any:
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.dynamodb.models import dynamodb_backends

    return dynamodb_backends[DEFAULT_ACCOUNT_ID][harness.cloud.region].tables[name]


def _key(pk: str, sk: int) -> dict[str, Any]:
    return {"pk": {"S": pk}, "sk": {"N": str(sk)}}


def _cancelled_transaction(harness: Harness, table: str) -> None:
    """Put a new item, bump an existing one, then fail a condition: all must roll back."""
    with pytest.raises(ClientError, match="TransactionCanceledException"):
        harness.client("dynamodb").transact_write_items(
            TransactItems=[
                {"Put": {"TableName": table, "Item": {**_key("new", 0), "v": {"N": "1"}}}},
                {
                    "Update": {
                        "TableName": table,
                        "Key": _key("old", 0),
                        "UpdateExpression": "ADD v :one",
                        "ExpressionAttributeValues": {":one": {"N": "1"}},
                    }
                },
                {
                    "ConditionCheck": {
                        "TableName": table,
                        "Key": _key("old", 1),
                        "ConditionExpression": "attribute_not_exists(pk)",
                    }
                },
            ]
        )


def _seed(harness: Harness, table: str) -> None:
    for sk in (0, 1):
        harness.client("dynamodb").put_item(
            TableName=table, Item={**_key("old", sk), "v": {"N": "10"}}
        )


def test_bug_still_present_transaction_item_snapshot(harness: Harness) -> None:
    """Fails once moto stops deep-copying whole tables for a transaction: drop the fix.

    Its rollback swaps in the copy it took, so every item object (touched or not) is new.
    """
    table = _keyed_table(harness)
    _seed(harness, table)
    before = _moto_table(harness, table)
    untouched = before.items[_key_type("old")][_key_type(1, "N")]
    with moto_compat.TRANSACTION_ITEM_SNAPSHOT.reverted():
        _cancelled_transaction(harness, table)
    after = _moto_table(harness, table)
    assert after is not before
    assert after.items[_key_type("old")][_key_type(1, "N")] is not untouched


def _key_type(value: Any, kind: str = "S") -> Any:
    from moto.dynamodb.models.dynamo_type import DynamoType

    return DynamoType({kind: str(value)})


def test_cancelled_transaction_rolls_back_only_its_items(harness: Harness) -> None:
    table = _keyed_table(harness)
    _seed(harness, table)
    before = _moto_table(harness, table)
    untouched = before.items[_key_type("old")][_key_type(1, "N")]
    _cancelled_transaction(harness, table)
    assert _moto_table(harness, table) is before  # no table copy was made or swapped in
    assert before.items[_key_type("old")][_key_type(1, "N")] is untouched
    assert "__deepcopy__" not in vars(before)
    assert _scan(harness, table) == [("old", 0, 10), ("old", 1, 10)]


def _scan(harness: Harness, table: str, prefix: str = "") -> list[tuple[str, int, int | None]]:
    items = harness.client("dynamodb").scan(TableName=table, ConsistentRead=True)["Items"]
    rows = [
        (i["pk"]["S"], int(i["sk"]["N"]), int(i["v"]["N"]) if "v" in i else None)
        for i in items
        if i["pk"]["S"].startswith(prefix)
    ]
    return sorted(rows)


_PKS = ("a", "b")
_op = st.tuples(
    st.sampled_from(["Put", "Update", "Delete", "ConditionCheck"]),
    st.sampled_from(_PKS),
    st.integers(0, 2),  # sk
    st.integers(1, 5),  # value
    st.booleans(),  # with a condition
)


def _transaction(table: str, ns: str, ops: list[tuple[str, str, int, int, bool]]) -> list[Any]:
    items: list[Any] = []
    for kind, pk, sk, value, conditional in ops:
        op: dict[str, Any] = {"TableName": table, "Key": _key(ns + pk, sk)}
        if kind == "Put":
            op = {"TableName": table, "Item": {**_key(ns + pk, sk), "v": {"N": str(value)}}}
            if conditional:
                op["ConditionExpression"] = "attribute_not_exists(pk)"
        elif kind == "Update":
            op["UpdateExpression"] = "ADD v :n"
            op["ExpressionAttributeValues"] = {":n": {"N": str(value)}}
            if conditional:
                op["ConditionExpression"] = "attribute_not_exists(v) OR v < :limit"
                op["ExpressionAttributeValues"][":limit"] = {"N": "6"}
        elif kind == "Delete" and conditional:
            op["ConditionExpression"] = "attribute_exists(pk)"
        elif kind == "ConditionCheck":
            op["ConditionExpression"] = (
                "attribute_exists(pk)" if conditional else "attribute_not_exists(pk)"
            )
        items.append({kind: op})
    return items


def _outcome(harness: Harness, transact_items: list[Any]) -> tuple[str, ...]:
    try:
        harness.client("dynamodb").transact_write_items(TransactItems=transact_items)
    except ClientError as exc:
        reasons = exc.response.get("CancellationReasons", [])
        return (exc.response["Error"]["Code"], *(str(r.get("Code")) for r in reasons))
    return ("ok",)


@pytest.fixture(scope="module")
def twin_tables(harness: Harness) -> tuple[str, str]:
    return _keyed_table(harness), _keyed_table(harness)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(transactions=st.lists(st.lists(_op, min_size=1, max_size=4), min_size=1, max_size=6))
def test_transactions_behave_as_with_moto_own_rollback(
    harness: Harness, twin_tables: tuple[str, str], transactions: list[list[Any]]
) -> None:
    """Differential: any transaction sequence leaves the same items and outcomes as moto's
    own whole-table rollback (the fix reverted) does."""
    plain, fixed = twin_tables
    ns = uuid.uuid4().hex[:8] + "-"
    for ops in transactions:
        with moto_compat.TRANSACTION_ITEM_SNAPSHOT.reverted():
            expected = _outcome(harness, _transaction(plain, ns, ops))
        assert _outcome(harness, _transaction(fixed, ns, ops)) == expected
        assert _scan(harness, fixed, ns) == _scan(harness, plain, ns)


# ------------------------------------------------------------ 9. dynamodb_wire_values


def _attribute_value() -> st.SearchStrategy[dict[str, Any]]:
    scalars = st.one_of(
        st.text(max_size=8).map(lambda s: {"S": s}),
        st.integers(-(10**12), 10**12).map(lambda n: {"N": str(n)}),
        st.booleans().map(lambda b: {"BOOL": b}),
        st.just({"NULL": True}),
        st.binary(min_size=1, max_size=8).map(lambda b: {"B": b}),
        st.sets(st.text(min_size=1, max_size=4), min_size=1, max_size=3).map(
            lambda s: {"SS": sorted(s)}
        ),
    )
    return st.recursive(
        scalars,
        lambda inner: st.one_of(
            st.lists(inner, max_size=3).map(lambda v: {"L": v}),
            st.dictionaries(st.text(min_size=1, max_size=4), inner, max_size=3).map(
                lambda v: {"M": v}
            ),
        ),
        max_leaves=6,
    )


@pytest.fixture(scope="module")
def plain_table(harness: Harness) -> str:
    return _keyed_table(harness)


def _read_back(harness: Harness, table: str, pk: str) -> tuple[Any, Any]:
    ddb = harness.client("dynamodb")
    got = ddb.get_item(TableName=table, Key=_key(pk, 0), ConsistentRead=True)["Item"]
    queried = ddb.query(
        TableName=table,
        KeyConditionExpression="pk = :pk",
        ExpressionAttributeValues={":pk": {"S": pk}},
    )["Items"]
    return got, queried


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(attributes=st.dictionaries(st.sampled_from("abcdef"), _attribute_value(), max_size=4))
def test_dynamodb_responses_are_the_same_with_wire_values(
    harness: Harness, plain_table: str, attributes: dict[str, Any]
) -> None:
    """Differential: GetItem and Query return exactly what moto's own serializer returns."""
    pk = uuid.uuid4().hex
    harness.client("dynamodb").put_item(TableName=plain_table, Item={**_key(pk, 0), **attributes})
    fast = _read_back(harness, plain_table, pk)
    with moto_compat.DYNAMODB_WIRE_VALUES.reverted():
        slow = _read_back(harness, plain_table, pk)
    assert fast == slow
    assert fast[0] == {**_key(pk, 0), **attributes}


def _value_lookups(harness: Harness, table: str) -> int:
    """moto's generic member lookups while serialising a 20-item Query."""
    from moto.core.serialize import ResponseSerializer

    calls = 0
    original = ResponseSerializer.get_value

    def counting(self: Any, *args: Any, **kwargs: Any) -> Any:
        nonlocal calls
        calls += 1
        return original(self, *args, **kwargs)

    ResponseSerializer.get_value = counting  # type: ignore[method-assign]
    try:
        harness.client("dynamodb").query(
            TableName=table,
            KeyConditionExpression="pk = :pk",
            ExpressionAttributeValues={":pk": {"S": "many"}},
        )
    finally:
        ResponseSerializer.get_value = original  # type: ignore[method-assign]
    return calls


def test_bug_still_present_dynamodb_wire_values(harness: Harness, plain_table: str) -> None:
    """Fails once moto stops resolving every member of every AttributeValue: drop the fix."""
    _many_items(harness, plain_table)
    with moto_compat.DYNAMODB_WIRE_VALUES.reverted():
        assert _value_lookups(harness, plain_table) >= 20 * 3 * 10  # 3 attributes, 10 members


def test_wire_values_skip_the_member_walk(harness: Harness, plain_table: str) -> None:
    _many_items(harness, plain_table)
    assert _value_lookups(harness, plain_table) < 20


def _many_items(harness: Harness, table: str) -> None:
    for sk in range(20):
        harness.client("dynamodb").put_item(
            TableName=table, Item={**_key("many", sk), "v": {"N": str(sk)}}
        )


# --------------------------------------------------------- 10. dynamodb_query_partition

_CONDITIONS = {
    "none": ("pk = :pk", {}),
    "eq": ("pk = :pk AND sk = :a", {":a"}),
    "lt": ("pk = :pk AND sk < :a", {":a"}),
    "le": ("pk = :pk AND sk <= :a", {":a"}),
    "gt": ("pk = :pk AND sk > :a", {":a"}),
    "ge": ("pk = :pk AND sk >= :a", {":a"}),
    "between": ("pk = :pk AND sk BETWEEN :a AND :b", {":a", ":b"}),
}


def _query_all(harness: Harness, table: str, pk: str, how: tuple[str, int, int, bool, int]) -> Any:
    """Every page of one Query: (keys per page, last keys) as the client sees them."""
    condition, low, high, forward, limit = how
    expression, names = _CONDITIONS[condition]
    values: dict[str, Any] = {":pk": {"S": pk}, ":a": {"N": str(low)}, ":b": {"N": str(high)}}
    kwargs: dict[str, Any] = {
        "TableName": table,
        "KeyConditionExpression": expression,
        "ExpressionAttributeValues": {k: v for k, v in values.items() if k == ":pk" or k in names},
        "ScanIndexForward": forward,
        "Limit": limit,
        "ConsistentRead": True,
    }
    pages = []
    while True:
        page = harness.client("dynamodb").query(**kwargs)
        pages.append(([i["sk"]["N"] for i in page["Items"]], page.get("LastEvaluatedKey")))
        if "LastEvaluatedKey" not in page:
            return pages
        kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    sks=st.sets(st.integers(0, 30), max_size=12),
    others=st.sets(st.integers(0, 30), max_size=6),
    how=st.tuples(
        st.sampled_from(sorted(_CONDITIONS)),
        st.integers(-1, 31),
        st.integers(-1, 31),
        st.booleans(),
        st.integers(1, 5),
    ),
)
def test_queries_return_what_moto_returns_without_the_fix(
    harness: Harness,
    plain_table: str,
    sks: set[int],
    others: set[int],
    how: tuple[str, int, int, bool, int],
) -> None:
    """Differential: conditions, direction, limits and paging give the same pages."""
    ns = uuid.uuid4().hex
    for pk, keys in ((ns, sks), (ns + "-other", others)):
        for sk in keys:
            harness.client("dynamodb").put_item(TableName=plain_table, Item=_key(pk, sk))
    fast = _query_all(harness, plain_table, ns, how)
    with moto_compat.DYNAMODB_QUERY_PARTITION.reverted():
        assert fast == _query_all(harness, plain_table, ns, how)


def _items_moto_considers(harness: Harness, table: str) -> int:
    """How many items moto's Query walks for a 2-item key range (3..4) of a 20-item partition."""
    from moto.dynamodb.models.table import Table

    seen = 0
    original = Table.all_items

    def counting(self: Any) -> Any:
        nonlocal seen
        items = original(self)
        seen += len(items)
        return items

    Table.all_items = counting  # type: ignore[method-assign]
    try:
        harness.client("dynamodb").query(
            TableName=table,
            KeyConditionExpression="pk = :pk AND sk BETWEEN :a AND :b",
            ExpressionAttributeValues={":pk": {"S": "many"}, ":a": {"N": "3"}, ":b": {"N": "4"}},
        )
    finally:
        Table.all_items = original  # type: ignore[method-assign]
    return seen


def test_bug_still_present_dynamodb_query_partition(harness: Harness, plain_table: str) -> None:
    """Fails once moto's Query stops walking the whole table: drop the fix."""
    _many_items(harness, plain_table)
    for sk in range(5):  # another partition, which moto walks too
        harness.client("dynamodb").put_item(TableName=plain_table, Item=_key("elsewhere", sk))
    with moto_compat.DYNAMODB_QUERY_PARTITION.reverted():
        assert _items_moto_considers(harness, plain_table) >= 25


def test_query_walks_only_its_key_range(harness: Harness, plain_table: str) -> None:
    _many_items(harness, plain_table)
    assert _items_moto_considers(harness, plain_table) == 4  # sk 3, 4 and neighbours 2, 5
