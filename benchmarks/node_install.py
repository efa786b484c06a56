"""The node's install, pip against uv, from the same offline wheelhouse (issue 12 §3).

Every node installs the wheelhouse before its agent can run, and the heartbeat clock is
already ticking (docs/architecture.md, "Node start"), so the faster installer is the one the
user data uses. This builds the node package as ``cdk deploy`` does (``NodeBundling``, for this
machine's Python and glibc, so it can be installed here), then installs it ``--repeat`` times
each way into a fresh venv, alternating the order, caches off:

* ``pip`` what a user would write: ``python -m venv`` + ``pip install --no-index
  --find-links wheelhouse`` (the node's user data until this measurement);
* ``uv``  ``bundling.node_install_commands``, exactly what the user data runs now (unpack uv
  from its wheel, ``uv venv``, ``uv pip install --offline --no-index``).

Prints the median seconds of each and the ratio pip / uv (same machine, same command).

    .venv/bin/python benchmarks/node_install.py --repeat 3
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "infra"))

from lighthpc_infra.bundling import (
    NODE_REQUIREMENT,
    WHEELHOUSE,
    NodeBundling,
    node_install_commands,
)

from benchmarks._common import MACHINE, emit, log, repo_root, table

OFFLINE = {**os.environ, "PIP_FIND_LINKS": "", "PIP_CONFIG_FILE": os.devnull}


def build_package(target: Path) -> Path:
    """The node package for this machine (the deploy builds it for the node's AL2023)."""
    glibc = int(platform.libc_ver()[1].split(".")[1])
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    NodeBundling(project_root=repo_root(), python_version=version, glibc_minor=glibc).try_bundle(
        str(target)
    )
    return target


def timed(commands: Sequence[Sequence[str]]) -> float:
    started = time.perf_counter()
    for argv in commands:
        subprocess.run(list(argv), check=True, env=OFFLINE, capture_output=True)
    return time.perf_counter() - started


def pip_commands(package: Path, venv: Path) -> list[list[str]]:
    return [
        [sys.executable, "-m", "venv", str(venv)],
        [
            f"{venv}/bin/pip",
            "install",
            "--quiet",
            "--no-index",
            "--no-cache-dir",
            "--disable-pip-version-check",
            "--find-links",
            str(package / WHEELHOUSE),
            NODE_REQUIREMENT,
        ],
    ]


def uv_commands(package: Path, venv: Path) -> list[list[str]]:
    return node_install_commands(package_dir=str(package), venv=str(venv), python=sys.executable)


def works(venv: Path) -> bool:
    probe = "import node_agent.main, workflow.workloads.molsim as m; m.require_rdkit()"
    return subprocess.run([f"{venv}/bin/python", "-I", "-c", probe], check=False).returncode == 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--repeat", type=int, default=3, help="installs per installer")
    ap.add_argument("--package", type=Path, help="a node package built before (skips the build)")
    args = ap.parse_args(argv)
    seconds: dict[str, list[float]] = {"pip": [], "uv": []}
    with tempfile.TemporaryDirectory(prefix="lighthpc-install-") as tmp:
        package = args.package or build_package(Path(tmp) / "package")
        wheels = len(list((package / WHEELHOUSE).glob("*.whl")))
        log(f"node package: {wheels} wheels in {package / WHEELHOUSE}")
        for i in range(args.repeat):
            order = ("pip", "uv") if i % 2 == 0 else ("uv", "pip")
            for name in order:
                venv = Path(tmp) / f"venv-{name}-{i}"
                make = pip_commands if name == "pip" else uv_commands
                took = timed(make(package, venv))
                if not works(venv):
                    raise SystemExit(f"{name}: the installed node does not import")
                seconds[name].append(took)
                log(f"{name} #{i + 1}: {took:.1f} s")
    pip_s, uv_s = (statistics.median(seconds[k]) for k in ("pip", "uv"))
    rows = [
        ("wheels in the wheelhouse", wheels),
        ("pip: venv + install, median s", round(pip_s, 2)),
        ("uv: unpack + venv + install, median s", round(uv_s, 2)),
        ("pip / uv", round(pip_s / uv_s, 2)),
        ("the user data uses", "uv" if uv_s < pip_s else "pip (uv is slower here: revisit)"),
    ]
    figures = {
        "benchmark": "node_install",
        "machine": MACHINE,
        "repeat": args.repeat,
        "seconds": seconds,
        "pipOverUv": round(pip_s / uv_s, 3),
    }
    emit([table("node install from the offline wheelhouse", rows)], figures)
    return 0


if __name__ == "__main__":
    sys.exit(main())
