"""Real bundling (opt-in: ``LIGHTHPC_BUNDLE_TEST=1``): pip downloads ~150 MB of wheels from
PyPI, so it is not part of the default run. About 1.5 minutes on 2 cores with a warm pip cache.

It synthesizes with bundling ON (the way ``cdk deploy`` does) through CDK's ILocalBundling
callback, checks that each bundle carries its own layers only (no CLI, no embedded cloud),
then installs the node wheelhouse offline exactly as the user data does. The requirements
check at the end is offline and always runs.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import zipfile
from importlib.util import find_spec
from pathlib import Path
from typing import Any

import pytest

needs_pypi = pytest.mark.skipif(
    os.environ.get("LIGHTHPC_BUNDLE_TEST") != "1",
    reason="opt-in: set LIGHTHPC_BUNDLE_TEST=1 (downloads wheels from PyPI)",
)


# What the handlers import (the SDK aside: the Lambda runtime has it) and what that needs.
LAMBDA_TOP_LEVEL = {
    "lambdas",
    "workflow",
    "aws_lambda_powertools",
    "jmespath",
    "pydantic",
    "pydantic_core",
    "annotated_types",
    "typing_extensions.py",
    "typing_inspection",
    "rdkit",  # PlanMission and RsltProc parse molsim SMILES
    "rdkit.libs",
    "numpy",
    "numpy.libs",
}
# The node: the runtime's requirements, the SDK and RDKit's Pillow included, and our wheel.
NODE_DISTRIBUTIONS = {
    "lighthpc_sfn",
    "aws_lambda_powertools",
    "jmespath",
    "pydantic",
    "pydantic_core",
    "annotated_types",
    "typing_extensions",
    "typing_inspection",
    "rdkit",
    "numpy",
    "pillow",
    "boto3",
    "botocore",
    "s3transfer",
    "urllib3",
    "python_dateutil",
    "six",
}
# Outer layers and their dependencies: in neither bundle, whatever the allowlists above say.
NEVER_BUNDLED = {"cli", "localcloud", "click", "rich", "pygments", "markdown_it", "moto"}
_ISOLATED_IMPORT = """
import importlib.util, json, sys
sys.path[:0] = sys.argv[1:3]  # the bundle, then the runtime's SDK
import lambdas.light_scheduler, lambdas.rslt_proc, lambdas.mission_cfg, lambdas.node_watch
from workflow.workloads import load_workload
from workflow.workloads.molsim import parse_smiles
load_workload("molsim")
assert parse_smiles("c1ccccc1O") is not None
files = [getattr(m, "__file__", None) or "" for m in list(sys.modules.values())]
print(json.dumps({
    "leaked": [f for f in files if "-packages" in f],
    "findable": [n for n in sys.argv[3:] if importlib.util.find_spec(n) is not None],
}))
"""


def top_level(root: Path) -> set[str]:
    """Importable top-level names of an installed tree (metadata directories left out)."""
    return {p.name for p in root.iterdir() if not p.name.endswith((".dist-info", ".data"))}


def distribution_names(names: list[str]) -> set[str]:
    """``pydantic_core-2.50.5.dist-info`` or ``numpy-2.4.6-cp311-....whl`` -> the name part."""
    return {name.split("-", 1)[0].lower() for name in names}


def asset_dirs(outdir: Path, template: dict[str, Any]) -> dict[str, Path]:
    """Lambda code asset and node package asset, by what refers to them."""
    found: dict[str, Path] = {}
    for resource in template["Resources"].values():
        if resource["Properties"].get("Handler") == "lambdas.light_scheduler.handler":
            key = resource["Properties"]["Code"]["S3Key"]
            found["lambda"] = outdir / f"asset.{key.removesuffix('.zip')}"
    for path in outdir.glob("asset.*"):
        if (path / "wheelhouse").is_dir():
            found["node"] = path
    return found


@needs_pypi
def test_deploy_style_synth_bundles_the_lambda_and_the_node_package(tmp_path: Path) -> None:
    from lighthpc_infra.bundling import (
        INSTALLER_DIR,
        INSTALLER_WHEEL,
        LAMBDA_UNZIPPED_LIMIT,
        node_install_commands,
        tree_size,
    )
    from lighthpc_infra.synthesis import cdk_json_context, synthesize

    result = synthesize({**cdk_json_context(), "lambdaPython": "3.12"}, outdir=tmp_path / "out")
    assets = asset_dirs(tmp_path / "out", result.template)
    assert set(assets) == {"lambda", "node"} and assets["lambda"] != assets["node"]

    code = assets["lambda"]
    assert (code / "lambdas" / "light_scheduler.py").is_file()
    assert (code / "workflow" / "workloads" / "molsim.py").is_file()
    assert (code / "workflow" / "aws" / "dynamodb.py").is_file()
    assert top_level(code) == LAMBDA_TOP_LEVEL
    dists = distribution_names([p.name for p in code.glob("*.dist-info")])
    assert NEVER_BUNDLED.isdisjoint(top_level(code) | dists)
    assert not (code / "boto3").exists()  # the Lambda runtime provides the SDK
    assert tree_size(code) < LAMBDA_UNZIPPED_LIMIT

    wheels = sorted(p.name for p in (assets["node"] / "wheelhouse").glob("*.whl"))
    assert distribution_names(wheels) == NODE_DISTRIBUTIONS
    assert NEVER_BUNDLED.isdisjoint(distribution_names(wheels))
    assert any(w.startswith("rdkit-") and "cp311" in w for w in wheels)
    (own,) = (assets["node"] / "wheelhouse").glob("lighthpc_sfn-*.whl")
    with zipfile.ZipFile(own) as wheel:
        packages = {name.split("/", 1)[0] for name in wheel.namelist()}
    assert {p for p in packages if not p.endswith(".dist-info")} == {"workflow", "node_agent"}
    venv = tmp_path / "node-venv"
    assert (assets["node"] / INSTALLER_DIR / INSTALLER_WHEEL).is_file()
    offline = {**os.environ, "PIP_FIND_LINKS": "", "PIP_CONFIG_FILE": os.devnull}
    for argv in node_install_commands(  # as the user data installs it, offline
        package_dir=str(assets["node"]), venv=str(venv), python=sys.executable
    ):
        subprocess.run(argv, check=True, env=offline)
    assert (venv / "bin" / "lighthpc-node").is_file()
    runs_molsim = "import node_agent.main, workflow.workloads.molsim as m; m.require_rdkit()"
    subprocess.run([str(venv / "bin" / "python"), "-I", "-c", runs_molsim], check=True)


@needs_pypi
def test_the_handlers_import_from_the_lambda_bundle_and_the_runtime_sdk_alone(
    tmp_path: Path,
) -> None:
    """The bundle above targets Python 3.12, which this machine may not run: build the same
    bundle for this interpreter and glibc, then import every handler with ``-I -S`` (no
    site-packages, no PYTHONPATH, no working directory: the stdlib only) plus the bundle and,
    standing in for the Lambda runtime's, this interpreter's copy of the SDK."""
    from lighthpc_infra.bundling import LAMBDA_RUNTIME_SDK, LambdaBundling
    from lighthpc_infra.stack import PROJECT_ROOT

    glibc = platform.libc_ver()[1]
    python = f"{sys.version_info.major}.{sys.version_info.minor}"
    bundle = tmp_path / "bundle"
    LambdaBundling(
        project_root=PROJECT_ROOT, python_version=python, glibc_minor=int(glibc.split(".")[1])
    ).try_bundle(str(bundle))
    assert top_level(bundle) == LAMBDA_TOP_LEVEL

    sdk = tmp_path / "runtime-sdk"
    sdk.mkdir()
    for name in LAMBDA_RUNTIME_SDK:
        spec = find_spec(name.removesuffix(".py"))
        assert spec is not None and spec.origin is not None
        origin = Path(spec.origin)
        source = origin.parent if spec.submodule_search_locations else origin
        (sdk / source.name).symlink_to(source)

    proc = subprocess.run(
        [sys.executable, "-I", "-S", "-c", _ISOLATED_IMPORT, str(bundle), str(sdk), *NEVER_BUNDLED],
        capture_output=True,
        text=True,
        check=False,
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert json.loads(proc.stdout) == {"leaked": [], "findable": []}


@needs_pypi
def test_python311_lambda_bundle_is_refused_while_rdkit_needs_glibc_2_28(tmp_path: Path) -> None:
    """Lambda python3.11 runs on Amazon Linux 2 (glibc 2.26); rdkit==2026.9.1 and numpy 2.4
    publish manylinux_2_28/2_27 wheels only. When this test fails, a compatible wheel exists
    and the 3.11 runtime bundles again."""
    from lighthpc_infra.bundling import BundlingError, LambdaBundling
    from lighthpc_infra.stack import PROJECT_ROOT

    bundler = LambdaBundling(project_root=PROJECT_ROOT, python_version="3.11", glibc_minor=26)
    with pytest.raises(BundlingError) as refused:
        bundler.try_bundle(str(tmp_path))
    assert "rdkit" in str(refused.value) and "-c lambdaPython=3.12" in str(refused.value)


def test_bundles_get_the_core_and_the_runtime_extras_never_the_project_itself(
    tmp_path: Path,
) -> None:
    from lighthpc_infra.bundling import BundlingError, runtime_requirements
    from lighthpc_infra.stack import PROJECT_ROOT

    requirements = runtime_requirements(PROJECT_ROOT)
    assert any(r.startswith("rdkit==") for r in requirements)
    assert not any(r.startswith(("click", "rich", "moto", "lighthpc-sfn")) for r in requirements)

    (tmp_path / "pyproject.toml").write_text(
        '[project]\ndependencies = ["pydantic==2"]\n'
        '[project.optional-dependencies]\nmolsim = ["rdkit==1"]\n'
        'local = ["lighthpc-sfn[molsim]", "moto==5"]\n'
    )
    assert runtime_requirements(tmp_path, ["molsim"]) == ["pydantic==2", "rdkit==1"]
    with pytest.raises(BundlingError, match="must not name lighthpc-sfn itself"):
        runtime_requirements(tmp_path, ["local"])  # pip would fetch it from PyPI
    with pytest.raises(BundlingError, match="no extra 'gpu'"):
        runtime_requirements(tmp_path, ["gpu"])
