"""What a process imports is what it needs: the node agent, PlanMission's and RsltProc's
hosts start without RDKit and numpy (molsim's worker and merger import them when used)."""

from __future__ import annotations

import subprocess
import sys

import pytest

HEAVY = ("rdkit", "numpy", "workflow.workloads.molsim")


@pytest.mark.parametrize(
    "module", ["node_agent.main", "lambdas.light_scheduler", "lambdas.rslt_proc"]
)
def test_a_host_imports_no_workload_library_it_does_not_use(module: str) -> None:
    probe = f"import sys, {module}; print(sorted(m for m in {HEAVY!r} if m in sys.modules))"
    loaded = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert loaded == "[]"


def test_the_node_entry_module_loads_nothing_a_shard_worker_would_pay_for() -> None:
    """Each shard worker re-imports the node's main module (``spawn``): it must stay bare."""
    agent = ("boto3", "botocore", "node_agent.agent", "node_agent.startup", "workflow.aws")
    probe = f"import sys, node_agent.main; print(sorted(m for m in {agent!r} if m in sys.modules))"
    loaded = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert loaded == "[]"
