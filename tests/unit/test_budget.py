"""The budget (maxCostUsd): the plan's least cost, the spend of a running mission, and the
decision that refuses a launch. Pure: records in memory, the cost model's own prices."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from workflow.aggregation import price_mission
from workflow.budget import (
    check_launch,
    check_plan,
    over_budget,
    plan_floor,
    spend_of,
    unbilled_seconds,
)
from workflow.cost import MIN_BILLED_SECONDS, PriceList
from workflow.errors import MissionInvalidInput, MissionOverBudget
from workflow.params import MissionParams, parse_params
from workflow.records import MissionRecord, UnitRecord, billing_key
from workflow.request import SampleRef
from workflow.states import Capacity, MissionStatus, UnitStatus

PRICES = PriceList()
TYPE = "c6i.large"
SPOT_PER_SECOND = PRICES.hourly(TYPE, Capacity.SPOT) / 3600.0


def mission(cap: float | None, billed: dict[str, float] | None = None, shards: int = 4) -> Any:
    params: dict[str, Any] = {"workload": "noop", "instanceTypes": [TYPE]}
    if cap is not None:
        params["maxCostUsd"] = cap
    return MissionRecord(
        mission_id="m-b",
        status=MissionStatus.RUNNING,
        sample=SampleRef("src", "incoming/s.txt"),
        params=params,
        shards=shards,
        units=2,
        instance_seconds=billed or {},
    )


def unit(
    n: int,
    status: UnitStatus = UnitStatus.RUNNING,
    *,
    launched_at: float = 1000.0,
    finished_at: float | None = None,
    instance: str | None = None,
) -> UnitRecord:
    return UnitRecord(
        "m-b",
        f"u{n:04d}",
        n,
        n,
        status,
        attempt=1,
        launches=1,
        instance_id=instance or f"i-{n}",
        capacity="spot",
        instance_type=TYPE,
        launched_at=launched_at,
        finished_at=finished_at,
    )


# ---- params -------------------------------------------------------------------------------


@pytest.mark.parametrize("bad", [True, 0, -1, 0.0, "1", float("nan"), float("inf"), 10**7])
def test_max_cost_usd_is_a_positive_number(bad: Any) -> None:
    with pytest.raises(MissionInvalidInput, match=r"params\.maxCostUsd:"):
        parse_params({"maxCostUsd": bad})


def test_max_cost_usd_comes_from_a_profile_or_the_mission() -> None:
    from decimal import Decimal

    profile = {"maxCostUsd": Decimal("2.5")}  # as DynamoDB gives a profile back
    assert parse_params(profile).max_cost_usd == 2.5
    assert parse_params(profile, {"maxCostUsd": 0.01}).max_cost_usd == 0.01
    assert parse_params().max_cost_usd is None


# ---- planning -----------------------------------------------------------------------------


def test_a_plan_whose_least_cost_passes_the_cap_is_refused_with_both_figures() -> None:
    params = MissionParams.model_validate({"instanceTypes": [TYPE], "maxCostUsd": 0.001})
    floor = plan_floor(params, 400, 200, Capacity.SPOT)
    assert floor > 0.001
    with pytest.raises(MissionOverBudget) as caught:
        check_plan(params, 400, 200, Capacity.SPOT)
    assert f"${floor:.6f}" in str(caught.value) and "maxCostUsd $0.001" in str(caught.value)
    check_plan(params.model_copy(update={"max_cost_usd": floor}), 400, 200, Capacity.SPOT)


def test_the_plan_floor_bills_each_node_a_minute_on_the_cheapest_allowed_type() -> None:
    two = MissionParams.model_validate({"instanceTypes": [TYPE, "m6i.large"]})
    one = MissionParams.model_validate({"instanceTypes": [TYPE]})
    extra_unit = plan_floor(one, 8, 3, Capacity.SPOT) - plan_floor(one, 8, 2, Capacity.SPOT)
    assert extra_unit > MIN_BILLED_SECONDS * SPOT_PER_SECOND
    cheapest = min(PRICES.hourly(t, Capacity.SPOT) for t in two.instance_types)
    assert plan_floor(two, 8, 2, Capacity.SPOT) <= plan_floor(one, 8, 2, Capacity.SPOT)
    assert cheapest <= PRICES.hourly(TYPE, Capacity.SPOT)
    assert plan_floor(one, 8, 2, Capacity.ON_DEMAND) > plan_floor(one, 8, 2, Capacity.SPOT)


def test_no_cap_never_refuses_a_plan() -> None:
    check_plan(MissionParams(), 100_000, 1000, Capacity.ON_DEMAND)


# ---- while it runs ------------------------------------------------------------------------


def test_a_running_node_counts_from_its_launch_until_it_bills() -> None:
    m = mission(cap=1.0)
    running = [unit(0, launched_at=1000.0)]
    pending = unbilled_seconds(m.instance_seconds, running, now=1000.0 + 7200)
    assert pending == {(TYPE, Capacity.SPOT): 7200.0}
    billed = mission(cap=1.0, billed={billing_key(TYPE, "spot", "i-0"): 7300.0})
    assert unbilled_seconds(billed.instance_seconds, running, now=1000.0 + 7200) == {}


def test_an_ended_unbilled_node_counts_until_its_end_and_a_minute_at_least() -> None:
    done = unit(0, UnitStatus.SUCCEEDED, launched_at=1000.0, finished_at=1600.0)
    lost = unit(1, UnitStatus.LOST, launched_at=1000.0)
    pending = unbilled_seconds({}, [done, lost], now=99_999.0)
    assert pending == {(TYPE, Capacity.SPOT): 600.0 + MIN_BILLED_SECONDS}


def test_the_spend_is_the_priced_records_plus_the_unbilled_nodes() -> None:
    billed = {billing_key(TYPE, "spot", "i-9"): 3600.0}
    m = mission(cap=1.0, billed=billed)
    units = [unit(0, UnitStatus.SUCCEEDED, finished_at=1100.0), unit(1, launched_at=2000.0)]
    spend = spend_of(m, units, now=2000.0 + 1800)
    recorded = price_mission(m, [], units).total  # the same model lighthpc cost shows
    # price_mission was given no shard records: the spend models the plan's shard count.
    assert spend.recorded >= recorded
    assert spend.unbilled == pytest.approx((100.0 + 1800.0) * SPOT_PER_SECOND)  # u0: 1000-1100
    assert spend.total == pytest.approx(spend.recorded + spend.unbilled)


def test_a_launch_is_refused_once_the_spend_reaches_the_cap() -> None:
    billed = {billing_key(TYPE, "spot", "i-0"): 3600.0}
    units = [unit(0, UnitStatus.SUCCEEDED, finished_at=1100.0)]
    spend = spend_of(mission(cap=1.0, billed=billed), units, now=5000.0).total
    with pytest.raises(MissionOverBudget, match=r"has reached maxCostUsd"):
        check_launch(mission(cap=spend, billed=billed), units, now=5000.0)
    assert check_launch(mission(cap=spend * 1.01, billed=billed), units, 5000.0).total == spend
    assert check_launch(mission(cap=None, billed=billed), units, 5000.0).total == spend


@given(
    spend=st.floats(min_value=0, max_value=1e6, allow_nan=False),
    cap=st.one_of(st.none(), st.floats(min_value=1e-9, max_value=1e6, allow_nan=False)),
    more=st.floats(min_value=0, max_value=1e6, allow_nan=False),
)
def test_the_decision_never_refuses_without_a_cap_and_stays_refused_as_spend_grows(
    spend: float, cap: float | None, more: float
) -> None:
    decided = over_budget(spend, cap)
    if cap is None:
        assert not decided
    else:
        assert decided == (spend >= cap)
        assert not decided or over_budget(spend + more, cap)  # spend only grows


@given(
    launched=st.floats(min_value=0, max_value=1e6, allow_nan=False),
    later=st.lists(st.floats(min_value=0, max_value=1e5, allow_nan=False), min_size=2),
    statuses=st.lists(st.sampled_from(list(UnitStatus)), min_size=1, max_size=5),
    billed=st.sets(st.integers(0, 4)),
)
def test_the_spend_never_falls_as_time_passes_and_a_billed_node_is_not_counted_twice(
    launched: float,
    later: list[float],
    statuses: list[UnitStatus],
    billed: set[int],
) -> None:
    units = [
        unit(n, s, launched_at=launched, finished_at=launched + 30.0)
        for n, s in enumerate(statuses)
    ]
    bills = {billing_key(TYPE, "spot", f"i-{n}"): 100.0 for n in billed if n < len(units)}
    m = mission(cap=None, billed=bills)
    totals = [spend_of(m, units, launched + dt).total for dt in sorted(later)]
    assert totals == sorted(totals)
    pending = unbilled_seconds(bills, units, launched + max(later))
    counted = sum(pending.values()) / MIN_BILLED_SECONDS
    assert counted >= len(units) - len(bills) - 1e-9  # each unbilled node: a minute at least
    every_node_billed = {billing_key(TYPE, "spot", f"i-{n}"): 1.0 for n in range(len(units))}
    assert unbilled_seconds(every_node_billed, units, launched + max(later)) == {}
