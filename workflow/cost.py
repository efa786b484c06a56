"""What a mission costs at public list prices: orchestration (Step Functions, Lambda,
DynamoDB) versus compute (EC2 instance-hours by capacity type).

Every price is a parameter: ``PriceList`` defaults are us-east-1 list prices, 2026; override
freely (another region, a negotiated rate, a measured Spot price). Sums use ``math.fsum`` in
a fixed order, so more usage never costs less, not even by a rounding error.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from workflow.errors import LightHpcError
from workflow.instance_types import CATALOG
from workflow.states import Capacity

CAPACITIES: tuple[Capacity, ...] = tuple(Capacity)
InstanceKey = tuple[str, Capacity]

SECONDS_PER_HOUR = 3600.0
MILLION = 1_000_000.0
# EC2 bills Linux instances per second with a 60-second minimum per start: a node that ran
# 3 s (a local one, or one whose unit was already done) is billed a minute.
MIN_BILLED_SECONDS = 60.0


def billed_seconds(ran_seconds: float) -> float:
    """What EC2 bills for one instance start that ran ``ran_seconds``."""
    return max(ran_seconds, MIN_BILLED_SECONDS)


# On-Demand Linux $/hour, us-east-1 list prices, 2026: one table, in the instance catalog.
DEFAULT_ON_DEMAND_HOURLY: Mapping[str, float] = MappingProxyType(
    {name: t.on_demand_hourly for name, t in CATALOG.items()}
)


class UnknownInstanceType(LightHpcError):
    """The price list has no price for an instance type the usage mentions."""

    error_name = "Cost.UnknownInstanceType"


def _frozen(prices: Mapping[str, float]) -> Mapping[str, float]:
    return MappingProxyType(dict(prices))


@dataclass(frozen=True)
class PriceList:
    """Unit prices in USD (defaults: us-east-1 list prices, 2026; override freely).

    Spot is charged at ``spot_hourly[type]`` when given (e.g. a measured price), otherwise at
    ``spot_fraction`` of the On-Demand price.
    """

    sfn_per_1k_transitions: float = 0.025
    lambda_per_gb_second: float = 0.0000166667
    lambda_per_million_requests: float = 0.20
    ddb_per_million_writes: float = 0.625
    ddb_per_million_reads: float = 0.125
    on_demand_hourly: Mapping[str, float] = field(default_factory=lambda: DEFAULT_ON_DEMAND_HOURLY)
    spot_fraction: float = 0.35
    spot_hourly: Mapping[str, float] = field(default_factory=lambda: MappingProxyType({}))

    def __post_init__(self) -> None:
        object.__setattr__(self, "on_demand_hourly", _frozen(self.on_demand_hourly))
        object.__setattr__(self, "spot_hourly", _frozen(self.spot_hourly))

    def hourly(self, instance_type: str, capacity: Capacity) -> float:
        """$/hour of one instance; ``UnknownInstanceType`` when the list has no price."""
        if capacity not in CAPACITIES:
            raise ValueError(f"capacity must be one of {CAPACITIES}, got {capacity!r}")
        if capacity == Capacity.SPOT and instance_type in self.spot_hourly:
            return self.spot_hourly[instance_type]
        try:
            on_demand = self.on_demand_hourly[instance_type]
        except KeyError:
            known = ", ".join(sorted({*self.on_demand_hourly, *self.spot_hourly}))
            raise UnknownInstanceType(
                f"no {capacity} price for instance type {instance_type!r}; "
                f"known: {known or 'none'} (pass a PriceList with its price)"
            ) from None
        return on_demand * self.spot_fraction if capacity == Capacity.SPOT else on_demand


@dataclass(frozen=True)
class Usage:
    """Measured (or planned) consumption of one mission.

    ``ddb_writes``/``ddb_reads`` are request units; ``instance_seconds`` maps
    (instance type, capacity) to billed instance-seconds.
    """

    state_transitions: int = 0
    lambda_invocations: int = 0
    lambda_gb_seconds: float = 0.0
    ddb_writes: float = 0.0
    ddb_reads: float = 0.0
    instance_seconds: Mapping[InstanceKey, float] = field(
        default_factory=lambda: MappingProxyType({})
    )

    def __post_init__(self) -> None:
        object.__setattr__(self, "instance_seconds", MappingProxyType(dict(self.instance_seconds)))
        scalars = (
            self.state_transitions,
            self.lambda_invocations,
            self.lambda_gb_seconds,
            self.ddb_writes,
            self.ddb_reads,
        )
        if any(value < 0 for value in (*scalars, *self.instance_seconds.values())):
            raise ValueError(f"usage cannot be negative: {self}")


@dataclass(frozen=True)
class CostBreakdown:
    """USD per service, grouped as orchestration versus compute; ``instance_seconds`` are
    the billed seconds behind ``instances`` (a bill shows the quantity with the price)."""

    step_functions: float
    lambda_: float
    dynamodb: float
    instances: Mapping[InstanceKey, float]
    instance_seconds: Mapping[InstanceKey, float] = field(
        default_factory=lambda: MappingProxyType({})
    )

    @property
    def orchestration(self) -> float:
        return math.fsum((self.step_functions, self.lambda_, self.dynamodb))

    @property
    def compute(self) -> float:
        return math.fsum(self.instances.values())

    @property
    def total(self) -> float:
        return math.fsum(
            (self.step_functions, self.lambda_, self.dynamodb, *self.instances.values())
        )

    def per_shard(self, shards: int) -> float:
        """Average total cost of one shard of a mission with ``shards`` shards."""
        if shards < 1:
            raise ValueError(f"shards must be >= 1, got {shards}")
        return self.total / shards


def estimate(usage: Usage, prices: PriceList | None = None) -> CostBreakdown:
    """Price ``usage``; raises ``UnknownInstanceType`` for an instance type without a price."""
    p = prices if prices is not None else PriceList()
    lambda_cost = math.fsum(
        (
            usage.lambda_gb_seconds * p.lambda_per_gb_second,
            usage.lambda_invocations / MILLION * p.lambda_per_million_requests,
        )
    )
    dynamodb = math.fsum(
        (
            usage.ddb_writes / MILLION * p.ddb_per_million_writes,
            usage.ddb_reads / MILLION * p.ddb_per_million_reads,
        )
    )
    instances = {
        key: seconds / SECONDS_PER_HOUR * p.hourly(*key)
        for key, seconds in sorted(usage.instance_seconds.items())
    }
    return CostBreakdown(
        step_functions=usage.state_transitions / 1000.0 * p.sfn_per_1k_transitions,
        lambda_=lambda_cost,
        dynamodb=dynamodb,
        instances=MappingProxyType(instances),
        instance_seconds=MappingProxyType({key: usage.instance_seconds[key] for key in instances}),
    )
