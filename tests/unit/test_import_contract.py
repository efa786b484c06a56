"""The import contract (``.importlinter``) holds on the real tree and breaks on a bad import.

Each case copies the packages into a temporary tree, adds one forbidden import and runs
``lint-imports`` there: a contract that could not fail would prove nothing.
"""

from __future__ import annotations

import configparser
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("workflow", "lambdas", "node_agent", "localcloud", "cli")
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def _copy_tree(into: Path) -> Path:
    for name in PACKAGES:
        shutil.copytree(ROOT / name, into / name, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(
        ROOT / "infra" / "lighthpc_infra",
        into / "infra" / "lighthpc_infra",
        ignore=shutil.ignore_patterns("__pycache__"),
    )
    shutil.copy(ROOT / ".importlinter", into / ".importlinter")
    return into


def _lint(root: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": f"{root}{os.pathsep}{root / 'infra'}"}
    return subprocess.run(
        [str(LINT_IMPORTS), "--config", str(root / ".importlinter"), "--no-cache"],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_the_tree_keeps_every_contract(tmp_path: Path) -> None:
    result = _lint(_copy_tree(tmp_path))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "BROKEN" not in result.stdout


@pytest.mark.parametrize(
    ("module", "line", "contract"),
    [
        ("workflow/planning.py", "import localcloud.stack", "Hosts depend on the domain"),
        ("node_agent/agent.py", "import lambdas.rslt_proc", "Hosts depend on the domain"),
        ("workflow/params.py", "import boto3", "The domain reaches AWS only"),
        ("workflow/keys.py", "import workflow.aws.services", "The domain reaches AWS only"),
        ("infra/lighthpc_infra/stack.py", "import localcloud.emulator", "The CDK app imports"),
        ("lambdas/runtime.py", "import rich", "What runs on AWS"),
        ("workflow/errors.py", "import workflow.params", "No import cycles"),
    ],
)
def test_a_forbidden_import_breaks_its_contract(
    tmp_path: Path, module: str, line: str, contract: str
) -> None:
    root = _copy_tree(tmp_path)
    target = root / module
    target.write_text(target.read_text() + f"\n{line}  # injected by the test\n")
    result = _lint(root)
    assert result.returncode != 0
    broken = [ln for ln in result.stdout.splitlines() if ln.endswith("BROKEN")]
    assert any(ln.startswith(contract) for ln in broken), result.stdout


def test_the_domain_contract_names_every_domain_module() -> None:
    """A new ``workflow`` module outside ``workflow.aws`` must be listed, or it escapes."""
    config = configparser.ConfigParser()
    config.read(ROOT / ".importlinter")
    listed = set(config["importlinter:contract:domain"]["source_modules"].split())
    modules = {f"workflow.{p.stem}" for p in (ROOT / "workflow").glob("*.py")}
    packages = {f"workflow.{p.parent.name}" for p in (ROOT / "workflow").glob("*/__init__.py")}
    assert listed == (modules | packages) - {"workflow.__init__", "workflow.aws"}
