"""Step Functions Local's MockConfigFile, wired into moto's interpreter.

The file format is AWS's (``sfn-local-mock-cfg-file``)::

    {"StateMachines": {"<name>": {"TestCases": {"<case>": {"<state>": "<response>"}}}},
     "MockedResponses": {"<response>": {"0": {"Return": ...},
                                        "1-2": {"Throw": {"Error": "...", "Cause": "..."}}}}}

moto 5.2.5 ships the interpreter side (``moto.stepfunctions.parser.mocking``: a Task state
in mocked mode answers from the test case, indexed by ``$$.State.RetryCount``) but never
loads a file. :data:`MOCK_CONFIG_WIRING` does what Step Functions Local does: when
``SFN_MOCK_CONFIG`` names a file and StartExecution gets ``stateMachineArn`` of the form
``<arn>#<TestCase>``, that execution runs with the test case's mocked responses.
"""

from __future__ import annotations

import json
import os
import re
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from localcloud.moto_compat import SFN_PARSER_BACKEND, Fix, Impl, Patch

SFN_MOCK_CONFIG_ENV: Final = "SFN_MOCK_CONFIG"
TEST_CASE_SEPARATOR: Final = "#"

_RANGE = re.compile(r"^\s*(\d+)\s*(?:-\s*(\d+)\s*)?$")


class MockConfigError(ValueError):
    """The mock config file is invalid; ``key`` is the dotted path of the bad key."""

    def __init__(self, key: str, message: str) -> None:
        super().__init__(f"{key}: {message}" if key else message)
        self.key = key


@dataclass(frozen=True)
class MockedReturn:
    range_start: int
    range_end: int
    payload: Any


@dataclass(frozen=True)
class MockedThrow:
    range_start: int
    range_end: int
    error: str
    cause: str


MockedStep = MockedReturn | MockedThrow


@dataclass(frozen=True)
class MockConfig:
    """A validated mock config: test cases per state machine and the mocked responses."""

    state_machines: Mapping[str, Mapping[str, Mapping[str, str]]]
    mocked_responses: Mapping[str, tuple[MockedStep, ...]]
    source: str = "<memory>"

    def test_case_names(self, state_machine_name: str) -> list[str]:
        return sorted(self.state_machines.get(state_machine_name, {}))

    def responses_for(self, state_machine_name: str, test_case: str) -> dict[str, str]:
        """``{state name: mocked response name}``; KeyError naming what is missing."""
        cases = self.state_machines.get(state_machine_name)
        if cases is None:
            raise KeyError(f"StateMachines.{state_machine_name} is not in {self.source}")
        if test_case not in cases:
            raise KeyError(
                f"StateMachines.{state_machine_name}.TestCases.{test_case} is not in {self.source}"
            )
        return dict(cases[test_case])

    def moto_test_case(self, state_machine_name: str, test_case: str) -> Any:
        """The test case as moto's ``MockTestCase`` (what the interpreter consumes)."""
        from moto.stepfunctions.parser.mocking import mock_config as moto_mock

        state_responses = []
        for state, response_name in self.responses_for(state_machine_name, test_case).items():
            steps: list[Any] = []
            for step in self.mocked_responses[response_name]:
                if isinstance(step, MockedReturn):
                    steps.append(
                        moto_mock.MockedResponseReturn(
                            step.range_start, step.range_end, step.payload
                        )
                    )
                else:
                    steps.append(
                        moto_mock.MockedResponseThrow(
                            step.range_start, step.range_end, step.error, step.cause
                        )
                    )
            state_responses.append(moto_mock.StateMockedResponses(state, response_name, steps))
        return moto_mock.MockTestCase(state_machine_name, test_case, state_responses)


# ------------------------------------------------------------------------- parsing


