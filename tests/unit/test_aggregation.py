"""Mission outcome rules and the usage model behind the modelled cost."""

from __future__ import annotations

import json

from hypothesis import given
from hypothesis import strategies as st

from workflow.aggregation import (
    MAX_LISTED_FAILURES,
    MAX_LISTED_ITEMS,
    MissionSummary,
    _instance_keys,
    decide_status,
    invalid_sample_fields,
    mission_fields,
    mission_usage,
)
from workflow.cost import MIN_BILLED_SECONDS, PriceList, estimate
from workflow.instance_types import CATALOG
from workflow.records import MissionRecord, ShardRecord
from workflow.request import SampleRef
from workflow.states import MissionStatus, ShardStatus


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


def test_each_node_is_billed_ec2s_minute_at_least_and_an_older_per_type_sum_as_it_is() -> None:
    keys = _instance_keys(
        {
            "c6i.large|spot|i-1": 3.5,  # a node that ran 3.5 s: EC2 bills a minute
            "c6i.large|spot|i-2": 90.0,
            "c6i.large|on-demand": 5.0,  # a per-type sum (older items): not a single node
        }
    )
    assert keys == {
        ("c6i.large", "spot"): MIN_BILLED_SECONDS + 90.0,
        ("c6i.large", "on-demand"): 5.0,
    }


DYNAMODB_ITEM_LIMIT = 400 * 1024


@given(
    failed=st.integers(min_value=0, max_value=100_000),
    error_chars=st.integers(min_value=0, max_value=20_000),
    invalid=st.integers(min_value=0, max_value=200_000),
)
def test_no_mission_item_can_pass_400_kb_and_it_says_what_it_left_out(
    failed: int, error_chars: int, invalid: int
) -> None:
    shards = [
        ShardRecord(
            "m", f"s{i:06d}", "u0000", i, i, i + 1, ShardStatus.FAILED, 1, error="e" * error_chars
        )
        for i in range(min(failed, MAX_LISTED_FAILURES + 3))
    ]
    summary = MissionSummary(
        mission_id="m",
        status=MissionStatus.FAILED,
        shards=failed + 1,
        done=1,
        failed=failed,
        failed_shards=tuple(s.shard_id for s in shards[:MAX_LISTED_FAILURES]),
        retries=0,
        interruptions=0,
        result_uri="s3://r/missions/m/result.csv",
        duration_seconds=1.0,
        cost=estimate(mission_usage(0, [])),
        cause="c" * 1000,
        reduce_summary={"queries": 3, "invalidQueryLines": list(range(invalid))},
    )
    record = MissionRecord(
        "m", MissionStatus.RUNNING, SampleRef("b", "k"), invalid_sample_count=invalid
    )
    item = {**record.to_item(), **mission_fields(summary, shards)}
    assert len(json.dumps(item).encode()) < DYNAMODB_ITEM_LIMIT
    assert item["failedShardsOmitted"] == max(0, len(shards) - MAX_LISTED_FAILURES)
    listed = item["reduce"]["invalidQueryLines"]
    assert listed == list(range(min(invalid, MAX_LISTED_ITEMS)))
    assert item["reduce"]["invalidQueryLinesOmitted"] == invalid - len(listed)
    omitted = failed - len(summary.failed_shards)
    assert ("more)" in summary.message()) == (omitted > 0)


def test_the_invalid_sample_lines_the_nodes_found_are_recorded_on_the_mission() -> None:
    """molsim's plan parses no sample in full: RsltProc records what the nodes skipped, so
    ``lighthpc status`` and the local summary still list the invalid sample lines."""
    summary = {"queries": 3, "invalidQueryLines": [3, 8]}
    assert invalid_sample_fields(summary) == {
        "invalidSampleLines": [3, 8],
        "invalidSampleCount": 2,
    }
    many = invalid_sample_fields({"invalidQueryLines": list(range(1, 1501))})
    assert many["invalidSampleCount"] == 1500
    assert many["invalidSampleLines"] == list(range(1, 1001))
    assert invalid_sample_fields({"items": 3}) == {}  # noop: the plan's record stands
