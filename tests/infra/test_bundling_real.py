"""Real bundling (opt-in: ``LIGHTHPC_BUNDLE_TEST=1``): pip downloads ~150 MB of wheels from
PyPI, so it is not part of the default run. About 1.5 minutes on 2 cores with a warm pip cache.

It synthesizes with bundling ON (the way ``cdk deploy`` does) through CDK's ILocalBundling
callback, then installs the node wheelhouse offline exactly as the user data does.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.skipif(
    os.environ.get("LIGHTHPC_BUNDLE_TEST") != "1",
    reason="opt-in: set LIGHTHPC_BUNDLE_TEST=1 (downloads wheels from PyPI)",
)


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


def test_deploy_style_synth_bundles_the_lambda_and_the_node_package(tmp_path: Path) -> None:
    from lighthpc_infra.bundling import LAMBDA_UNZIPPED_LIMIT, tree_size
    from lighthpc_infra.synthesis import cdk_json_context, synthesize

    result = synthesize({**cdk_json_context(), "lambdaPython": "3.12"}, outdir=tmp_path / "out")
    assets = asset_dirs(tmp_path / "out", result.template)
    assert set(assets) == {"lambda", "node"} and assets["lambda"] != assets["node"]

    code = assets["lambda"]
    assert (code / "lambdas" / "light_scheduler.py").is_file()
    assert (code / "workflow" / "workloads" / "molsim.py").is_file()
    assert (code / "rdkit").is_dir() and (code / "pydantic_core").is_dir()
    assert not (code / "boto3").exists()  # the Lambda runtime provides the SDK
    assert tree_size(code) < LAMBDA_UNZIPPED_LIMIT

    wheels = sorted(p.name for p in (assets["node"] / "wheelhouse").glob("*.whl"))
    assert any(w.startswith("lighthpc_sfn-") for w in wheels)
    assert any(w.startswith("rdkit-") and "cp311" in w for w in wheels)
    venv = tmp_path / "node-venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    subprocess.run(
        [
            str(venv / "bin" / "pip"),
            "install",
            "--quiet",
            "--no-index",
            "--find-links",
            str(assets["node"] / "wheelhouse"),
            "lighthpc-sfn",
        ],
        check=True,
        env={**os.environ, "PIP_FIND_LINKS": "", "PIP_CONFIG_FILE": os.devnull},
    )
    assert (venv / "bin" / "lighthpc-node").is_file()


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
