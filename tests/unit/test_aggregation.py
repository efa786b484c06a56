"""Mission outcome rules and the usage model behind the modelled cost."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from workflow.aggregation import _instance_keys, decide_status
from workflow.cost import PriceList, estimate
from workflow.instance_types import CATALOG
from workflow.states import MissionStatus


@given(
    st.integers(min_value=0, max_value=10_000),
    st.integers(min_value=0, max_value=10_000),
    st.floats(min_value=0, max_value=100),
)
def test_status_follows_the_tolerance(done: int, failed: int, tolerance: float) -> None:
    status = decide_status(done, failed, tolerance)
    if done == 0:
        assert status is MissionStatus.FAILED
    elif failed == 0:
        assert status is MissionStatus.SUCCEEDED
    elif failed * 100.0 <= tolerance * (done + failed):
        assert status is MissionStatus.PARTIAL
    else:
        assert status is MissionStatus.FAILED


@given(st.integers(min_value=1, max_value=1000), st.integers(min_value=1, max_value=1000))
def test_more_failures_never_improve_the_outcome(done: int, failed: int) -> None:
    rank = {MissionStatus.SUCCEEDED: 0, MissionStatus.PARTIAL: 1, MissionStatus.FAILED: 2}
    assert rank[decide_status(done, failed + 1, 10.0)] >= rank[decide_status(done, failed, 10.0)]


def test_every_catalog_type_can_be_priced_in_both_capacities() -> None:
    prices = PriceList()
    for name in CATALOG:
        assert prices.hourly(name, "on-demand") > prices.hourly(name, "spot") > 0


def test_reported_instance_seconds_are_priced_and_unknown_types_are_skipped() -> None:
    keys = _instance_keys(
        {"c6i.large|spot": 3600.0, "c6i.large|on-demand": 1800.0, "zz.top|spot": 9.0}
    )
    assert keys == {("c6i.large", "spot"): 3600.0, ("c6i.large", "on-demand"): 1800.0}
    from workflow.cost import Usage

    cost = estimate(Usage(instance_seconds=keys))
    expected = CATALOG["c6i.large"].on_demand_hourly * (PriceList().spot_fraction + 0.5)
    assert abs(cost.compute - expected) < 1e-9
