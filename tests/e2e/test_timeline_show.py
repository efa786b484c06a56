"""``lighthpc show MISSION --timeline FILE``: a real mission on the embedded stack (REAL node
processes), one shard of which fails; the CLI finds the stack by its outputs, as
``lighthpc status`` does, and draws what the records say. The execution-ARN path still shows
the state graph without any stack lookup."""

from __future__ import annotations

import sys
import xml.etree.ElementTree as ET
from pathlib import Path

from click.testing import CliRunner, Result

from cli.main import main
from localcloud.emulator import EmbeddedCloud
from localcloud.pool import LocalNodePool
from localcloud.stack import LocalStack
from tests.e2e._node_agent_fixtures import mission_of, start, upload_quietly, wait_execution
from workflow.stack_outputs import ENV_STATE_MACHINE_ARN
from workflow.states import ShardStatus
from workflow.timeline import MarkKind, build_timeline

FAILING = "s000001"
# Every shard writes its line count, except FAILING, which exits 3 (a deterministic failure).
SCRIPT = (
    "import os, sys\n"
    f"if os.environ['LIGHTHPC_SHARD_ID'] == {FAILING!r}: sys.exit('bad shard')\n"
    "n = int(os.environ['LIGHTHPC_SHARD_END']) - int(os.environ['LIGHTHPC_SHARD_START'])\n"
    "open(os.environ['LIGHTHPC_SHARD_OUTPUT'], 'w').write(f'{n}\\n')\n"
)


def show(cloud: EmbeddedCloud, *args: str) -> Result:
    env: dict[str, str | None] = {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": cloud.region,
        "AWS_ENDPOINT_URL": None,
        ENV_STATE_MACHINE_ARN: None,
    }
    return CliRunner().invoke(main, ["show", *args, "--endpoint-url", cloud.endpoint_url], env=env)


def test_show_draws_the_timeline_of_a_mission_with_a_failed_shard(
    cloud: EmbeddedCloud, stack: LocalStack, pool: LocalNodePool, tmp_path: Path
) -> None:
    del pool  # its nodes run the mission
    key = "incoming/timeline.txt"
    upload_quietly(stack, key, b"".join(b"line-%d\n" % i for i in range(9)))
    params = {
        "workload": "command",
        "argv": [sys.executable, "-c", SCRIPT],
        "shards": 3,
        "maxNodes": 2,
        "maxFailedShardPercent": 50,
        "heartbeatSeconds": 30,
    }
    arn = start(stack, key, params)
    mission_id = mission_of(stack, arn)
    assert wait_execution(stack, arn, timeout=120)["status"] == "SUCCEEDED"
    store = stack.services.store
    units, shards = store.list_units(mission_id), store.list_shards(mission_id)
    assert {s.shard_id for s in shards if s.status is ShardStatus.FAILED} == {FAILING}

    target = tmp_path / "timeline.svg"
    shown = show(cloud, mission_id, "--timeline", str(target))

    assert shown.exit_code == 0, shown.output
    assert f"timeline written to {target}" in shown.stdout
    assert "RunWorkUnits" in shown.stdout  # the state graph, as for an execution ARN
    root = ET.parse(target).getroot()
    assert root.tag == "{http://www.w3.org/2000/svg}svg"
    text = " ".join(root.itertext())
    model = build_timeline(store.get_mission(mission_id), units, shards, now=0.0)
    rows = [(r.unit_id, r.attempt) for r in model.rows]
    assert rows == sorted((u.unit_id, n) for u in units for n in range(1, u.attempt + 1))
    assert all(row.label() in text for row in model.rows)
    failed = [(row.attempt, mark.shard_id) for row, mark in model.marks(MarkKind.FAILED_SHARD)]
    assert failed == [(next(s.attempt for s in shards if s.shard_id == FAILING), FAILING)]
    assert MarkKind.FAILED_SHARD.value in text
    bars = sorted(b.shard_id for row in model.rows for b in row.bars)
    assert bars == sorted(s.shard_id for s in shards)  # each shard ran, on its attempt's row

    by_arn = show(cloud, arn)
    assert by_arn.exit_code == 0, by_arn.output
    assert "RunWorkUnits" in by_arn.stdout


def test_show_of_an_unknown_mission_is_one_named_line(cloud: EmbeddedCloud, tmp_path: Path) -> None:
    target = tmp_path / "t.png"
    shown = show(cloud, "m-00000000-nope", "--timeline", str(target))
    assert shown.exit_code == 1, shown.output
    lines = shown.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("lighthpc: Mission.NotFound: "), shown.stderr
    assert not target.exists()
