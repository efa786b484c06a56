"""The mission scenarios as Step Functions Local MockConfigFile test cases, on two engines.

``tests/sfn/mock_config.json`` holds one test case per scenario; every Task is mocked (the
engines' Lambda is not ours), the Map's ``ItemReader`` reads a real manifest from the engine's S3.
Each case runs on the embedded moto and on LocalStack's own Step Functions interpreter
(``sfn_local``: a LocalStack started by this module, see ``tests/functional/_localstack.py``).

A scenario holds when the execution ends as expected AND the Map Run read every unit of the
manifest and ran each child to success: the parent's path alone also holds when the Map failed
(its ``Catch`` goes on to the mocked aggregation), so it proves nothing about the Map.

The responses are numbered so that one file means the same on both engines: moto numbers a
state's responses by ``$$.State.RetryCount`` in each Map child, LocalStack by invocation in the
whole execution (children and retries together), so a response for "every child" is a range
("0-1" for two units) and "once, then ok" is "0" then "1-2".
"""

from __future__ import annotations

import json
import tempfile
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import boto3
import pytest

from localcloud.emulator import EmbeddedCloud
from localcloud.moto_compat.parity_sfn_limits import decimal_percentages
from localcloud.sfn_mock_config import SFN_MOCK_CONFIG_ENV, load_mock_config
from localcloud.stack import STATE_MACHINE_NAME
from tests.functional import _localstack
from tests.waiting import wait_for
from workflow.asl import load_definition, placeholder_values

MOCK_CONFIG: Final = Path(__file__).parents[1] / "sfn" / "mock_config.json"
BUCKET: Final = "lighthpc-results"
MANIFEST_KEY: Final = "missions/m-mock/manifest.json"
MANIFEST: Final = [{"unitId": "u0000", "shards": 2}, {"unitId": "u0001", "shards": 2}]
MAP_STATE: Final = "RunWorkUnits"


@dataclass(frozen=True)
class Expected:
    status: str
    final_state: str
    error: str | None = None
    cause: str | None = None
    runs_map: bool = True


EXPECTED: Final[dict[str, Expected]] = {
    "HappyPath": Expected("SUCCEEDED", "MissionSucceeded"),
    "SpotInterruptedThenRelaunched": Expected("SUCCEEDED", "MissionSucceeded"),
    "HeartbeatExpiredThenRelaunched": Expected("SUCCEEDED", "MissionSucceeded"),
    "NodeLostThenRelaunched": Expected("SUCCEEDED", "MissionSucceeded"),
    "UnitFailsWithinTolerance": Expected("SUCCEEDED", "MissionSucceeded"),
    "TooManyFailures": Expected("FAILED", "MissionFailed", "Mission.TooManyFailures", "s000001"),
    "StoppedByBudget": Expected(
        "FAILED", "MissionStoppedByBudget", "Mission.OverBudget", "stopped by its budget"
    ),
    "DuplicateEvent": Expected("SUCCEEDED", "DuplicateIgnored", runs_map=False),
    "InvalidInput": Expected(
        "FAILED", "MissionRejected", "Mission.InvalidInput", "params.shards", runs_map=False
    ),
}
# Not a scenario: the planner names a manifest that is not in S3. The path still ends in
# MissionSucceeded (the Map's Catch goes on to the mocked aggregation); only the Map checks see it.
MANIFEST_MISSING: Final = "ManifestMissing"

# case -> engine -> why the case cannot hold there. A strict xfail: the run fails once it can.
_STATES_ERROR_REFUSED: Final = (
    "a mocked error named States.* is refused (the Task fails with States.Runtime, caught into "
    "RecordUnitFailure: no relaunch happens, the children enter RecordUnitFailure). Node.Lost, "
    "in the same retrier, is NodeLostThenRelaunched; the real heartbeat expiry is tested on "
    "moto by test_moto_compat_sfn and tests/e2e"
)
CANNOT_HOLD: Final[dict[str, dict[str, str]]] = {}
# case -> engine -> why the case cannot even be observed there. RecordUnitFailure now ends a
# child cleanly (UnitFailureUnrecorded), so only a child's history tells a relaunch from a
# recorded failure; LocalStack keeps none, and moto's ListExecutions(mapRunArn) fails (500).
_UNOBSERVABLE: Final = _STATES_ERROR_REFUSED + "; and no child history shows which happened"
CANNOT_OBSERVE: Final[dict[str, dict[str, str]]] = {
    "HeartbeatExpiredThenRelaunched": {"moto": _UNOBSERVABLE, "localstack": _UNOBSERVABLE},
}


