"""``lighthpc ls|cancel|logs|rerun|get`` against ``lighthpc local up``'s machinery: a
``LocalSession`` (emulator, stack, real node processes, the ended-execution events), driven
through its endpoint exactly as a user on another machine would."""

from __future__ import annotations

import gc
import json
import os
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from cli.mission_verbs import cancel, get, logs, ls, rerun
from cli.missions import mission_nodes
from cli.remote_commands import config
from localcloud.outputs import register_outputs
from localcloud.session import LocalSession
from tests.waiting import wait_for
from workflow.records import MissionRecord
from workflow.stack_outputs import ENV_STATE_MACHINE_ARN, LOG_GROUPS
from workflow.states import FINISHED_MISSION, MissionStatus, ShardStatus

LINES = [f"read-{i:02d}-{'ACGT' * (i % 3 + 1)}" for i in range(8)]
# One shard's command: its lines upper-cased with their index; it fails on a listed item
# while the marker file exists (the "flaky environment" a rerun is for).
SHARD_SCRIPT = """
import os, pathlib, sys
marker, failing = sys.argv[1], {int(i) for i in sys.argv[2].split(",")}
start, end = int(os.environ["LIGHTHPC_SHARD_START"]), int(os.environ["LIGHTHPC_SHARD_END"])
if os.path.exists(marker) and failing & set(range(start, end)):
    sys.exit("flaky: the marker is there")
lines = pathlib.Path(os.environ["LIGHTHPC_SHARD_INPUT"]).read_text().splitlines()
with open(os.environ["LIGHTHPC_SHARD_OUTPUT"], "w") as out:
    for i in range(start, end):
        out.write(f"{i}:{lines[i].upper()}\\n")
"""
FAILING_ITEMS = (2, 6)  # 4 shards of 2 items: s000001 and s000003 fail


class Cli:
    def __init__(self, session: LocalSession) -> None:
        self.endpoint = session.cloud.endpoint_url
        self.env: dict[str, str | None] = {
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": session.cloud.region,
            "AWS_ENDPOINT_URL": None,
            ENV_STATE_MACHINE_ARN: None,
        }

    def __call__(self, command: Any, args: Sequence[str]) -> Result:
        return CliRunner().invoke(command, [*args, "--endpoint-url", self.endpoint], env=self.env)

    def json(self, command: Any, args: Sequence[str], code: int = 0) -> dict[str, Any]:
        result = self(command, [*args, "--json"])
        assert result.exit_code == code, result.output
        data = json.loads(result.stdout)
        assert isinstance(data, dict)
        return data


@pytest.fixture(scope="module")
def session(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalSession]:
    with LocalSession(workers=2, log_dir=tmp_path_factory.mktemp("verbs-logs")) as s:
        yield s


@pytest.fixture(scope="module")
def cli(session: LocalSession) -> Cli:
    return Cli(session)


def test_the_session_keeps_its_start_up_heap_out_of_full_collections(
    session: LocalSession,
) -> None:
    """The emulator, its models and the stack (~460,000 objects) are frozen while it runs:
    a full collection walked them all, 0.3 s with every request thread stopped."""
    assert gc.get_freeze_count() > 50_000


