"""The Step Functions parity fixes: fixes 1, 2, 4, 5 and 7 of ``localcloud.moto_compat``.

For every fix there are two tests: ``test_bug_still_present_<fix>`` reverts the fix and
shows moto still has the bug (it FAILS the day moto fixes it: then drop the fix), and
``test_<fix>_...`` shows the behaviour with the fix applied.
"""

from __future__ import annotations

import json
import queue
import threading
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from botocore.exceptions import ClientError

from localcloud import moto_compat
from localcloud.lambda_runtime import LambdaContext
from tests.functional._compat_fixtures import Harness, open_harness, output_of

HEARTBEAT_SECONDS = 1


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