def _values() -> dict[str, str]:
    fn = "arn:aws:lambda:us-east-1:123456789012:function:"
    return placeholder_values(
        {
            "light_scheduler": fn + "lighthpc-light-scheduler",
            "rslt_proc": fn + "lighthpc-rslt-proc",
        },
        "arn:aws:sns:us-east-1:123456789012:lighthpc-missions",
    )


def test_the_mock_config_covers_every_scenario_and_only_real_states() -> None:
    config = load_mock_config(MOCK_CONFIG)
    raw = json.loads(MOCK_CONFIG.read_text())
    cases = raw["StateMachines"][STATE_MACHINE_NAME]["TestCases"]
    assert set(cases) == set(EXPECTED) | {MANIFEST_MISSING}
    definition = json.loads(json.dumps(load_definition(_values())))
    names = set(definition["States"]) | set(
        definition["States"][MAP_STATE]["ItemProcessor"]["States"]
    )
    for case in cases.values():
        assert set(case) <= names
    assert config is not None


# ------------------------------------------------------------------------- engines


@dataclass(frozen=True)
class Engine:
    name: str
    sfn: Any
    s3: Any
    machine_arn: str


def _deploy(name: str, sfn: Any, s3: Any, role_arn: str) -> Engine:
    """The real definition and the manifest the mocked planner names."""
    s3.create_bucket(Bucket=BUCKET)
    s3.put_object(Bucket=BUCKET, Key=MANIFEST_KEY, Body=json.dumps(MANIFEST).encode())
    definition = load_definition(_values())
    if name == "localstack":
        # LocalStack's grammar (moto's parser comes from it) refuses AWS's integer
        # ToleratedFailurePercentage, and its process cannot take moto fix 14: hand it 100.0.
        decimal_percentages(definition)
    arn = sfn.create_state_machine(
        name=STATE_MACHINE_NAME, definition=json.dumps(definition), roleArn=role_arn
    )["stateMachineArn"]
    return Engine(name, sfn, s3, arn)


@pytest.fixture(scope="module")
def moto_engine() -> Iterator[Engine]:
    """The embedded moto with SFN_MOCK_CONFIG set (``localcloud.sfn_mock_config``)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(SFN_MOCK_CONFIG_ENV, str(MOCK_CONFIG))
        with EmbeddedCloud() as cloud:
            yield _deploy(
                "moto",
                cloud.client("stepfunctions"),
                cloud.client("s3"),
                "arn:aws:iam::123456789012:role/lighthpc-local-role",
            )


@pytest.fixture(scope="session")
def localstack_server() -> Iterator[_localstack.LocalStackServer]:
    reason = _localstack.unavailable_reason()
    if reason is not None:
        pytest.skip(reason)
    with tempfile.TemporaryDirectory(prefix="lighthpc-localstack-") as tmp:
        server = _localstack.LocalStackServer(Path(tmp), MOCK_CONFIG.resolve()).start()
        try:
            yield server
        finally:
            server.stop()
        assert not server.group_alive(), f"LocalStack process group {server.pgid} is left"


@pytest.fixture(scope="session")
def localstack_engine(localstack_server: _localstack.LocalStackServer) -> Engine:
    def client(service: str) -> Any:
        return boto3.client(
            service,
            endpoint_url=localstack_server.endpoint,
            region_name="us-east-1",
            aws_access_key_id="test",
            aws_secret_access_key="test",
        )

    return _deploy(
        "localstack",
        client("stepfunctions"),
        client("s3"),
        "arn:aws:iam::000000000000:role/lighthpc-local-role",
    )


@pytest.fixture(
    params=[
        pytest.param("moto", id="moto"),
        pytest.param("localstack", id="localstack", marks=pytest.mark.sfn_local),
    ]
)
def engine(request: pytest.FixtureRequest) -> Engine:
    found: Engine = request.getfixturevalue(f"{request.param}_engine")
    return found


# ------------------------------------------------------------------------- running, checking


@dataclass(frozen=True)
class Run:
    desc: dict[str, Any]
    events: list[dict[str, Any]]
    map_runs: list[dict[str, Any]]  # DescribeMapRun of each Map Run


def run_case(engine: Engine, case: str) -> Run:
    started = engine.sfn.start_execution(
        stateMachineArn=f"{engine.machine_arn}#{case}",
        input=json.dumps({"input": {"bucket": "lighthpc-source", "key": "incoming/x.smi"}}),
    )
    arn = started["executionArn"]

    def ended() -> dict[str, Any] | None:
        desc: dict[str, Any] = engine.sfn.describe_execution(executionArn=arn)
        return desc if desc["status"] != "RUNNING" else None

    desc = wait_for(ended, 90, f"test case {case} on {engine.name}")
    events = engine.sfn.get_execution_history(executionArn=arn, maxResults=1000)["events"]
    listed = engine.sfn.list_map_runs(executionArn=arn)["mapRuns"]
    map_runs = [engine.sfn.describe_map_run(mapRunArn=m["mapRunArn"]) for m in listed]
    return Run(desc, events, map_runs)


def check_path(case: str, run: Run) -> None:
    """The execution's status, last state, error and cause."""
    want = EXPECTED.get(case, EXPECTED["HappyPath"])
    assert run.desc["status"] == want.status, (case, run.desc)
    entered = [
        e["stateEnteredEventDetails"]["name"] for e in run.events if "stateEnteredEventDetails" in e
    ]
    assert entered[-1] == want.final_state, (case, entered)
    if want.error is not None:
        assert run.desc.get("error") == want.error
        assert want.cause is not None and want.cause in run.desc.get("cause", "")


