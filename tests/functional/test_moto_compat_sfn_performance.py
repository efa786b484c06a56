"""Fixes 22, ``sfn_definition_parse_cache`` (a state machine's definition is parsed once, and
every run of it behaves as it did when each run parsed its own) and 23,
``sfn_task_client_reuse`` (a Task's SDK client is made once, as moto makes its own).

``test_bug_still_present_<fix>`` FAILS the day moto stops re-parsing the definition at every
StartExecution, or making a client per Task: then drop the fix.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any, Final

import pytest

from localcloud import moto_compat
from localcloud.lambda_runtime import LambdaContext
from tests.functional._compat_fixtures import Harness, open_harness, output_of

FIX = moto_compat.SFN_DEFINITION_PARSE_CACHE
CLIENTS = moto_compat.SFN_TASK_CLIENT_REUSE
LAMBDA_TASKS: Final = (
    "moto.stepfunctions.parser.asl.component.state.exec.state_task.lambda_eval_utils"
)


@pytest.fixture(scope="module")
def harness() -> Iterator[Harness]:
    yield from open_harness()


@contextmanager
def _grammar_runs() -> Iterator[list[int]]:
    """Counts the runs of moto's ANTLR grammar over a whole definition (any thread)."""
    from moto.stepfunctions.parser.asl.antlr.runtime.ASLParser import ASLParser

    seen: list[int] = []
    original = ASLParser.state_machine

    def state_machine(self: Any) -> Any:
        seen.append(1)
        return original(self)

    ASLParser.state_machine = state_machine  # type: ignore[method-assign]
    try:
        yield seen
    finally:
        ASLParser.state_machine = original  # type: ignore[method-assign]


def _doubled(event: dict[str, Any], _context: LambdaContext) -> dict[str, Any]:
    return {"value": event["value"] * 2}


def _machine(harness: Harness) -> str:
    """A Choice, a Lambda Task with a Retry, and an inline Map: the kinds of state a mission
    runs, each one's output depending on the run's input."""
    function = harness.function(_doubled, "doubled")
    double = {
        "Type": "Task",
        "Resource": "arn:aws:states:::lambda:invoke",
        "Parameters": {"FunctionName": function, "Payload": {"value.$": "$.value"}},
        "ResultSelector": {"value.$": "$.Payload.value"},
        "Retry": [{"ErrorEquals": ["Lambda.TooManyRequestsException"], "MaxAttempts": 2}],
        "End": True,
    }
    each = {
        "Type": "Map",
        "ItemsPath": "$.items",
        "ItemSelector": {"value.$": "$$.Map.Item.Value"},
        "ItemProcessor": {"StartAt": "Double", "States": {"Double": double}},
        "ResultPath": "$.doubled",
        "End": True,
    }
    route = {
        "Type": "Choice",
        "Choices": [{"Variable": "$.skip", "BooleanEquals": True, "Next": "Skipped"}],
        "Default": "Each",
    }
    skipped = {"Type": "Pass", "Result": {"skipped": True}, "End": True}
    states = {"Route": route, "Each": each, "Skipped": skipped}
    return harness.state_machine({"StartAt": "Route", "States": states})


def _runs(harness: Harness, machine: str, inputs: list[dict[str, Any]]) -> list[Any]:
    """Every input run at once: the executions share the parsed program concurrently."""
    with ThreadPoolExecutor(len(inputs)) as pool:
        arns = list(pool.map(lambda payload: harness.start(machine, payload), inputs))
    return [output_of(harness.wait(arn)) for arn in arns]


INPUTS = [
    {"skip": False, "items": [1, 2, 3]},
    {"skip": False, "items": [10]},
    {"skip": True, "items": []},
    {"skip": False, "items": list(range(7))},
]


def test_bug_still_present_sfn_definition_parse_cache(harness: Harness) -> None:
    """moto parses the definition again at every StartExecution."""
    machine = _machine(harness)
    with FIX.reverted(), _grammar_runs() as seen:
        for payload in INPUTS[:2]:
            output_of(harness.run(machine, payload))
    assert len(seen) >= 2


def test_runs_of_a_created_machine_parse_nothing(harness: Harness) -> None:
    machine = _machine(harness)  # CreateStateMachine validates it: the one parse
    with _grammar_runs() as seen:
        outputs = _runs(harness, machine, INPUTS)
    assert seen == []
    assert outputs[0]["doubled"] == [{"value": 2}, {"value": 4}, {"value": 6}]


def test_concurrent_runs_of_one_program_answer_as_runs_of_their_own_parse(
    harness: Harness,
) -> None:
    """Differential: the same runs, at once on one cached program and each on its own."""
    machine = _machine(harness)
    cached = _runs(harness, machine, INPUTS)
    with FIX.reverted():
        parsed_each = _runs(harness, machine, INPUTS)
    assert cached == parsed_each
    assert cached[2] == {"skipped": True}


def test_a_fix_applied_or_reverted_since_makes_the_next_run_parse_again(
    harness: Harness,
) -> None:
    """A fix may shape what the parse builds (fix 13 marks the Map's declared tolerance on
    the program): a program parsed under other fixes is not reused."""
    machine = _machine(harness)
    with _grammar_runs() as seen:
        output_of(harness.run(machine, INPUTS[1]))
        assert seen == []
        with moto_compat.MAP_TOLERATED_FAILURE.reverted():
            output_of(harness.run(machine, INPUTS[1]))
        assert len(seen) == 1
        output_of(harness.run(machine, INPUTS[1]))
    assert len(seen) == 2


# ------------------------------------------------------------- 23. sfn_task_client_reuse


def _client_for() -> Any:
    return importlib.import_module(LAMBDA_TASKS).boto_client_for


def _built(client: Any) -> dict[str, Any]:
    """What makes two clients answer alike: service, region, endpoint, credentials, retries
    and timeouts (not the connection pool's size)."""
    config = client.meta.config
    credentials = client._request_signer._credentials
    return {
        "service": client.meta.service_model.service_name,
        "region": client.meta.region_name,
        "endpoint": client.meta.endpoint_url,
        "keys": (credentials.access_key, credentials.secret_key),
        "validation": config.parameter_validation,
        "retries": config.retries,
        "timeouts": (config.connect_timeout, config.read_timeout),
    }


def test_bug_still_present_sfn_task_client_reuse(harness: Harness) -> None:
    """moto makes a new client for every Task it runs."""
    del harness  # the cloud must run: moto's client points at its port
    with CLIENTS.reverted():
        first, second = (_client_for()("us-east-1", "lambda") for _ in range(2))
    assert first is not second


def test_tasks_share_one_client_per_region_and_service(harness: Harness) -> None:
    del harness
    client_for = _client_for()
    assert client_for("us-east-1", "lambda") is client_for("us-east-1", "lambda", None)
    assert client_for("us-east-1", "lambda") is not client_for("us-east-1", "sns")
    assert client_for("us-east-1", "lambda") is not client_for("us-west-2", "lambda")


def test_the_reused_client_is_built_as_moto_builds_its_own(harness: Harness) -> None:
    del harness
    ours = _client_for()("us-east-1", "lambda")
    with CLIENTS.reverted():
        motos = _client_for()("us-east-1", "lambda")
    assert _built(ours) == _built(motos)
    assert ours.meta.config.max_pool_connections > motos.meta.config.max_pool_connections


def test_lambda_tasks_still_run_through_the_shared_client(harness: Harness) -> None:
    machine = _machine(harness)
    assert _runs(harness, machine, INPUTS)[3]["doubled"] == [{"value": 2 * i} for i in range(7)]
