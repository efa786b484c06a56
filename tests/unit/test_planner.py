"""Shard planner and work-unit packer: exact cover, balance, node bound."""

from __future__ import annotations

from itertools import pairwise

import pytest
from hypothesis import given
from hypothesis import strategies as st

from workflow.errors import MissionInvalidInput
from workflow.planner import pack_units, plan_shards
from workflow.planning import map_concurrency


@st.composite
def items_and_shards(draw: st.DrawFn) -> tuple[int, int]:
    items = draw(st.integers(min_value=1, max_value=50_000))
    shards = draw(st.integers(min_value=1, max_value=min(items, 2_000)))
    return items, shards


@given(items_and_shards())
def test_shards_cover_the_index_space_exactly_once(case: tuple[int, int]) -> None:
    items, shards = case
    ranges = plan_shards(items, shards)
    assert len(ranges) == shards
    assert ranges[0].start == 0
    assert ranges[-1].end == items
    for before, after in pairwise(ranges):
        assert before.end == after.start
    sizes = [r.size for r in ranges]
    assert min(sizes) >= 1
    assert max(sizes) - min(sizes) <= 1
    assert len({r.shard_id for r in ranges}) == shards
    assert [r.shard_id for r in ranges] == sorted(r.shard_id for r in ranges)


@given(items_and_shards(), st.integers(min_value=1, max_value=1_000))
def test_units_never_exceed_max_nodes_and_hold_every_shard_once(
    case: tuple[int, int], max_nodes: int
) -> None:
    items, shards = case
    ranges = plan_shards(items, shards)
    units = pack_units(ranges, max_nodes)
    assert len(units) == min(max_nodes, shards)
    flat = [s for u in units for s in u.shards]
    assert flat == ranges
    counts = [len(u.shards) for u in units]
    assert max(counts) - min(counts) <= 1
    assert all(u.manifest_item() == {"unitId": u.unit_id, "shards": len(u.shards)} for u in units)


@pytest.mark.parametrize(
    ("items", "shards", "needle"),
    [(0, 1, "0 items"), (10, 0, "shards must be"), (3, 4, "exceed")],
)
def test_impossible_plans_are_named_errors(items: int, shards: int, needle: str) -> None:
    with pytest.raises(MissionInvalidInput, match=needle):
        plan_shards(items, shards)


@given(
    max_nodes=st.integers(1, 5_000),
    units=st.integers(0, 5_000),
    cap=st.integers(0, 5_000),
)
def test_map_concurrency_respects_every_bound_and_no_more(
    max_nodes: int, units: int, cap: int
) -> None:
    got = map_concurrency(max_nodes, units, cap)
    bounds = [max_nodes, max(units, 1)] + ([cap] if cap else [])
    assert 1 <= got <= min(bounds)
    assert got in bounds  # as many as the tightest bound allows, never fewer
