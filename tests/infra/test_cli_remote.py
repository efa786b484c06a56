"""The remote CLI (``start``, ``status``, ``config``, ``cost``) against the embedded local
stack, found through the CloudFormation outputs that ``deploy`` registers in the emulator,
with ``--endpoint-url`` -- exactly as it finds a deployed stack."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from cli.remote_commands import config, cost, start, status
from localcloud.emulator import EmbeddedCloud
from localcloud.pool import LocalNodePool
from localcloud.stack import SOURCE_RULE_NAME, LocalStack, deploy
from workflow.settings import Settings
from workflow.stack_outputs import ENV_STATE_MACHINE_ARN

SAMPLE_KEY = "incoming/items.txt"
NODE_ENV = {"LIGHTHPC_NODE_POLL_SECONDS": "0.1", "LIGHTHPC_NODE_PROGRESS_SECONDS": "0.2"}


@pytest.fixture(scope="module")
def cloud(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedCloud]:
    """The handlers run in this process: their logs go to a file (as ``local run`` does) and
    EMF metrics are off, so a command's stdout holds only what the command printed."""
    from lambdas.runtime import route_logs

    log = (tmp_path_factory.mktemp("lambdas") / "lambdas.log").open("a", encoding="utf-8")
    with pytest.MonkeyPatch.context() as env, EmbeddedCloud() as c:
        env.setenv("POWERTOOLS_METRICS_DISABLED", "true")
        route_logs(log)
        try:
            yield c
        finally:
            route_logs(sys.stdout)
            log.close()


@pytest.fixture(scope="module")
def stack(cloud: EmbeddedCloud) -> LocalStack:
    local = deploy(cloud)
    events = local.services.events
    events.disable_rule(Name=SOURCE_RULE_NAME)  # upload without starting a mission
    try:
        local.services.s3.put_object(
            Bucket=local.settings.source_bucket,
            Key=SAMPLE_KEY,
            Body="".join(f"item-{i}\n" for i in range(24)).encode(),
        )
    finally:
        events.enable_rule(Name=SOURCE_RULE_NAME)
    return local


@pytest.fixture(scope="module")
def pool(
    cloud: EmbeddedCloud, stack: LocalStack, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LocalNodePool]:
    nodes = LocalNodePool(
        cloud, stack.settings, env=NODE_ENV, log_dir=tmp_path_factory.mktemp("nodes"), total_slots=4
    )
    with nodes:
        yield nodes


class Cli:
    """Runs a command the way a user on another machine would: credentials and region in
    the environment, the endpoint on the command line, no AWS_ENDPOINT_URL."""

    def __init__(self, cloud: EmbeddedCloud) -> None:
        self.endpoint = cloud.endpoint_url
        self.env: dict[str, str | None] = {
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": cloud.region,
            "AWS_ENDPOINT_URL": None,
            ENV_STATE_MACHINE_ARN: None,
        }

    def __call__(
        self, command: Any, args: Sequence[str], env: dict[str, str | None] | None = None
    ) -> Result:
        return CliRunner().invoke(
            command, [*args, "--endpoint-url", self.endpoint], env={**self.env, **(env or {})}
        )


@pytest.fixture(scope="module")
def cli(cloud: EmbeddedCloud, stack: LocalStack) -> Cli:
    del stack
    return Cli(cloud)


def sample_uri(stack: LocalStack) -> str:
    return f"s3://{stack.settings.source_bucket}/{SAMPLE_KEY}"


def executions(stack: LocalStack) -> list[dict[str, Any]]:
    sfn = stack.services.sfn
    return list(sfn.list_executions(stateMachineArn=stack.state_machine_arn)["executions"])