def _object(value: Any, key: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise MockConfigError(key, f"must be a JSON object, got {type(value).__name__}")
    return value


def _only_keys(value: dict[str, Any], key: str, allowed: set[str]) -> None:
    unknown = sorted(set(value) - allowed)
    if unknown:
        raise MockConfigError(f"{key}.{unknown[0]}" if key else unknown[0], "unknown key")


def _parse_range(text: str, key: str) -> tuple[int, int]:
    match = _RANGE.match(text)
    if match is None:
        raise MockConfigError(key, "must be an attempt number ('0') or a range ('1-2')")
    start = int(match.group(1))
    end = int(match.group(2)) if match.group(2) is not None else start
    if end < start:
        raise MockConfigError(key, f"range end {end} is before its start {start}")
    return start, end


def _parse_step(raw: Any, key: str) -> MockedStep:
    body = _object(raw, key)
    _only_keys(body, key, {"Return", "Throw"})
    start, end = _parse_range(key.rsplit(".", 1)[-1], key)
    if len(body) != 1:
        raise MockConfigError(key, "must have exactly one of 'Return' or 'Throw'")
    if "Return" in body:
        return MockedReturn(start, end, body["Return"])
    throw = _object(body["Throw"], f"{key}.Throw")
    _only_keys(throw, f"{key}.Throw", {"Error", "Cause"})
    error = throw.get("Error")
    cause = throw.get("Cause", "")
    if not isinstance(error, str) or not error:
        raise MockConfigError(f"{key}.Throw.Error", "must be a non-empty string")
    if not isinstance(cause, str):
        raise MockConfigError(f"{key}.Throw.Cause", "must be a string")
    return MockedThrow(start, end, error, cause)


def _parse_response(raw: Any, key: str) -> tuple[MockedStep, ...]:
    body = _object(raw, key)
    if not body:
        raise MockConfigError(key, "must define at least attempt '0'")
    parsed = sorted(
        (
            (f"{key}.{attempts}", _parse_step(value, f"{key}.{attempts}"))
            for attempts, value in body.items()
        ),
        key=lambda pair: pair[1].range_start,
    )
    expected = 0
    for step_key, step in parsed:
        if step.range_start != expected:
            raise MockConfigError(
                step_key, f"attempts must be numbered consecutively from 0: expected {expected}"
            )
        expected = step.range_end + 1
    return tuple(step for _, step in parsed)


def _parse_state_machines(
    raw: Any, responses: Mapping[str, Any]
) -> dict[str, dict[str, dict[str, str]]]:
    machines = _object(raw, "StateMachines")
    parsed: dict[str, dict[str, dict[str, str]]] = {}
    for machine, machine_body in machines.items():
        key = f"StateMachines.{machine}"
        body = _object(machine_body, key)
        _only_keys(body, key, {"TestCases"})
        cases = _object(body.get("TestCases"), f"{key}.TestCases")
        parsed[machine] = {}
        for case, case_body in cases.items():
            case_key = f"{key}.TestCases.{case}"
            states = _object(case_body, case_key)
            for state, response in states.items():
                if not isinstance(response, str) or response not in responses:
                    raise MockConfigError(
                        f"{case_key}.{state}",
                        f"names no entry of MockedResponses: {response!r}",
                    )
            parsed[machine][case] = dict(states)
    return parsed


def parse_mock_config(raw: Any, source: str = "<memory>") -> MockConfig:
    """Validate a decoded mock config; :class:`MockConfigError` names the bad key."""
    top = _object(raw, "")
    _only_keys(top, "", {"StateMachines", "MockedResponses"})
    for required in ("StateMachines", "MockedResponses"):
        if required not in top:
            raise MockConfigError(required, "is required")
    raw_responses = _object(top["MockedResponses"], "MockedResponses")
    responses = {
        name: _parse_response(body, f"MockedResponses.{name}")
        for name, body in raw_responses.items()
    }
    machines = _parse_state_machines(top["StateMachines"], responses)
    return MockConfig(state_machines=machines, mocked_responses=responses, source=source)


def load_mock_config(path: str | os.PathLike[str]) -> MockConfig:
    """Read and validate a MockConfigFile."""
    file = Path(path)
    try:
        raw = json.loads(file.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise MockConfigError("", f"{file} is not valid JSON: {exc}") from exc
    return parse_mock_config(raw, source=str(file))


_CACHE_LOCK = threading.Lock()
_CACHE: dict[str, tuple[tuple[int, int], MockConfig]] = {}


def mock_config_from_env(environ: Mapping[str, str] | None = None) -> MockConfig | None:
    """The config named by ``SFN_MOCK_CONFIG`` (re-read when the file changes), or None."""
    path = (os.environ if environ is None else environ).get(SFN_MOCK_CONFIG_ENV)
    if not path:
        return None
    stat = Path(path).stat()
    stamp = (stat.st_mtime_ns, stat.st_size)
    with _CACHE_LOCK:
        cached = _CACHE.get(path)
        if cached is not None and cached[0] == stamp:
            return cached[1]
    config = load_mock_config(path)
    with _CACHE_LOCK:
        _CACHE[path] = (stamp, config)
    return config


# -------------------------------------------------------------------------- wiring

_PENDING = threading.local()


def _test_case_for(backend: Any, base_arn: str, test_case: str) -> Any:
    from moto.stepfunctions.exceptions import InvalidName

    try:
        config = mock_config_from_env()
    except (OSError, MockConfigError) as exc:
        raise InvalidName(f"{SFN_MOCK_CONFIG_ENV} could not be loaded: {exc}") from exc
    if config is None:
        raise InvalidName(f"test case {test_case!r} requested but {SFN_MOCK_CONFIG_ENV} is not set")
    state_machine = backend.describe_state_machine(base_arn)
    try:
        return config.moto_test_case(state_machine.name, test_case)
    except KeyError as exc:
        raise InvalidName(f"Invalid mock test case: {exc.args[0]}") from exc


def _wrap_start_execution(inner: Impl) -> Impl:
    def start_execution(
        self: Any,
        state_machine_arn: str,
        name: str | None = None,
        execution_input: str | None = None,
        trace_header: str | None = None,
    ) -> Any:
        """Run ``<arn>#<TestCase>`` with the test case of ``SFN_MOCK_CONFIG``."""
        base_arn, separator, test_case = state_machine_arn.partition(TEST_CASE_SEPARATOR)
        if not separator:
            return inner(self, state_machine_arn, name, execution_input, trace_header)
        _PENDING.test_case = _test_case_for(self, base_arn, test_case)
        try:
            return inner(self, base_arn, name, execution_input, trace_header)
        finally:
            _PENDING.test_case = None

    return start_execution


def _wrap_execution_worker(inner: Impl) -> Impl:
    def _get_start_execution_worker(self: Any) -> Any:
        """Hand the pending test case to the worker (moto's Execution never passes one)."""
        worker = inner(self)
        test_case = getattr(_PENDING, "test_case", None)
        if test_case is not None:
            worker._mock_test_case = test_case  # moto offers no setter
        return worker

    return _get_start_execution_worker


MOCK_CONFIG_WIRING = Fix(
    name="sfn_mock_config_wiring",
    design_ref="DESIGN §6.8",
    description=(
        "StartExecution of '<arn>#<TestCase>' runs in mocked mode with the test case "
        "from the MockConfigFile named by SFN_MOCK_CONFIG (as Step Functions Local does)."
    ),
    patches=(
        Patch(
            SFN_PARSER_BACKEND,
            "start_execution",
            _wrap_start_execution,
            ("self", "state_machine_arn", "name", "execution_input", "trace_header"),
        ),
        Patch(
            "moto.stepfunctions.parser.backend.execution:Execution",
            "_get_start_execution_worker",
            _wrap_execution_worker,
            ("self",),
        ),
    ),
)
