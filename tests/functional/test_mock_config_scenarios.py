"""The mission scenarios as Step Functions Local MockConfigFile test cases.

``tests/sfn/mock_config.json`` holds one test case per scenario. By default they run on the
embedded moto (which wires the same file format); with ``SFN_LOCAL_ENDPOINT`` set they also run
against a real Step Functions Local started with ``SFN_MOCK_CONFIG`` pointing at that file.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest

from localcloud.emulator import EmbeddedCloud
from localcloud.sfn_mock_config import SFN_MOCK_CONFIG_ENV, load_mock_config
from localcloud.stack import STATE_MACHINE_NAME
from tests.functional.conftest import wait_for
from workflow.asl import load_definition, placeholder_values

MOCK_CONFIG = Path(__file__).parents[1] / "sfn" / "mock_config.json"
SFN_LOCAL_ENDPOINT = os.environ.get("SFN_LOCAL_ENDPOINT")
MANIFEST = [{"unitId": "u0000", "shards": 2}, {"unitId": "u0001", "shards": 2}]

# test case -> (execution status, final state, error, cause fragment)
EXPECTED: dict[str, tuple[str, str, str | None, str | None]] = {
    "HappyPath": ("SUCCEEDED", "MissionSucceeded", None, None),
    "SpotInterruptedThenRelaunched": ("SUCCEEDED", "MissionSucceeded", None, None),
    "HeartbeatExpiredThenRelaunched": ("SUCCEEDED", "MissionSucceeded", None, None),
    "UnitFailsWithinTolerance": ("SUCCEEDED", "MissionSucceeded", None, None),
    "TooManyFailures": ("FAILED", "MissionFailed", "Mission.TooManyFailures", "s000001"),
    "DuplicateEvent": ("SUCCEEDED", "DuplicateIgnored", None, None),
    "InvalidInput": ("FAILED", "MissionRejected", "Mission.InvalidInput", "params.shards"),
}


def test_the_mock_config_covers_every_scenario_and_only_real_states() -> None:
    config = load_mock_config(MOCK_CONFIG)
    raw = json.loads(MOCK_CONFIG.read_text())
    cases = raw["StateMachines"][STATE_MACHINE_NAME]["TestCases"]
    assert set(cases) == set(EXPECTED)
    definition = json.loads(json.dumps(load_definition(_values())))
    names = set(definition["States"]) | set(
        definition["States"]["RunWorkUnits"]["ItemProcessor"]["States"]
    )
    for case in cases.values():
        assert set(case) <= names
    assert config is not None


def _values() -> dict[str, str]:
    fn = "arn:aws:lambda:us-east-1:123456789012:function:"
    return placeholder_values(
        {
            "light_scheduler": fn + "lighthpc-light-scheduler",
            "rslt_proc": fn + "lighthpc-rslt-proc",
        },
        "arn:aws:sns:us-east-1:123456789012:lighthpc-missions",
    )


@pytest.fixture(scope="module")
def mocked_machine() -> Iterator[tuple[Any, str]]:
    """The real definition registered on moto with SFN_MOCK_CONFIG set."""
    old = os.environ.get(SFN_MOCK_CONFIG_ENV)
    os.environ[SFN_MOCK_CONFIG_ENV] = str(MOCK_CONFIG)
    try:
        with EmbeddedCloud() as cloud:
            s3 = cloud.client("s3")
            s3.create_bucket(Bucket="lighthpc-results")
            s3.put_object(
                Bucket="lighthpc-results",
                Key="missions/m-mock/manifest.json",
                Body=json.dumps(MANIFEST).encode(),
            )
            sfn = cloud.client("stepfunctions")
            arn = sfn.create_state_machine(
                name=STATE_MACHINE_NAME,
                definition=json.dumps(load_definition(_values())),
                roleArn="arn:aws:iam::123456789012:role/lighthpc-local-role",
            )["stateMachineArn"]
            yield sfn, arn
    finally:
        if old is None:
            os.environ.pop(SFN_MOCK_CONFIG_ENV, None)
        else:
            os.environ[SFN_MOCK_CONFIG_ENV] = old


def run_case(sfn: Any, machine_arn: str, case: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    started = sfn.start_execution(
        stateMachineArn=f"{machine_arn}#{case}",
        input=json.dumps({"input": {"bucket": "lighthpc-source", "key": "incoming/x.smi"}}),
    )
    arn = started["executionArn"]

    def ended() -> dict[str, Any] | None:
        desc: dict[str, Any] = sfn.describe_execution(executionArn=arn)
        return desc if desc["status"] != "RUNNING" else None

    desc = wait_for(ended, 60, f"test case {case}")
    events = sfn.get_execution_history(executionArn=arn, maxResults=1000)["events"]
    return desc, events


def check(case: str, desc: dict[str, Any], events: list[dict[str, Any]]) -> None:
    status, final, error, cause = EXPECTED[case]
    assert desc["status"] == status, (case, desc)
    entered = [
        e["stateEnteredEventDetails"]["name"] for e in events if "stateEnteredEventDetails" in e
    ]
    assert entered[-1] == final, (case, entered)
    if error is not None:
        assert desc.get("error") == error
        assert cause is not None and cause in desc.get("cause", "")


@pytest.mark.parametrize("case", sorted(EXPECTED))
def test_scenario_on_moto(mocked_machine: tuple[Any, str], case: str) -> None:
    sfn, arn = mocked_machine
    desc, events = run_case(sfn, arn, case)
    check(case, desc, events)


@pytest.mark.sfn_local
@pytest.mark.skipif(
    SFN_LOCAL_ENDPOINT is None,
    reason="SFN_LOCAL_ENDPOINT is not set: AWS Step Functions Local (a jar downloaded from AWS "
    "at install time) cannot be installed here; the same cases ran on moto above",
)
@pytest.mark.parametrize("case", sorted(EXPECTED))
def test_scenario_on_step_functions_local(case: str) -> None:
    sfn = boto3.client("stepfunctions", endpoint_url=SFN_LOCAL_ENDPOINT)
    machines = sfn.list_state_machines()["stateMachines"]
    existing = [m["stateMachineArn"] for m in machines if m["name"] == STATE_MACHINE_NAME]
    arn = (
        existing[0]
        if existing
        else sfn.create_state_machine(
            name=STATE_MACHINE_NAME,
            definition=json.dumps(load_definition(_values())),
            roleArn="arn:aws:iam::123456789012:role/DummyRole",
        )["stateMachineArn"]
    )
    desc, events = run_case(sfn, arn, case)
    check(case, desc, events)
