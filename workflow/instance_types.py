"""The EC2 instance types a mission may ask for, with the facts the scheduler uses.

A closed catalog on purpose: a typo in ``instanceTypes`` must be rejected before anything is
launched, and node slots come from ``vcpus``. Extend it freely.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class InstanceType:
    name: str
    vcpus: int
    memory_gib: float


_CATALOG = [
    InstanceType("c5.large", 2, 4),
    InstanceType("c5.xlarge", 4, 8),
    InstanceType("c5.2xlarge", 8, 16),
    InstanceType("c6i.large", 2, 4),
    InstanceType("c6i.xlarge", 4, 8),
    InstanceType("c6i.2xlarge", 8, 16),
    InstanceType("c6i.4xlarge", 16, 32),
    InstanceType("c6a.large", 2, 4),
    InstanceType("c6a.xlarge", 4, 8),
    InstanceType("c7i.large", 2, 4),
    InstanceType("c7i.xlarge", 4, 8),
    InstanceType("c7i.2xlarge", 8, 16),
    InstanceType("m5.large", 2, 8),
    InstanceType("m6i.large", 2, 8),
    InstanceType("m6i.xlarge", 4, 16),
    InstanceType("m6i.2xlarge", 8, 32),
    InstanceType("m7i.large", 2, 8),
    InstanceType("m7i.xlarge", 4, 16),
    InstanceType("r6i.large", 2, 16),
    InstanceType("r6i.xlarge", 4, 32),
]

CATALOG: dict[str, InstanceType] = {t.name: t for t in _CATALOG}


def lookup(name: str) -> InstanceType | None:
    return CATALOG.get(name)
