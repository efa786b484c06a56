"""The embedded cloud's lifecycle, the fix machinery and the in-process Lambda runtime.

The fixes themselves (DESIGN §6) are tested by theme in ``test_moto_compat_sfn.py``,
``_dynamodb.py`` and ``_events.py`` (AWS parity) and ``_performance.py``.
"""

from __future__ import annotations

import json
import os
import threading
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from aws_lambda_powertools import Logger
from botocore.exceptions import ClientError

from localcloud import moto_compat
from localcloud.emulator import MOTO_PORT_ENV, EmbeddedCloud
from localcloud.lambda_runtime import LambdaContext
from tests.functional._compat_fixtures import Harness, open_harness, output_of, state_machine_role
from tests.waiting import wait_for
from workflow.errors import MissionInvalidInput

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
