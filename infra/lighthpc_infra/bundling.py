"""Packaging without Docker: the Lambda bundle and the node package are built by ``pip`` on
the machine that runs ``cdk synth``, for the target's platform (manylinux wheels only).

Both carry the core dependencies plus ``RUNTIME_EXTRAS``, read from the ``pyproject.toml`` of
the tree being bundled; never the ``cli`` or ``local`` extras, nor ``cli/`` or ``localcloud/``.

* Lambda: ``pip install --target`` of those requirements for the Lambda runtime's Python
  version and glibc, pruned to fit Lambda's 250 MB (``PRUNE_*``), plus copies of the
  ``workflow`` and ``lambdas`` packages (the workloads fall back to their built-in registry
  without dist-info).
* Node: a wheelhouse (a wheel of ``workflow`` and ``node_agent`` plus every requirement's wheel
  for Amazon Linux 2023 / CPython 3.11), installed offline on the node by its user data as
  ``NODE_REQUIREMENT``, by ``uv`` (``NODE_INSTALLER``, its wheel in ``installer/``), which
  ``benchmarks/node_install.py`` measured at several times pip's speed on the same wheelhouse.
  ``node_install_commands`` is that install; the user data and the tests run the same argv.

Both assets use ``AssetHashType.OUTPUT``: when bundling is skipped (the
``aws:cdk:bundling-stacks`` context is ``[]``, as in the tests) CDK neither runs these
bundlers nor fingerprints the project directory.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
import tomllib
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Final

import aws_cdk as cdk
import jsii
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_s3_assets as s3_assets
from constructs import Construct

DISTRIBUTION: Final = "lighthpc-sfn"
# RDKit rides in both bundles: the node runs the molsim search, and on Lambda PlanMission
# validates a molsim sample and RsltProc's reduce re-reads the queries, both parsing SMILES.
RUNTIME_EXTRAS: Final = ("molsim",)
NODE_REQUIREMENT: Final = f"{DISTRIBUTION}[{','.join(RUNTIME_EXTRAS)}]"
LAMBDA_PACKAGES: Final = ("workflow", "lambdas")
WHEEL_SOURCES: Final = ("pyproject.toml", "README.md", "statemachine.asl.json")
WHEEL_PACKAGES: Final = ("workflow", "node_agent")
# This file is <root>/infra/lighthpc_infra/bundling.py.
_PROJECT_ROOT: Final = Path(__file__).resolve().parents[2]
WHEELHOUSE: Final = "wheelhouse"
# The node's installer: uv, one static binary in a wheel, unpacked with the OS's python3 (no pip
# needed). Pinned: its wheel's layout (``uv-<version>.data/scripts/uv``) is part of the install.
UV_VERSION: Final = "0.13.9"
NODE_INSTALLER: Final = f"uv=={UV_VERSION}"
INSTALLER_DIR: Final = "installer"
INSTALLER_WHEEL: Final = "uv.whl"  # renamed from its platform-tagged name at bundling
# Never executed: BundlingOptions needs an image, but local bundling always succeeds or raises.
_NO_DOCKER: Final = "lighthpc/local-bundling-only"
_IGNORE = shutil.ignore_patterns("__pycache__", "*.pyc", ".mypy_cache", ".pytest_cache")
_PIP_TAIL = 2000
# Lambda's limit on a function's unzipped code; checked at synth, not at deploy.
LAMBDA_UNZIPPED_LIMIT: Final = 250 * 1024 * 1024
# The AWS SDK the Lambda runtime provides (top-level names as pip installs them).
LAMBDA_RUNTIME_SDK: Final = ("boto3", "botocore", "s3transfer", "urllib3", "dateutil", "six.py")
# Pruned from the Lambda bundle, or it exceeds that limit (rdkit + numpy alone are ~200 MB):
# the SDK above, and what the handlers never import (RDKit's drawing backend Pillow, type
# stubs, contributed scripts, test suites).
PRUNE_TOP: Final = (
    *LAMBDA_RUNTIME_SDK,
    "bin",
    "PIL",
    "pillow.libs",
    "rdkit-stubs",
)
PRUNE_DIST: Final = (
    "boto3-",
    "botocore-",
    "s3transfer-",
    "urllib3-",
    "python_dateutil-",
    "six-",
    "pillow-",
)
PRUNE_NESTED: Final = ("rdkit/Contrib",)
PRUNE_DIR_NAMES: Final = frozenset({"tests"})


class BundlingError(RuntimeError):
    """pip could not build a bundle; the message carries the tail of pip's output."""


