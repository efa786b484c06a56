"""Dependencies point inward: the domain (``workflow`` outside ``workflow.aws``) and the CLI's
views import no AWS SDK and no adapter, so unit tests and other hosts need neither."""

from __future__ import annotations

import pkgutil
import subprocess
import sys

import workflow

HOSTS = ("boto3", "botocore", "workflow.aws")


def domain_modules() -> list[str]:
    names = [
        m.name
        for m in pkgutil.walk_packages(workflow.__path__, "workflow.")
        if not m.name.startswith("workflow.aws")
    ]
    return [*names, "cli.views"]


def test_the_domain_imports_no_sdk_and_no_adapter() -> None:
    modules = domain_modules()
    assert {"workflow.planning", "workflow.ports", "workflow.records"} <= set(modules)
    probe = (
        "import importlib, sys\n"
        f"for name in {modules!r}:\n"
        "    importlib.import_module(name)\n"
        f"print(sorted(m for m in sys.modules if m.startswith({HOSTS!r})))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=120
    )
    assert out.stdout.strip() == "[]"
