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
    on_demand_hourly: (
        float  # USD, Linux, us-east-1 list price (2026); a parameter of the cost model
    )


_CATALOG = [
    InstanceType("c5.large", 2, 4, 0.085),
    InstanceType("c5.xlarge", 4, 8, 0.17),
    InstanceType("c5.2xlarge", 8, 16, 0.34),
    InstanceType("c6i.large", 2, 4, 0.085),
    InstanceType("c6i.xlarge", 4, 8, 0.17),
    InstanceType("c6i.2xlarge", 8, 16, 0.34),
    InstanceType("c6i.4xlarge", 16, 32, 0.68),
    InstanceType("c6a.large", 2, 4, 0.0765),
    InstanceType("c6a.xlarge", 4, 8, 0.153),
    InstanceType("c7i.large", 2, 4, 0.08925),
    InstanceType("c7i.xlarge", 4, 8, 0.1785),
    InstanceType("c7i.2xlarge", 8, 16, 0.357),
    InstanceType("m5.large", 2, 8, 0.096),
    InstanceType("m6i.large", 2, 8, 0.096),
    InstanceType("m6i.xlarge", 4, 16, 0.192),
    InstanceType("m6i.2xlarge", 8, 32, 0.384),
    InstanceType("m7i.large", 2, 8, 0.1008),
    InstanceType("m7i.xlarge", 4, 16, 0.2016),
    InstanceType("r6i.large", 2, 16, 0.126),
    InstanceType("r6i.xlarge", 4, 32, 0.252),
]

CATALOG: dict[str, InstanceType] = {t.name: t for t in _CATALOG}


def lookup(name: str) -> InstanceType | None:
    return CATALOG.get(name)