def manylinux_platforms(glibc_minor: int, arch: str = "x86_64") -> list[str]:
    """Every manylinux tag a system with glibc 2.<glibc_minor> runs, newest first.

    pip does not widen ``--platform manylinux_2_X`` to older tags on its own (it does for
    ``manylinux2014``), so list them: a wheel tagged for a newer glibc must not be chosen.
    """
    tags = [f"manylinux_2_{minor}_{arch}" for minor in range(glibc_minor, 16, -1)]
    return [*tags, f"manylinux2014_{arch}"]


def runtime_requirements(
    project_root: Path = _PROJECT_ROOT, extras: Sequence[str] = RUNTIME_EXTRAS
) -> list[str]:
    """The core dependencies plus ``extras``, as pinned in ``project_root/pyproject.toml``.

    Read from the tree being bundled, not from the installed metadata, which is as old as
    the last ``pip install`` and would ship stale pins beside fresh code.
    """
    pyproject = tomllib.loads((project_root / "pyproject.toml").read_text(encoding="utf-8"))
    project = pyproject["project"]
    optional = project.get("optional-dependencies", {})
    requirements = list(project["dependencies"])
    for extra in extras:
        if extra not in optional:
            raise BundlingError(f"pyproject.toml has no extra {extra!r}")
        requirements += optional[extra]
    if own := [r for r in requirements if r.lower().startswith(DISTRIBUTION)]:
        # pip would look for the project itself on PyPI: list the requirements instead.
        raise BundlingError(f"bundle extras must not name {DISTRIBUTION} itself: {own}")
    return requirements


def platform_args(python_version: str, glibc_minor: int) -> list[str]:
    args = ["--only-binary=:all:", "--implementation", "cp", "--python-version", python_version]
    return args + [f"--platform={tag}" for tag in manylinux_platforms(glibc_minor)]


def _run(command: Sequence[str], what: str) -> None:
    proc = subprocess.run(list(command), capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        tail = (proc.stdout + proc.stderr)[-_PIP_TAIL:]
        raise BundlingError(f"{what} failed (exit {proc.returncode}):\n{tail}")


class _PipBundling:
    """What both bundles need: the runtime's Python and glibc, and the pip that fetches for
    them (wheels only, so the bundle runs on Lambda / the node AMI, not on this machine)."""

    def __init__(
        self,
        *,
        project_root: Path,
        python_version: str,
        glibc_minor: int,
        requirements: Sequence[str] | None = None,
        python: str = sys.executable,
    ) -> None:
        self.project_root = project_root
        self.python_version = python_version
        self.glibc_minor = glibc_minor
        self.requirements = list(requirements or runtime_requirements(project_root))
        self.python = python


@jsii.implements(cdk.ILocalBundling)
class LambdaBundling(_PipBundling):
    """``pip install --target`` for the Lambda runtime, then the project's packages."""

    def command(self, output_dir: str) -> list[str]:
        return [
            self.python,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "--no-compile",
            "--target",
            output_dir,
            *platform_args(self.python_version, self.glibc_minor),
            *self.requirements,
        ]

    def try_bundle(self, output_dir: str, options: Any = None, **_kwargs: Any) -> bool:
        del options  # jsii passes the BundlingOptions positionally; none of them apply
        out = Path(output_dir)
        _run(
            self.command(output_dir),
            f"pip install for the Lambda bundle (CPython {self.python_version}, glibc <= "
            f"2.{self.glibc_minor}; a dependency with no wheel for that glibc needs a newer "
            "runtime, e.g. -c lambdaPython=3.12)",
        )
        prune_bundle(out)
        for package in LAMBDA_PACKAGES:
            shutil.copytree(self.project_root / package, out / package, ignore=_IGNORE)
        size = tree_size(out)
        if size > LAMBDA_UNZIPPED_LIMIT:
            raise BundlingError(
                f"the Lambda bundle is {size / 2**20:.0f} MiB unzipped; Lambda allows "
                f"{LAMBDA_UNZIPPED_LIMIT / 2**20:.0f} MiB (see PRUNE_* in bundling.py)"
            )
        return True


def prune_bundle(root: Path) -> None:
    """Remove what the Lambda runtime provides or the handlers never import."""
    doomed = [root / name for name in (*PRUNE_TOP, *PRUNE_NESTED)]
    doomed += [p for p in root.glob("*.dist-info") if p.name.startswith(PRUNE_DIST)]
    for top in ("numpy", "rdkit"):
        doomed += [p for p in (root / top).rglob("*") if p.is_dir() and p.name in PRUNE_DIR_NAMES]
    for path in doomed:
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        elif path.exists():
            path.unlink()


def tree_size(root: Path) -> int:
    return sum(p.stat().st_size for p in root.rglob("*") if p.is_file() and not p.is_symlink())


@jsii.implements(cdk.ILocalBundling)
class NodeBundling(_PipBundling):
    """A wheelhouse the node installs offline: the project's wheel and its dependencies."""

    def try_bundle(self, output_dir: str, options: Any = None, **_kwargs: Any) -> bool:
        del options  # jsii passes the BundlingOptions positionally; none of them apply
        wheelhouse = Path(output_dir) / WHEELHOUSE
        wheelhouse.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix="lighthpc-wheel-") as tmp:
            source = self._clean_source(Path(tmp) / "src")
            wheel = ["pip", "wheel", "--quiet", "--no-deps", "--wheel-dir", str(wheelhouse)]
            _run([self.python, "-m", *wheel, str(source)], "building the project wheel")
        self._download(wheelhouse, self.requirements, "the node's dependencies")
        self._download_installer(Path(output_dir) / INSTALLER_DIR)
        return True

    def _download(self, dest: Path, requirements: Sequence[str], what: str) -> None:
        """``pip download`` of wheels for the node's platform (not this machine's)."""
        _run(
            [
                self.python,
                "-m",
                "pip",
                "download",
                "--quiet",
                "--disable-pip-version-check",
                "--dest",
                str(dest),
                *platform_args(self.python_version, self.glibc_minor),
                *requirements,
            ],
            f"downloading {what}",
        )

    def _download_installer(self, target: Path) -> None:
        """uv's wheel for the node's platform, beside (not in) the wheelhouse it installs."""
        with tempfile.TemporaryDirectory(prefix="lighthpc-uv-") as tmp:
            self._download(Path(tmp), ["--no-deps", NODE_INSTALLER], "the node's installer (uv)")
            (wheel,) = Path(tmp).glob("uv-*.whl")
            target.mkdir(parents=True, exist_ok=True)
            shutil.move(wheel, target / INSTALLER_WHEEL)

    def _clean_source(self, target: Path) -> Path:
        """A copy of just what the wheel is built from (no venv, caches or build dirs)."""
        target.mkdir(parents=True)
        for name in WHEEL_SOURCES:
            shutil.copy2(self.project_root / name, target / name)
        for package in WHEEL_PACKAGES:
            shutil.copytree(self.project_root / package, target / package, ignore=_IGNORE)
        return target


