"""A shard past its ``shardTimeoutSeconds`` fails as ``Shard.Timeout``, whatever its workload.

Real worker processes (``ShardPool``), the real noop and command workloads: the bound holds
for a Python loop that never looks at a clock and for a command that ignores SIGTERM.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import pytest

from node_agent import proctree
from node_agent.runner import ShardPool, ShardTask
from tests.waiting import wait_for
from workflow.params import parse_params
from workflow.workloads.base import ShardRange, WorkInputs
from workflow.workloads.command import LOCAL_ROOT_ENV

pytestmark = pytest.mark.e2e

STUBBORN = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(600)"


@pytest.mark.parametrize(
    ("workload", "params", "needle"),
    [
        ("noop", {"workload": "noop", "items": 1_000, "sleepMs": 1_000}, "Shard.Timeout: "),
        # command enforces the same two options itself (SIGTERM, grace, SIGKILL) and says so
        ("command", {"workload": "command", "argv": [sys.executable, "-c", STUBBORN]}, "timed out"),
    ],
)
def test_a_shard_past_its_timeout_fails_by_name(
    tmp_path: Path,
    workload: str,
    params: dict[str, object],
    needle: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    if os.geteuid() == 0:  # as the local pool does for a developer running it as root
        monkeypatch.setenv(LOCAL_ROOT_ENV, "1")
    options = parse_params(params, {"shardTimeoutSeconds": 1, "graceSeconds": 1})
    sample = tmp_path / "sample"
    sample.write_text("x\n")
    pool = ShardPool(1)
    began = time.monotonic()
    try:
        inputs = WorkInputs(sample=sample, options=options.workload_options())
        task = ShardTask(workload, ShardRange("s0", 0, 0, 1_000), inputs, tmp_path / "work")
        outcome = pool.submit(task).result(timeout=60)
        elapsed = time.monotonic() - began
        pool.next_events(0.1)
        workers = pool.worker_pids
        wait_for(
            lambda: not [p for w in workers for p in proctree.descendants(w)],
            10,
            "the timed-out shard's processes to be gone",
        )
    finally:
        pool.close()
    assert outcome.kind == "failed", outcome
    assert needle in outcome.cause, outcome.cause
    assert elapsed < 30, "the bound is seconds, not the shard's natural length"
