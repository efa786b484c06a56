"""The timeline model (``workflow.timeline``): its rows and marks are the mission's records.

First a unit driven through the real attempt protocol on the fakes (the claim and the commit
stamp the times the bars are drawn from); then hypothesis over any records: a row per node
attempt, a bar per started shard on the row of the attempt that holds it, a mark per
interrupted attempt, per relaunch and per failed shard, and nothing outside the time span.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from hypothesis import given, settings
from hypothesis import strategies as st

from tests.fakes import FakeCloud, mission_record
from tests.unit.test_use_cases_on_fakes import start
from workflow.attempt import Commit, UnitAttempt, fail_open_shards
from workflow.cost import PriceList
from workflow.records import ShardRecord, UnitRecord, billing_key
from workflow.states import Capacity, MissionStatus, ShardStatus, UnitStatus
from workflow.timeline import MarkKind, Timeline, billed_nodes, build_timeline

UNIT = "u0000"
SPOT, ON_DEMAND = Capacity.SPOT.value, Capacity.ON_DEMAND.value


def _begin(cloud: FakeCloud, mission_id: str, number: int, capacity: str) -> UnitAttempt:
    attempt, _, _ = UnitAttempt.begin(
        cloud.store, mission_id, UNIT, number, task_token=f"t{number}", capacity=capacity
    )
    return attempt


def test_an_interrupted_unit_relaunched_on_demand_is_drawn_from_its_records() -> None:
    cloud = FakeCloud()
    mission_id = start(cloud, shards=3, maxNodes=1)
    store = cloud.store
    first = _begin(cloud, mission_id, 1, SPOT)
    assert first.claim_many(["s000000", "s000001", "s000002"], {"instanceId": "i-first"})
    assert first.commit_many([Commit("s000000", "r/0")]) == (["s000000"], False)
    for shard_id in ("s000001", "s000002"):
        assert first.interrupt_shard(shard_id, position=0)
    assert first.interrupt()
    second = _begin(cloud, mission_id, 2, ON_DEMAND)
    assert second.claim_many(["s000001", "s000002"], {"instanceId": "i-second"})
    assert second.commit("s000001", "r/1", {})
    assert second.fail_shard("s000002", "boom")
    store.bill_instance(mission_id, "i-first", "c7i.large", SPOT, 40.0)
    store.bill_instance(mission_id, "i-second", "c7i.large", ON_DEMAND, 20.0)

    shards = store.list_shards(mission_id)
    assert all(s.claimed_at is not None and s.finished_at is not None for s in shards)
    model = build_timeline(
        store.get_mission(mission_id), store.list_units(mission_id), shards, now=1e12
    )

    one, two = model.rows
    assert (one.unit_id, one.attempt, one.instance_id, one.capacity) == (
        UNIT,
        1,
        "i-first",
        Capacity.SPOT,
    )
    assert (two.attempt, two.instance_id, two.capacity) == (2, "i-second", Capacity.ON_DEMAND)
    assert [b.shard_id for b in one.bars] == ["s000000"]
    assert [(b.shard_id, b.status) for b in two.bars] == [
        ("s000001", ShardStatus.DONE),
        ("s000002", ShardStatus.FAILED),
    ]
    assert [m.kind for m in one.marks] == [MarkKind.INTERRUPTION]
    assert [(m.kind, m.shard_id) for m in two.marks] == [
        (MarkKind.RELAUNCH, None),
        (MarkKind.ON_DEMAND, None),
        (MarkKind.FAILED_SHARD, "s000002"),
    ]
    # The Spot notice came after attempt 1's last commit and before attempt 2 began.
    interruption = one.marks[0].at
    assert one.bars[0].end <= interruption <= two.marks[0].at == two.bars[0].start
    prices = PriceList()
    assert one.cost == 40.0 / 3600 * prices.hourly("c7i.large", Capacity.SPOT)
    assert two.cost == 20.0 / 3600 * prices.hourly("c7i.large", Capacity.ON_DEMAND)
    assert model.unplaced == ()


def test_an_attempt_whose_work_was_all_redone_is_a_row_without_bars() -> None:
    """A node killed before its first commit: the shards it claimed now name attempt 2."""
    cloud = FakeCloud()
    mission_id = start(cloud, shards=2, maxNodes=1)
    first = _begin(cloud, mission_id, 1, SPOT)
    assert first.claim_many(["s000000", "s000001"], {"instanceId": "i-killed"})
    second = _begin(cloud, mission_id, 2, SPOT)
    assert second.claim_many(["s000000", "s000001"], {"instanceId": "i-second"})
    assert second.commit_many([Commit("s000000", "a"), Commit("s000001", "b")])[0]
    store = cloud.store
    model = build_timeline(
        store.get_mission(mission_id),
        store.list_units(mission_id),
        store.list_shards(mission_id),
        now=1e12,
    )
    lost, kept = model.rows
    assert (lost.attempt, lost.kept, lost.bars, lost.instance_id) == (1, False, (), None)
    assert "no shard kept" in lost.label()
    assert kept.kept and len(kept.bars) == 2
    assert [m.kind for m in kept.marks] == [MarkKind.RELAUNCH]


def test_shards_failed_while_queued_ran_nowhere_in_their_attempt() -> None:
    """Attempt 1 claimed both shards and died; attempt 2 never claimed them before the unit
    failed: the items keep attempt 1's claim (time, instance), which is not attempt 2's."""
    cloud = FakeCloud()
    mission_id = start(cloud, shards=2, maxNodes=1)
    first = _begin(cloud, mission_id, 1, SPOT)
    assert first.claim_many(["s000000", "s000001"], {"instanceId": "i-killed"})
    _begin(cloud, mission_id, 2, SPOT)
    store = cloud.store
    assert fail_open_shards(store, store.get_unit(mission_id, UNIT), "Node.Lost") == 2
    shards = store.list_shards(mission_id)
    assert {(s.attempt, s.instance_id, s.status) for s in shards} == {
        (2, "i-killed", ShardStatus.FAILED)
    }
    model = build_timeline(
        store.get_mission(mission_id), store.list_units(mission_id), shards, now=1e12
    )
    one, two = model.rows
    assert one.bars == two.bars == () and one.instance_id is two.instance_id is None
    assert sorted(m.shard_id for _, m in model.marks(MarkKind.FAILED_SHARD)) == [
        "s000000",
        "s000001",
    ]
    assert {row.attempt for row, _ in model.marks(MarkKind.FAILED_SHARD)} == {2}


# ---- any records ------------------------------------------------------------------------

T0 = 1_700_000_000.0
times = st.floats(min_value=T0, max_value=T0 + 5000, allow_nan=False)


@st.composite
def unit_records(draw: st.DrawFn, index: int) -> tuple[UnitRecord, list[ShardRecord]]:
    unit_id = f"u{index:04d}"
    attempts = draw(st.integers(1, 4))
    interrupted = draw(st.sets(st.integers(1, attempts)))
    unit = UnitRecord(
        mission_id="m",
        unit_id=unit_id,
        shard_from=index * 10,
        shard_to=index * 10 + 9,
        status=draw(st.sampled_from(UnitStatus)),
        attempt=attempts,
        instance_id=draw(st.none() | st.just(f"i-{unit_id}-{attempts}")),
        capacity=draw(st.sampled_from([SPOT, ON_DEMAND, None])),
        interrupted_attempts=tuple(sorted(interrupted)),
        launches=attempts,
    )
    shards = []
    for n in range(draw(st.integers(0, 5))):
        attempt = draw(st.integers(1, attempts))
        claimed = draw(st.none() | times)
        finished = draw(st.none() | times)
        shards.append(
            ShardRecord(
                mission_id="m",
                shard_id=f"s{index * 10 + n:06d}",
                unit_id=unit_id,
                index=index * 10 + n,
                start=n,
                end=n + 1,
                status=draw(st.sampled_from(ShardStatus)),
                attempt=attempt,
                instance_id=draw(st.none() | st.just(f"i-{unit_id}-{attempt}")),
                queued_at=draw(st.none() | times),
                claimed_at=claimed,
                started_at=draw(st.none() | times),
                finished_at=finished,
                interrupted_at=draw(st.none() | times),
            )
        )
    return unit, shards


@st.composite
def missions(draw: st.DrawFn) -> tuple[list[UnitRecord], list[ShardRecord], dict[str, float]]:
    drawn = [draw(unit_records(i)) for i in range(draw(st.integers(1, 4)))]
    units = [u for u, _ in drawn]
    shards = [s for _, ss in drawn for s in ss]
    named = sorted({s.instance_id for s in shards if s.instance_id} | {"i-other"})
    billed = draw(st.lists(st.sampled_from(named), unique=True))
    capacity = draw(st.sampled_from([SPOT, ON_DEMAND]))
    seconds = {billing_key("c7i.large", capacity, i): 60.0 for i in billed}
    return units, shards, seconds


def _ran_in_its_attempt(shard: ShardRecord) -> bool:
    """A bar: a shard its attempt claimed after the requeue, or that it finished."""
    if shard.status in {ShardStatus.PENDING, ShardStatus.QUEUED}:
        return False
    if shard.status is ShardStatus.DONE and shard.started_at is not None:
        return True
    claimed, queued = shard.claimed_at, shard.queued_at
    return claimed is not None and (queued is None or claimed >= queued)


def _kinds(model: Timeline, kind: MarkKind) -> list[tuple[str, int, str | None]]:
    return sorted((r.unit_id, r.attempt, m.shard_id) for r, m in model.marks(kind))


@settings(max_examples=100, deadline=None)
@given(missions(), st.sampled_from([MissionStatus.RUNNING, MissionStatus.PARTIAL]))
def test_rows_bars_and_marks_are_the_records(
    drawn: tuple[Sequence[UnitRecord], Sequence[ShardRecord], dict[str, float]],
    status: MissionStatus,
) -> None:
    units, shards, seconds = drawn
    mission = replace(
        mission_record("m"), status=status, created_at=T0 - 10, instance_seconds=seconds
    )
    model = build_timeline(mission, units, shards, now=T0 + 6000)

    expected_rows = sorted((u.unit_id, n) for u in units for n in range(1, u.attempt + 1))
    assert [(r.unit_id, r.attempt) for r in model.rows] == expected_rows
    bars = sorted((r.unit_id, r.attempt, b.shard_id) for r in model.rows for b in r.bars)
    assert bars == sorted(
        (s.unit_id, s.attempt, s.shard_id) for s in shards if _ran_in_its_attempt(s)
    )
    assert _kinds(model, MarkKind.INTERRUPTION) == sorted(
        (u.unit_id, n, None) for u in units for n in u.interrupted_attempts
    )
    assert _kinds(model, MarkKind.RELAUNCH) == sorted(
        (u.unit_id, n, None) for u in units for n in range(2, u.attempt + 1)
    )
    assert _kinds(model, MarkKind.FAILED_SHARD) == sorted(
        (s.unit_id, s.attempt, s.shard_id) for s in shards if s.status is ShardStatus.FAILED
    )
    for row, _ in model.marks(MarkKind.ON_DEMAND):
        assert row.attempt > 1 and row.capacity is Capacity.ON_DEMAND
    for row in model.rows:
        assert all(0 <= b.start <= b.end <= model.span for b in row.bars)
        assert all(0 <= m.at <= model.span for m in row.marks)
    placed = {r.instance_id for r in model.rows}
    assert {n.instance_id for n in model.unplaced} == set(billed_nodes(seconds)) - placed


def test_billing_keys_without_a_node_name_no_node() -> None:
    nodes = billed_nodes({"c7i.large|spot": 10.0, "c7i.large|spot|i-1": 5.0, "x|weird|i-2": 1})
    assert list(nodes) == ["i-1"] and nodes["i-1"].capacity is Capacity.SPOT