def node_install_commands(*, package_dir: str, venv: str, python: str) -> list[list[str]]:
    """The node's install from its unpacked package, as argv lists (no shell, no data in them):
    unpack uv with the OS's ``python``, make ``venv`` on ``python``, install the wheelhouse
    offline. The user data runs these; the bundling test and ``benchmarks/node_install.py``
    run the very same commands."""
    uv_root = f"{package_dir}/{INSTALLER_DIR}/uv"
    uv = f"{uv_root}/uv-{UV_VERSION}.data/scripts/uv"
    wheel = f"{package_dir}/{INSTALLER_DIR}/{INSTALLER_WHEEL}"
    return [
        [python, "-m", "zipfile", "-e", wheel, uv_root],
        ["chmod", "0755", uv],
        [uv, "venv", "--quiet", "--offline", "--no-python-downloads", "--python", python, venv],
        [
            uv,
            "pip",
            "install",
            "--quiet",
            "--offline",
            "--no-index",
            "--no-cache",
            "--find-links",
            f"{package_dir}/{WHEELHOUSE}",
            "--python",
            f"{venv}/bin/python",
            NODE_REQUIREMENT,
        ],
    ]


def _bundling(local: Any, kind: str, python_version: str, glibc: int) -> cdk.BundlingOptions:
    """The environment is never used by the local bundlers, but it is part of CDK's bundling
    cache key: without it two assets of the same directory would share one bundle."""
    return cdk.BundlingOptions(
        image=cdk.DockerImage.from_registry(_NO_DOCKER),
        local=local,
        environment={
            "LIGHTHPC_BUNDLE": kind,
            "LIGHTHPC_PYTHON": python_version,
            "LIGHTHPC_GLIBC": str(glibc),
        },
    )


def lambda_code(*, project_root: Path, python_version: str, glibc_minor: int) -> lambda_.Code:
    """One code asset for every function (bound once per stack, so built once)."""
    bundler = LambdaBundling(
        project_root=project_root, python_version=python_version, glibc_minor=glibc_minor
    )
    return lambda_.Code.from_asset(
        str(project_root),
        bundling=_bundling(bundler, "lambda", python_version, glibc_minor),
        asset_hash_type=cdk.AssetHashType.OUTPUT,
    )


def node_package(
    scope: Construct, construct_id: str, *, project_root: Path, python_version: str, glibc: int
) -> s3_assets.Asset:
    """The zipped wheelhouse the nodes install from (a CDK S3 asset)."""
    bundler = NodeBundling(
        project_root=project_root, python_version=python_version, glibc_minor=glibc
    )
    return s3_assets.Asset(
        scope,
        construct_id,
        path=str(project_root),
        bundling=_bundling(bundler, "node", python_version, glibc),
        asset_hash_type=cdk.AssetHashType.OUTPUT,
    )
