"""Step Functions Local's MockConfigFile on moto: ``<arn>#<TestCase>`` with SFN_MOCK_CONFIG."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from localcloud.lambda_runtime import LambdaContext
from localcloud.sfn_mock_config import (
    SFN_MOCK_CONFIG_ENV,
    MockConfigError,
    MockedReturn,
    MockedThrow,
    load_mock_config,
    parse_mock_config,
)
from tests.functional._compat_fixtures import Harness, open_harness, output_of

LAUNCH_OK = {"StatusCode": 200, "Payload": {"unitId": "u0001", "instance": "i-mocked"}}
AGGREGATE_OK = {"StatusCode": 200, "Payload": {"status": "SUCCEEDED", "shardsDone": 4}}


def mock_config(machine_name: str) -> dict[str, Any]:
    return {
        "StateMachines": {
            machine_name: {
                "TestCases": {
                    "HappyPath": {"LaunchNode": "LaunchOk", "Aggregate": "AggregateOk"},
                    "SpotThenOk": {"LaunchNode": "SpotOnceThenOk", "Aggregate": "AggregateOk"},
                    "AlwaysSpot": {"LaunchNode": "AlwaysSpot"},
                }
            }
        },
        "MockedResponses": {
            "LaunchOk": {"0": {"Return": LAUNCH_OK}},
            "SpotOnceThenOk": {
                "0": {"Throw": {"Error": "Spot.Interrupted", "Cause": "reclaimed"}},
                "1": {"Return": LAUNCH_OK},
            },
            "AlwaysSpot": {"0-2": {"Throw": {"Error": "Spot.Interrupted", "Cause": "reclaimed"}}},
            "AggregateOk": {"0": {"Return": AGGREGATE_OK}},
        },
    }


@pytest.fixture(scope="module")
def harness() -> Iterator[Harness]:
    yield from open_harness()


class Mission:
    """A two-task machine whose handlers are real but must not run in mocked mode."""

    def __init__(self, harness: Harness, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        self.harness = harness
        self.calls: list[str] = []
        launch = harness.function(self._handler("LaunchNode"), "launch")
        aggregate = harness.function(self._handler("Aggregate"), "aggregate")
        self.name = harness.unique("mission")
        definition = {
            "StartAt": "LaunchNode",
            "States": {
                "LaunchNode": {
                    "Type": "Task",
                    "Resource": "arn:aws:states:::lambda:invoke",
                    "Parameters": {"FunctionName": launch, "Payload.$": "$"},
                    "ResultSelector": {"launched.$": "$.Payload"},
                    "Retry": [
                        {
                            "ErrorEquals": ["Spot.Interrupted"],
                            "IntervalSeconds": 1,
                            "MaxAttempts": 2,
                            "BackoffRate": 1.0,
                        }
                    ],
                    "Catch": [{"ErrorEquals": ["States.ALL"], "Next": "UnitFailed"}],
                    "Next": "Aggregate",
                },
                "Aggregate": {
                    "Type": "Task",
                    "Resource": "arn:aws:states:::lambda:invoke",
                    "Parameters": {"FunctionName": aggregate, "Payload.$": "$"},
                    "ResultSelector": {"summary.$": "$.Payload"},
                    "ResultPath": "$.aggregate",
                    "End": True,
                },
                "UnitFailed": {"Type": "Fail", "ErrorPath": "$.Error", "CausePath": "$.Cause"},
            },
        }
        self.arn = harness.state_machine(definition, name=self.name)
        config = tmp_path / "MockConfigFile.json"
        config.write_text(json.dumps(mock_config(self.name)), encoding="utf-8")
        monkeypatch.setenv(SFN_MOCK_CONFIG_ENV, str(config))

    def _handler(self, state: str) -> Any:
        def handler(event: Any, _context: LambdaContext) -> dict[str, Any]:
            self.calls.append(state)
            return {"real": state}

        return handler

    def run(self, test_case: str | None) -> dict[str, Any]:
        arn = self.arn if test_case is None else f"{self.arn}#{test_case}"
        return self.harness.run(arn, {"missionId": "m-1"})


@pytest.fixture
def mission(harness: Harness, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Mission:
    return Mission(harness, tmp_path, monkeypatch)


def test_return_responses_replace_the_tasks(mission: Mission) -> None:
    output = output_of(mission.run("HappyPath"))
    assert output == {
        "launched": LAUNCH_OK["Payload"],
        "aggregate": {"summary": AGGREGATE_OK["Payload"]},
    }
    assert mission.calls == []  # no Lambda ran


def test_retry_consumes_response_0_then_1(mission: Mission) -> None:
    described = mission.run("SpotThenOk")
    assert output_of(described)["launched"] == LAUNCH_OK["Payload"]
    history = mission.harness.history(described["executionArn"])
    failures = [e["taskFailedEventDetails"] for e in history if e["type"] == "TaskFailed"]
    assert [(f["error"], f["cause"]) for f in failures] == [("Spot.Interrupted", "reclaimed")]
    assert mission.calls == []


def test_throw_responses_exhaust_the_retries(mission: Mission) -> None:
    described = mission.run("AlwaysSpot")
    assert (described["status"], described["error"], described["cause"]) == (
        "FAILED",
        "Spot.Interrupted",
        "reclaimed",
    )
    history = mission.harness.history(described["executionArn"])
    assert sum(e["type"] == "TaskFailed" for e in history) == 3  # attempts 0, 1, 2


def test_plain_arn_runs_the_real_handlers(mission: Mission) -> None:
    output = output_of(mission.run(None))
    assert output["launched"] == {"real": "LaunchNode"}
    assert mission.calls == ["LaunchNode", "Aggregate"]


def test_unknown_test_case_is_rejected_naming_it(mission: Mission) -> None:
    with pytest.raises(ClientError, match=r"TestCases\.NoSuchCase") as raised:
        mission.harness.sfn.start_execution(stateMachineArn=f"{mission.arn}#NoSuchCase")
    assert raised.value.response["Error"]["Code"] == "InvalidName"


def test_test_case_without_config_file_is_rejected(
    mission: Mission, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(SFN_MOCK_CONFIG_ENV)
    with pytest.raises(ClientError, match=SFN_MOCK_CONFIG_ENV):
        mission.harness.sfn.start_execution(stateMachineArn=f"{mission.arn}#HappyPath")


# ------------------------------------------------------------------------ the loader


def test_load_mock_config_reads_ranges(tmp_path: Path) -> None:
    path = tmp_path / "mock.json"
    path.write_text(json.dumps(mock_config("Mission")), encoding="utf-8")
    config = load_mock_config(path)
    assert config.responses_for("Mission", "AlwaysSpot") == {"LaunchNode": "AlwaysSpot"}
    assert config.mocked_responses["AlwaysSpot"] == (
        MockedThrow(0, 2, "Spot.Interrupted", "reclaimed"),
    )
    assert config.mocked_responses["SpotOnceThenOk"][1] == MockedReturn(1, 1, LAUNCH_OK)
    moto_case = config.moto_test_case("Mission", "AlwaysSpot")
    assert len(moto_case.state_mocked_responses["LaunchNode"].mocked_responses) == 3


def _broken(path: str, value: Any) -> dict[str, Any]:
    """The valid config with the JSON at ``path`` (dotted) replaced by ``value``."""
    config = mock_config("Mission")
    *parents, leaf = path.split(".")
    node = config
    for part in parents:
        node = node[part]
    node[leaf] = value
    return config


@pytest.mark.parametrize(
    ("raw", "bad_key"),
    [
        ({"StateMachines": {}}, "MockedResponses"),
        ({**mock_config("Mission"), "Extra": 1}, "Extra"),
        (
            _broken("StateMachines.Mission.TestCases.HappyPath.Aggregate", "Nope"),
            "StateMachines.Mission.TestCases.HappyPath.Aggregate",
        ),
        (_broken("MockedResponses.LaunchOk", {"1": {"Return": {}}}), "MockedResponses.LaunchOk.1"),
        (_broken("MockedResponses.LaunchOk", {"x": {"Return": {}}}), "MockedResponses.LaunchOk.x"),
        (
            _broken("MockedResponses.LaunchOk", {"0": {"Return": {}, "Throw": {}}}),
            "MockedResponses.LaunchOk.0",
        ),
        (
            _broken("MockedResponses.LaunchOk", {"0": {"Throw": {"Cause": "no error"}}}),
            "MockedResponses.LaunchOk.0.Throw.Error",
        ),
        (
            _broken("MockedResponses.LaunchOk", {"0-1": {"Return": {}}, "1": {"Return": {}}}),
            "MockedResponses.LaunchOk.1",
        ),
        (_broken("StateMachines.Mission", {"Cases": {}}), "StateMachines.Mission.Cases"),
    ],
)
def test_invalid_config_names_the_bad_key(raw: dict[str, Any], bad_key: str) -> None:
    with pytest.raises(MockConfigError) as raised:
        parse_mock_config(raw)
    assert raised.value.key == bad_key
    assert bad_key in str(raised.value)