def check_map(case: str, run: Run) -> None:
    """The Map read every unit of the manifest and each child succeeded; no map error."""
    want = EXPECTED.get(case, EXPECTED["HappyPath"])
    failures = [e["type"] for e in run.events if e["type"] in {"MapRunFailed", "MapStateFailed"}]
    assert failures == [], (case, failures)
    if not want.runs_map:
        assert run.map_runs == [], (case, run.map_runs)
        return
    assert len(run.map_runs) == 1, (case, run.map_runs)
    (map_run,) = run.map_runs
    counts = map_run["itemCounts"]
    assert (counts["total"], counts["succeeded"], counts["failed"]) == (
        len(MANIFEST),
        len(MANIFEST),
        0,
    ), (
        case,
        counts,
    )
    assert map_run["status"] == "SUCCEEDED", (case, map_run)


@pytest.mark.parametrize("case", sorted(EXPECTED))
def test_scenario(engine: Engine, case: str, request: pytest.FixtureRequest) -> None:
    unobservable = CANNOT_OBSERVE.get(case, {}).get(engine.name)
    if unobservable is not None:
        pytest.skip(unobservable)
    reason = CANNOT_HOLD.get(case, {}).get(engine.name)
    if reason is not None:
        request.applymarker(pytest.mark.xfail(strict=True, reason=reason))
    run = run_case(engine, case)
    check_path(case, run)
    check_map(case, run)


def test_a_map_that_cannot_read_its_manifest_passes_the_path_check_only(engine: Engine) -> None:
    """Why ``check_map`` exists: a Map failing on a missing manifest still ends in
    MissionSucceeded (the Map's Catch, then the mocked aggregation)."""
    run = run_case(engine, MANIFEST_MISSING)
    check_path(MANIFEST_MISSING, run)
    with pytest.raises(AssertionError):
        check_map(MANIFEST_MISSING, run)


@pytest.mark.sfn_local
def test_localstack_stops_with_no_process_left(tmp_path: Path) -> None:
    reason = _localstack.unavailable_reason()
    if reason is not None:
        pytest.skip(reason)
    server = _localstack.LocalStackServer(tmp_path, MOCK_CONFIG.resolve()).start()
    assert server.group_alive()
    server.stop()
    assert not server.group_alive()
    with pytest.raises(OSError):
        urllib_get(server.endpoint + _localstack.HEALTH_PATH)


def urllib_get(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=2) as resp:
        body: bytes = resp.read()
        return body