def test_start_runs_a_mission_with_custom_params_and_status_shows_its_progress(
    cli: Cli, stack: LocalStack, pool: LocalNodePool
) -> None:
    del pool
    started = cli(
        start,
        [
            sample_uri(stack),
            "--param", "workload=noop",
            "--param", "shards=6",
            "--param", "maxNodes=2",
            "--param", "heartbeatSeconds=30",
            "--json",
        ],
    )  # fmt: skip
    assert started.exit_code == 0, started.output
    out = json.loads(started.stdout)
    assert out["name"].startswith("manual-")
    assert out["effectiveParams"]["shards"] == 6 and out["effectiveParams"]["workload"] == "noop"
    arn = out["executionArn"]
    sent = json.loads(stack.services.sfn.describe_execution(executionArn=arn)["input"])
    assert sent == {
        "input": {"bucket": stack.settings.source_bucket, "key": SAMPLE_KEY},
        "params": {"workload": "noop", "shards": 6, "maxNodes": 2, "heartbeatSeconds": 30},
    }

    waited = cli(status, [arn, "--wait", "--timeout", "120", "--interval", "0.5", "--json"])
    assert waited.exit_code == 0, waited.output
    view = json.loads(waited.stdout)
    assert view["execution"]["status"] == "SUCCEEDED"
    assert view["missionStatus"] == "SUCCEEDED"
    assert view["progress"]["shards"] == 6 and view["progress"]["done"] == 6
    assert view["progress"]["units"] == 2 and view["waitTimedOut"] is False
    assert sum(u["shards"] for u in view["units"]) == 6
    mission = view["mission"]
    elapsed = mission["finishedAt"] - mission["createdAt"]
    assert view["pace"]["shardsPerSecond"] == pytest.approx(6 / elapsed)
    assert view["pace"]["etaSeconds"] == 0 and view["pace"]["maxCostUsd"] is None

    shown = cli(status, [view["missionId"]])  # by mission id, rendered like the local view
    assert shown.exit_code == 0, shown.output
    assert "Progress: 6/6 shards done" in shown.stdout
    assert f"Pace: {6 / elapsed:.3g} shards/s · ETA 0 s · spent $" in shown.stdout
    assert "RunWorkUnits: one child execution per work unit" in shown.stdout
    assert "MissionSucceeded" in shown.stdout and "SUCCEEDED" in shown.stdout

    priced = cli(cost, [view["missionId"], "--json"])
    assert priced.exit_code == 0, priced.output
    bill = json.loads(priced.stdout)
    assert bill["orchestration"]["stepFunctions"] > 0
    assert bill["recordedByRsltProc"] == view["mission"]["cost"]
    assert bill["total"] >= bill["orchestration"]["total"]
    assert view["pace"]["spentUsd"] == round(bill["total"], 6)  # every node billed: no estimate


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--param", "shards=0"], "Mission.InvalidInput: params.shards"),
        (["--param", "shard=4"], "Mission.InvalidInput: params.shard: unknown parameter"),
        (["--param", "nokey"], "Mission.InvalidInput: --param needs key=value"),
        (["--profile", "nope"], "Mission.InvalidInput: unknown MissionCfg profile 'nope'"),
    ],
)
def test_invalid_input_is_refused_before_anything_is_sent(
    cli: Cli, stack: LocalStack, args: list[str], says: str
) -> None:
    before = len(executions(stack))
    refused = cli(start, [sample_uri(stack), *args])
    assert refused.exit_code == 2
    assert refused.stderr.startswith(f"lighthpc: {says}")
    assert refused.stderr.count("\n") == 1  # one readable line, no traceback
    assert len(executions(stack)) == before


@pytest.mark.parametrize(
    ("uri", "says"),
    [
        ("s3://elsewhere/incoming/items.txt", "is not the mission source bucket"),
        ("s3://lighthpc-source/other/items.txt", "is outside the watched prefix 'incoming/'"),
        ("s3://lighthpc-source/incoming/missing.txt", "cannot be read"),
        ("lighthpc-source", "is not an s3://bucket/key URI"),
    ],
)
def test_a_sample_outside_the_source_is_refused(cli: Cli, uri: str, says: str) -> None:
    refused = cli(start, [uri])
    assert refused.exit_code == 2
    assert says in refused.stderr


def test_config_puts_gets_lists_and_deletes_profiles(cli: Cli, stack: LocalStack) -> None:
    put = cli(config, ["put", "fast", "--param", "workload=noop", "--param", "shards=2"])
    assert put.exit_code == 0, put.output
    assert json.loads(put.stdout) == {
        "profile": "fast",
        "params": {"workload": "noop", "shards": 2},
    }
    got = json.loads(cli(config, ["get", "fast"]).stdout)
    assert got["params"] == {"workload": "noop", "shards": 2}
    listed = json.loads(cli(config, ["list"]).stdout)["profiles"]
    assert {p["profile"] for p in listed} >= {"default", "fast"}

    started = cli(start, [sample_uri(stack), "--profile", "fast", "--param", "shards=3", "--json"])
    assert started.exit_code == 0, started.output
    merged = json.loads(started.stdout)
    assert merged["input"]["profile"] == "fast"
    assert merged["effectiveParams"]["workload"] == "noop"
    assert merged["effectiveParams"]["shards"] == 3  # the command line wins over the profile

    assert cli(config, ["delete", "fast"]).exit_code == 0
    gone = cli(config, ["get", "fast"])
    assert gone.exit_code == 1
    assert gone.stderr.startswith("lighthpc: Profile.NotFound: no MissionCfg profile 'fast'")
    bad = cli(config, ["put", "broken", "--param", "maxNodes=0"])
    assert bad.exit_code == 2 and bad.stderr.startswith("lighthpc: Profile.Invalid:")


def test_put_reads_a_params_file(cli: Cli, tmp_path: Path) -> None:
    params = tmp_path / "params.json"
    params.write_text(json.dumps({"workload": "noop", "topK": 3}))
    put = cli(config, ["put", "fromfile", "--file", str(params), "--param", "topK=5"])
    assert put.exit_code == 0, put.output
    assert json.loads(put.stdout)["params"] == {"workload": "noop", "topK": 5}


def test_an_unknown_stack_is_one_line_and_explicit_env_skips_discovery(
    cli: Cli, stack: LocalStack
) -> None:
    missing = cli(config, ["list", "--stack", "NoSuchStack"])
    assert missing.exit_code == 1
    assert missing.stderr.startswith("lighthpc: Stack.NotFound: no stack 'NoSuchStack' here")

    explicit: dict[str, str | None] = {
        **Settings.as_env(stack.settings),
        ENV_STATE_MACHINE_ARN: stack.state_machine_arn,
    }
    found = cli(config, ["list", "--stack", "NoSuchStack"], env=explicit)
    assert found.exit_code == 0, found.output
    assert "default" in found.stdout


def test_status_of_an_unknown_mission_fails_readably(cli: Cli) -> None:
    unknown = cli(status, ["m-0000000000000000"])
    assert unknown.exit_code == 1
    assert unknown.stderr.startswith("lighthpc: Mission.NotFound:")
