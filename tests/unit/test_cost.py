"""Cost model: arithmetic from the price parameters, unknown types, monotonicity."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from workflow.cost import (
    DEFAULT_ON_DEMAND_HOURLY,
    CostBreakdown,
    PriceList,
    UnknownInstanceType,
    Usage,
    estimate,
)
from workflow.errors import LightHpcError

# Round prices make the units visible: any factor-of-1000 slip changes the answer.
ROUND = PriceList(
    sfn_per_1k_transitions=1.0,
    lambda_per_gb_second=0.5,
    lambda_per_million_requests=2.0,
    ddb_per_million_writes=4.0,
    ddb_per_million_reads=8.0,
    on_demand_hourly={"t.small": 10.0, "t.big": 40.0},
    spot_fraction=0.25,
)


def test_each_service_is_priced_in_its_own_unit() -> None:
    usage = Usage(
        state_transitions=3000,
        lambda_invocations=2_000_000,
        lambda_gb_seconds=6.0,
        ddb_writes=500_000,
        ddb_reads=250_000,
        instance_seconds={("t.small", "on-demand"): 1800, ("t.big", "spot"): 7200},
    )
    cost = estimate(usage, ROUND)
    assert cost.step_functions == pytest.approx(3.0)  # 3 x 1,000 transitions at $1
    assert cost.lambda_ == pytest.approx(6 * 0.5 + 2 * 2.0)
    assert cost.dynamodb == pytest.approx(0.5 * 4.0 + 0.25 * 8.0)
    assert cost.instances == {("t.small", "on-demand"): 5.0, ("t.big", "spot"): 20.0}
    assert cost.orchestration == pytest.approx(3.0 + 7.0 + 4.0)
    assert cost.compute == pytest.approx(25.0)
    assert cost.total == pytest.approx(39.0)
    assert cost.per_shard(13) == pytest.approx(3.0)


def test_default_prices_follow_the_parameters() -> None:
    p = PriceList()
    usage = Usage(
        state_transitions=12_345,
        lambda_invocations=4_321,
        lambda_gb_seconds=987.5,
        ddb_writes=20_000,
        ddb_reads=55_000,
        instance_seconds={("c6i.large", "spot"): 5400, ("m6i.large", "on-demand"): 900},
    )
    cost = estimate(usage)
    sfn = 12_345 / 1000 * p.sfn_per_1k_transitions
    lam = 987.5 * p.lambda_per_gb_second + 4_321 / 1e6 * p.lambda_per_million_requests
    ddb = 20_000 / 1e6 * p.ddb_per_million_writes + 55_000 / 1e6 * p.ddb_per_million_reads
    spot = 1.5 * p.on_demand_hourly["c6i.large"] * p.spot_fraction
    on_demand = 0.25 * p.on_demand_hourly["m6i.large"]
    assert (cost.step_functions, cost.lambda_, cost.dynamodb) == pytest.approx((sfn, lam, ddb))
    assert cost.compute == pytest.approx(spot + on_demand)
    assert cost.total == pytest.approx(sfn + lam + ddb + spot + on_demand)
    assert p.sfn_per_1k_transitions == 0.025
    assert {"c6i.large", "c6i.xlarge", "c7i.large", "m6i.large", "c5.large"} <= set(
        p.on_demand_hourly
    )


def test_a_measured_spot_price_overrides_the_fraction() -> None:
    prices = PriceList(on_demand_hourly={"t.small": 10.0}, spot_hourly={"t.small": 1.5})
    assert prices.hourly("t.small", "spot") == 1.5
    assert prices.hourly("t.small", "on-demand") == 10.0
    cost = estimate(Usage(instance_seconds={("t.small", "spot"): 7200}), prices)
    assert cost.compute == pytest.approx(3.0)


def test_unknown_instance_type_is_a_named_error() -> None:
    usage = Usage(instance_seconds={("p5.48xlarge", "spot"): 60})
    with pytest.raises(UnknownInstanceType, match=r"p5\.48xlarge") as info:
        estimate(usage)
    assert isinstance(info.value, LightHpcError)
    assert type(info.value).__name__ == "Cost.UnknownInstanceType"
    assert "c6i.large" in str(info.value)  # says which types it does know


def test_unknown_capacity_and_negative_usage_are_rejected() -> None:
    with pytest.raises(ValueError, match="capacity"):
        PriceList().hourly("c6i.large", "reserved")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="negative"):
        Usage(state_transitions=-1)
    with pytest.raises(ValueError, match="negative"):
        Usage(instance_seconds={("c6i.large", "spot"): -5})
    with pytest.raises(ValueError, match="shards"):
        estimate(Usage()).per_shard(0)


def test_price_tables_are_copied_and_read_only() -> None:
    table = {"t.small": 1.0}
    prices = PriceList(on_demand_hourly=table)
    table["t.small"] = 99.0
    assert prices.hourly("t.small", "on-demand") == 1.0
    with pytest.raises(TypeError):
        prices.on_demand_hourly["t.small"] = 5.0  # type: ignore[index]
    assert DEFAULT_ON_DEMAND_HOURLY["c6i.large"] == PriceList().hourly("c6i.large", "on-demand")


def test_no_usage_costs_nothing() -> None:
    assert estimate(Usage()) == CostBreakdown(0.0, 0.0, 0.0, {})
    assert estimate(Usage()).total == 0.0


_KEYS = st.sampled_from(
    [(t, c) for t in sorted(DEFAULT_ON_DEMAND_HOURLY) for c in ("spot", "on-demand")]
)
_AMOUNT = st.floats(0, 1e9, allow_nan=False)
_COUNT = st.integers(0, 10**12)


@st.composite
def _usage(draw: st.DrawFn) -> Usage:
    return Usage(
        state_transitions=draw(_COUNT),
        lambda_invocations=draw(_COUNT),
        lambda_gb_seconds=draw(_AMOUNT),
        ddb_writes=draw(_AMOUNT),
        ddb_reads=draw(_AMOUNT),
        instance_seconds=draw(st.dictionaries(_KEYS, _AMOUNT, max_size=6)),
    )


def _plus(a: Usage, b: Usage) -> Usage:
    seconds = dict(a.instance_seconds)
    for key, value in b.instance_seconds.items():
        seconds[key] = seconds.get(key, 0.0) + value
    return Usage(
        state_transitions=a.state_transitions + b.state_transitions,
        lambda_invocations=a.lambda_invocations + b.lambda_invocations,
        lambda_gb_seconds=a.lambda_gb_seconds + b.lambda_gb_seconds,
        ddb_writes=a.ddb_writes + b.ddb_writes,
        ddb_reads=a.ddb_reads + b.ddb_reads,
        instance_seconds=seconds,
    )


@settings(max_examples=300, deadline=None)
@given(_usage(), _usage())
def test_more_usage_never_costs_less(base: Usage, extra: Usage) -> None:
    before, after = estimate(base), estimate(_plus(base, extra))
    assert after.orchestration >= before.orchestration
    assert after.compute >= before.compute
    assert after.total >= before.total