@pytest.fixture(scope="module")
def script(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("verbs-bin") / "shard.py"
    path.write_text(SHARD_SCRIPT)
    return path


def _sample(session: LocalSession, tmp: Path, name: str) -> str:
    path = tmp / name
    path.write_text("".join(f"{line}\n" for line in LINES))
    return session.upload_sample(path, trigger=False)


def _start(session: LocalSession, key: str, params: Mapping[str, Any]) -> str:
    arn = session.start_manual(key, params)
    return wait_for(lambda: session.mission_id(arn), 60, f"a mission planned by {arn}")


def _mission(session: LocalSession, mission_id: str) -> MissionRecord:
    return session.services.store.get_mission(mission_id)  # type: ignore[no-any-return]


def _finished(session: LocalSession, mission_id: str, timeout: float = 180) -> MissionRecord:
    def ended() -> MissionRecord | None:
        m = _mission(session, mission_id)
        return m if m.status in FINISHED_MISSION and m.finished_at else None

    return wait_for(ended, timeout, f"mission {mission_id} to finish", interval=0.2)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    state = Path(f"/proc/{pid}/stat").read_text().split(") ")[-1][:1]
    return state != "Z"  # a zombie is gone, only not yet reaped


def test_cancel_terminates_the_nodes_and_keeps_the_done_shards(
    session: LocalSession, cli: Cli, tmp_path: Path
) -> None:
    key = _sample(session, tmp_path, "slow.txt")
    params = {"workload": "noop", "items": 8000, "sleepMs": 10, "shards": 16, "maxNodes": 2}
    mission_id = _start(session, key, params)
    store = session.services.store
    pool = session.pool
    assert pool is not None

    def working() -> bool:
        done = [s for s in store.list_shards(mission_id) if s.status is ShardStatus.DONE]
        return bool(done) and bool(pool.nodes(mission_id=mission_id, running_only=True))

    wait_for(working, 120, "a DONE shard while nodes still run", interval=0.2)
    out = cli.json(cancel, [mission_id, "--timeout", "60"])
    assert out["status"] == MissionStatus.CANCELLED.value and out["settled"] is True
    assert out["instancesLeft"] == []

    shards = store.list_shards(mission_id)
    done = [s for s in shards if s.status is ShardStatus.DONE]
    assert out["shardsDone"] == len(done) >= 1
    assert out["shardsFailed"] == len(shards) - len(done) >= 1  # it was cut short
    for shard in done:  # what was done is kept: the committed results are still there
        session.services.s3.head_object(
            Bucket=session.services.settings.result_bucket, Key=shard.result_key
        )
    handles = pool.nodes(mission_id=mission_id)
    pids = {h.pid for h in handles} | {p for h in handles for p in h.killed_pids}
    wait_for(lambda: not any(_alive(p) for p in pids), 30, "every node process to end")
    assert session.services.compute.mission_instances(mission_id) == []

    again = cli.json(cancel, [mission_id], code=1)
    assert again["error"] == "Mission.AlreadyFinished"
    listed = cli.json(ls, [])["missions"]
    assert {m["missionId"]: m["status"] for m in listed}[mission_id] == "CANCELLED"


def test_rerun_of_the_failed_shards_merges_into_the_clean_result(
    session: LocalSession, cli: Cli, script: Path, tmp_path: Path
) -> None:
    marker = tmp_path / "flaky"
    marker.touch()
    argv = [sys.executable, str(script), str(marker), ",".join(map(str, FAILING_ITEMS))]
    params = {"workload": "command", "argv": argv, "shards": 4, "maxNodes": 4}
    key = _sample(session, tmp_path, "reads.txt")
    first = _finished(session, _start(session, key, params))
    failed = sorted(f.shard_id for f in first.failed_shards or ())
    assert failed == ["s000001", "s000003"] and first.shards_done == 2

    marker.unlink()  # the environment is fixed; the inputs and params stay the same
    started = cli.json(rerun, [first.mission_id, "--failed"])
    assert started["rerunOf"] == first.mission_id and started["failedShards"] == failed
    second_id = wait_for(
        lambda: session.mission_id(started["executionArn"]), 60, "the rerun to be planned"
    )
    second = _finished(session, second_id)
    assert second.status is MissionStatus.SUCCEEDED and second.shards == 2
    assert second.extra["rerunOf"] == first.mission_id
    assert _mission(session, first.mission_id).extra["rerunId"] == second_id
    assert second.sample == first.sample and second.params == first.params

    clean = _finished(session, _start(session, _sample(session, tmp_path, "clean.txt"), params))
    assert clean.status is MissionStatus.SUCCEEDED
    out = tmp_path / "out"
    merged = Path(cli.json(get, [second_id, str(out)])["result"])
    whole = Path(cli.json(get, [clean.mission_id, str(out)])["result"])
    expected = "".join(f"{i}:{line.upper()}\n" for i, line in enumerate(LINES))
    assert merged.read_text() == whole.read_text() == expected
    summary = json.loads((out / second_id / "summary.json").read_text())
    assert summary["rerunOf"] == first.mission_id and summary["status"] == "SUCCEEDED"

    assert cli.json(rerun, [first.mission_id, "--failed"], code=1)["error"] == (
        "Mission.AlreadyRerun"
    )
    nothing = cli.json(rerun, [clean.mission_id, "--failed"], code=1)
    assert nothing["error"] == "Mission.NothingToRerun"

    found = cli.json(logs, [first.mission_id])
    assert len(found["nodes"]) == 4  # one node per unit, none retried
    sources = {line["source"] for line in found["lines"]}
    assert set(found["nodes"]) <= sources and "lambdas" in sources
    one = cli.json(logs, [first.mission_id, "--unit", "u0001"])
    assert len(one["nodes"]) == 1 and set(one["nodes"]) < set(found["nodes"])
    assert {line["source"] for line in one["lines"]} <= {*one["nodes"], "lambdas"}


def test_ls_lists_missions_newest_first_bounded_and_never_a_profile(
    session: LocalSession, cli: Cli, tmp_path: Path
) -> None:
    assert cli(config, ["put", "verbs", "--param", "shards=2"]).exit_code == 0
    key = _sample(session, tmp_path, "small.txt")
    newest = _finished(session, _start(session, key, {"workload": "noop", "shards": 2}))
    listed = cli.json(ls, ["--limit", "1000"])["missions"]
    assert not [m for m in listed if m["missionId"].startswith("CONFIG#")]
    assert listed[0]["missionId"] == newest.mission_id
    created = [m["createdAt"] for m in listed]
    assert created == sorted(created, reverse=True)
    scanned = [m for m in session.services.store.scan_missions()]
    assert {m["missionId"] for m in listed} == {m.mission_id for m in scanned}
    assert len(cli.json(ls, ["--limit", "1"])["missions"]) == 1
    assert cli.json(ls, ["--limit", "0"], code=2)["error"] == "Mission.InvalidInput"
    table = cli(ls, [])
    assert table.exit_code == 0 and newest.mission_id in table.stdout


def test_get_and_logs_of_what_is_no_mission_are_named_errors(cli: Cli, tmp_path: Path) -> None:
    for command, args in (
        (get, ["m-nope", str(tmp_path)]),
        (get, ["CONFIG#default", str(tmp_path)]),
        (logs, ["m-nope"]),
        (cancel, ["m-nope"]),
        (rerun, ["m-nope", "--failed"]),
    ):
        out = cli.json(command, args, code=1)
        assert out == {"error": "Mission.NotFound", "message": out["message"], "exitCode": 1}
    assert not list(tmp_path.iterdir())


def test_logs_on_aws_read_the_nodes_shipped_lines_in_time_order_and_no_token(
    session: LocalSession, cli: Cli, tmp_path: Path
) -> None:
    """The stack as AWS describes it: NodeLogGroupName and no NodeLogDir. The lines come from
    the node processes' own shipping to the local CloudWatch Logs, not from their files."""
    view, lambda_group = "LightHpcAsOnAws", "/aws/lambda/as-on-aws"
    # No NodeLogDir; a Lambda group as AWS has (the local Lambdas log to lambdas.log).
    register_outputs(
        session.cloud, session.stack, stack_name=view, extra={LOG_GROUPS: lambda_group}
    )
    session.cloud.client("logs").create_log_group(logGroupName=lambda_group)
    key = _sample(session, tmp_path, "shipped.txt")
    mission = _finished(session, _start(session, key, {"workload": "noop", "shards": 2}))
    nodes = mission_nodes(session.services, mission.mission_id, None)

    def every_node_exited() -> dict[str, Any] | None:
        found = cli.json(logs, [mission.mission_id, "--stack", view])
        exited = {line["source"] for line in found["lines"] if "node agent exiting" in line["line"]}
        return found if exited == set(nodes) else None

    wait_for(every_node_exited, 30, "every node's last line shipped")
    last = _lambda_line(session, lambda_group, f"summarised {mission.mission_id}")
    found = cli.json(logs, [mission.mission_id, "--stack", view])
    # The Lambdas' group is read first, but its line is the newest: it comes last.
    assert found["lines"][-1] == {"source": lambda_group, "line": last}
    assert sorted(found["nodes"]) == sorted(nodes)
    for iid in nodes:  # each node's stream is exactly the JSON lines of its stderr, in order
        shipped = [line["line"] for line in found["lines"] if line["source"] == iid]
        written = (session.log_dir / f"{iid}.log").read_text().splitlines()
        assert shipped == [text for text in written if text.startswith("{")]
    times = [json.loads(line["line"])["time"] for line in found["lines"] if line["source"] in nodes]
    assert times == sorted(times)
    tokens = [
        unit.task_token
        for unit in session.services.store.list_units(mission.mission_id)
        if unit.task_token
    ]
    assert tokens and not [t for t in tokens for line in found["lines"] if t in line["line"]]

    unit = json.loads(found["lines"][0]["line"])["unitId"]
    assert unit is not None
    one = cli.json(logs, [mission.mission_id, "--unit", unit, "--stack", view])
    assert {json.loads(line["line"])["unitId"] for line in one["lines"]} == {unit}
    assert len(one["nodes"]) == 1


def _lambda_line(session: LocalSession, group: str, text: str) -> str:
    """A Lambda's line in ``group``, stamped now."""
    client = session.cloud.client("logs")
    client.create_log_stream(logGroupName=group, logStreamName="2026/12/01/[$LATEST]0")
    client.put_log_events(
        logGroupName=group,
        logStreamName="2026/12/01/[$LATEST]0",
        logEvents=[{"timestamp": int(time.time() * 1000), "message": text}],
    )
    return text
