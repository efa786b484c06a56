"""Pluggable workloads, found by the ``lighthpc.workloads`` entry point group."""

from __future__ import annotations

from importlib import import_module
from importlib.metadata import entry_points

from workflow.errors import WorkloadNotFound
from workflow.workloads.base import Workload

ENTRY_POINT_GROUP = "lighthpc.workloads"

# Used when the distribution metadata is absent (e.g. a Lambda bundle without dist-info).
_BUILTIN = {
    "noop": "workflow.workloads.noop:NoopWorkload",
    "molsim": "workflow.workloads.molsim:MolsimWorkload",
    "command": "workflow.workloads.command:CommandWorkload",
}


def available_workloads() -> list[str]:
    names = {ep.name for ep in entry_points(group=ENTRY_POINT_GROUP)}
    return sorted(names | set(_BUILTIN))


def load_workload(name: str) -> Workload:
    """Instantiate the workload registered under ``name``."""
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        if ep.name == name:
            return ep.load()()  # type: ignore[no-any-return]
    target = _BUILTIN.get(name)
    if target is None:
        raise WorkloadNotFound(
            f"unknown workload {name!r}; available: {', '.join(available_workloads())}"
        )
    module, _, attr = target.partition(":")
    return getattr(import_module(module), attr)()  # type: ignore[no-any-return]
