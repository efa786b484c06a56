"""One suite, two stores: ``MemoryMissionStore`` (the unit tests' fake) must answer exactly as
``DynamoMissionStore`` on the embedded cloud, so a use case green on the fake is green on AWS.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from localcloud.stack import LocalStack
from tests.fakes import MemoryMissionStore, mission_record
from tests.functional.simnode import begin
from workflow.errors import AttemptSuperseded, MissionNotFound
from workflow.planner import pack_units, plan_shards
from workflow.ports import MAX_BATCH_MOVES, MissionStore, ShardMove
from workflow.progress import progress_of
from workflow.records import FailedShard
from workflow.states import ALLOWED, MissionStatus, ShardStatus, UnitStatus

# The store fixture reaches the stack through getfixturevalue, which tests/conftest.py cannot
# see: name the shared cloud here, or it is released (stopped) before every test.
pytestmark = pytest.mark.usefixtures("shared_cloud")


@pytest.fixture(params=["memory", "dynamodb"])
def store(request: pytest.FixtureRequest) -> Iterator[MissionStore]:
    if request.param == "memory":
        yield MemoryMissionStore()
    else:
        stack: LocalStack = request.getfixturevalue("shared_stack")
        yield stack.services.store


def new_id() -> str:
    return f"m-{uuid.uuid4().hex[:12]}"


def planned(store: MissionStore, shards: int = 4, units: int = 2) -> str:
    """A created mission with its plan: ``units`` units over ``shards`` shards."""
    mission_id = new_id()
    store.create_mission(mission_record(mission_id, shards=shards, units=units))
    store.put_plan(mission_id, pack_units(plan_shards(shards * 10, shards), units), 1_900_000_000)
    return mission_id


# ---- missions ---------------------------------------------------------------------------


def test_a_mission_is_created_once_and_read_back_as_written(store: MissionStore) -> None:
    mission_id = new_id()
    record = mission_record(mission_id, expires_at=1_900_000_000, invalid_sample_lines=(2, 5))
    assert store.create_mission(record) is None
    assert store.get_mission(mission_id) == record
    other = mission_record(mission_id, execution_arn="arn:other")
    assert store.create_mission(other) == record  # the first one stays
    assert store.mission_for_execution(str(record.execution_arn)) == mission_id
    assert store.mission_for_execution("arn:other") is None


def test_an_absent_mission_is_named_not_found(store: MissionStore) -> None:
    absent = new_id()
    with pytest.raises(MissionNotFound):
        store.get_mission(absent)
    with pytest.raises(MissionNotFound):
        store.update_mission(absent, {"status": MissionStatus.CANCELLED.value})
    with pytest.raises(MissionNotFound):
        store.bill_instance(absent, "i-0", "c6i.large", "spot", 1.0)


def test_updates_and_counters_land_on_the_record(store: MissionStore) -> None:
    mission_id = new_id()
    store.create_mission(mission_record(mission_id))
    store.bill_instance(mission_id, "i-1", "c6i.large", "spot", 10.0004)
    store.bill_instance(mission_id, "i-2", "c6i.large", "spot", 5.5)
    store.bill_instance(mission_id, "i-2", "c6i.large", "spot", 5.5)  # a retry: counted once
    outcome = {
        "status": MissionStatus.PARTIAL.value,
        "shardsDone": 2,
        "failedShards": [{"shardId": "s000001", "error": "boom"}],
        "result": None,  # None is not written
        "cost": 0.25,
        "note": "kept",
    }
    store.update_mission(mission_id, outcome)
    mission = store.get_mission(mission_id)
    assert (mission.shards_done, mission.status) == (2, "PARTIAL")
    assert mission.instance_seconds == {"c6i.large|spot|i-1": 10.0, "c6i.large|spot|i-2": 5.5}
    assert mission.failed_shards == (FailedShard("s000001", "boom"),)
    assert (mission.result, mission.cost, mission.extra) == (None, 0.25, {"note": "kept"})
    store.delete_mission(mission_id)
    with pytest.raises(MissionNotFound):
        store.get_mission(mission_id)


def test_profiles_are_put_listed_and_deleted(store: MissionStore) -> None:
    name = new_id()
    assert store.get_profile(name) is None
    store.put_profile(name, {"workload": "noop", "shards": 2}, 12.5)
    profile = store.get_profile(name)
    assert profile is not None
    assert (profile.name, profile.params, profile.updated_at) == (
        name,
        {"workload": "noop", "shards": 2},
        12.5,
    )
    assert name in [p.name for p in store.list_profiles()]
    assert store.delete_profile(name)
    assert not store.delete_profile(name)
    assert name not in [p.name for p in store.list_profiles()]


# ---- the plan ---------------------------------------------------------------------------


def test_the_plan_queues_every_shard_for_attempt_one(store: MissionStore) -> None:
    mission_id = planned(store, shards=5, units=2)
    units = store.list_units(mission_id)
    assert [(u.unit_id, u.shard_from, u.shard_to) for u in units] == [
        ("u0000", 0, 2),
        ("u0001", 3, 4),
    ]
    assert {(u.status, u.attempt, u.launches) for u in units} == {(UnitStatus.LAUNCHING, 0, 0)}
    shards = store.list_shards(mission_id)
    assert [s.shard_id for s in shards] == [f"s00000{i}" for i in range(5)]
    assert {(s.status, s.attempt) for s in shards} == {(ShardStatus.QUEUED, 1)}
    assert [(s.start, s.end) for s in shards] == [(0, 10), (10, 20), (20, 30), (30, 40), (40, 50)]
    assert [s.shard_id for s in store.unit_shards(units[1])] == ["s000003", "s000004"]
    assert store.get_shard(mission_id, "s000009") is None
    with pytest.raises(MissionNotFound):
        store.get_unit(mission_id, "u0009")
    store.delete_trans(mission_id)
    assert store.list_shards(mission_id) == [] and store.list_units(mission_id) == []


# ---- attempts ---------------------------------------------------------------------------


def test_an_attempt_begins_once_and_an_older_one_is_superseded(store: MissionStore) -> None:
    mission_id = planned(store)
    unit, queued = begin(store, mission_id, "u0000", 1, token="t1", capacity="spot")
    assert (unit.attempt, unit.task_token, unit.capacity, unit.launches) == (1, "t1", "spot", 1)
    assert queued == 2
    again, queued_again = begin(store, mission_id, "u0000", 1, token="t1", capacity="spot")
    assert (again.launches, queued_again) == (1, 2)  # a client retry of the same call
    with pytest.raises(AttemptSuperseded):
        begin(store, mission_id, "u0000", 1, token="t-other", capacity="spot")
    assert store.move_shard(mission_id, "s000000", ShardStatus.RUNNING, attempt=1)
    assert store.move_shard(mission_id, "s000000", ShardStatus.DONE, attempt=1)
    unit, queued = begin(store, mission_id, "u0000", 2, token="t2", capacity="on-demand")
    assert (unit.attempt, unit.capacity, unit.launches) == (2, "on-demand", 2)
    assert queued == 1  # DONE stays DONE
    shards = store.unit_shards(unit)
    assert [(s.status, s.attempt) for s in shards] == [
        (ShardStatus.DONE, 1),
        (ShardStatus.QUEUED, 2),
    ]
    with pytest.raises(AttemptSuperseded):
        begin(store, mission_id, "u0000", 1, token="t1", capacity="spot")
    with pytest.raises(MissionNotFound):
        begin(store, mission_id, "u0009", 1, token="t1", capacity="spot")


def test_a_units_shards_not_done_are_its_open_and_failed_ones_in_full(
    store: MissionStore,
) -> None:
    """What settling a unit reads (the node's finish line, VerifyUnit): filtered by the
    store, the same records ``unit_shards`` gives, DONE ones left out, no other unit's."""
    mission_id = planned(store, shards=6, units=2)
    unit, _ = begin(store, mission_id, "u0000", 1, token="t1", capacity="spot")
    for shard, target in (("s000000", ShardStatus.DONE), ("s000002", ShardStatus.FAILED)):
        assert store.move_shard(mission_id, shard, ShardStatus.RUNNING, attempt=1)
        assert store.move_shard(mission_id, shard, target, attempt=1, fields={"error": "x"})
    assert store.move_shard(mission_id, "s000001", ShardStatus.RUNNING, attempt=1)
    every = store.unit_shards(unit)
    assert store.unit_shards_not_done(unit) == [s for s in every if s.shard_id != "s000000"]
    for shard in ("s000001",):
        assert store.move_shard(mission_id, shard, ShardStatus.DONE, attempt=1)
    assert [s.shard_id for s in store.unit_shards_not_done(unit)] == ["s000002"]
    other = store.get_unit(mission_id, "u0001")
    assert [s.shard_id for s in store.unit_shards_not_done(other)] == [
        "s000003",
        "s000004",
        "s000005",
    ]


def test_unit_writes_are_fenced_by_the_current_attempt(store: MissionStore) -> None:
    mission_id = planned(store)
    begin(store, mission_id, "u0000", 1, token="t1", capacity="spot")
    assert store.set_unit(mission_id, "u0000", 1, {"instanceId": "i-1", "error": None})
    begin(store, mission_id, "u0000", 2, token="t2", capacity="spot")
    assert not store.set_unit(mission_id, "u0000", 1, {"status": UnitStatus.FAILED.value})
    assert not store.set_unit(mission_id, "u0009", 1, {"status": UnitStatus.FAILED.value})
    unit = store.get_unit(mission_id, "u0000")
    assert (unit.status, unit.instance_id) == (UnitStatus.LAUNCHING, None)  # a launch clears it
    store.note_interruption(mission_id, "u0000", 1)
    store.note_interruption(mission_id, "u0000", 1)  # node and watcher both say so
    store.note_interruption(mission_id, "u0000", 2)
    assert store.get_unit(mission_id, "u0000").interrupted_attempts == (1, 2)


# ---- shard moves ------------------------------------------------------------------------

# A path from QUEUED (attempt 1, as planned) to each status.
_PATH = {
    ShardStatus.QUEUED: [],
    ShardStatus.RUNNING: [ShardStatus.RUNNING],
    ShardStatus.DONE: [ShardStatus.RUNNING, ShardStatus.DONE],
    ShardStatus.INTERRUPTED: [ShardStatus.INTERRUPTED],
    ShardStatus.LOST: [ShardStatus.LOST],
    ShardStatus.FAILED: [ShardStatus.FAILED],
}


@pytest.mark.parametrize("source", list(_PATH), ids=str)
def test_every_move_follows_the_transition_table(store: MissionStore, source: ShardStatus) -> None:
    mission_id = planned(store, shards=len(ALLOWED), units=1)
    targets = list(ALLOWED)
    for shard, target in zip(store.list_shards(mission_id), targets, strict=True):
        for step in _PATH[source]:
            assert store.move_shard(mission_id, shard.shard_id, step, attempt=1)
        moved = store.move_shard(mission_id, shard.shard_id, target, attempt=1)
        assert moved is (source in ALLOWED[target]), f"{source} -> {target}"
        current = store.get_shard(mission_id, shard.shard_id)
        assert current is not None and current.status is (target if moved else source)


def test_a_move_is_fenced_by_attempt_and_counted_once(store: MissionStore) -> None:
    mission_id = planned(store, shards=2, units=1)
    assert not store.move_shard(mission_id, "s000000", ShardStatus.RUNNING, attempt=2)
    assert store.move_shard(mission_id, "s000000", ShardStatus.RUNNING, attempt=1)
    fields = {"resultKey": "k1", "position": 10}
    for expected in (True, False):  # DONE once; the second report is refused, not counted
        moved = store.move_shard(mission_id, "s000000", ShardStatus.DONE, attempt=1, fields=fields)
        assert moved is expected
    assert not store.move_shard(
        mission_id, "s000000", ShardStatus.QUEUED, attempt=2, older_attempts=True
    )
    assert store.move_shard(
        mission_id, "s000001", ShardStatus.QUEUED, attempt=3, older_attempts=True
    )
    assert not store.move_shard(
        mission_id, "s000001", ShardStatus.QUEUED, attempt=2, older_attempts=True
    )
    assert not store.move_shard(mission_id, "s000001", ShardStatus.RUNNING, attempt=1)
    assert not store.move_shard(mission_id, "s000009", ShardStatus.RUNNING, attempt=1)
    assert progress_of(store.list_shards(mission_id), []).done == 1
    assert store.get_mission(mission_id).shards_done == 0  # a commit leaves the mission item
    shard = store.get_shard(mission_id, "s000000")
    assert shard is not None
    assert (shard.status, shard.result_key, shard.position) == (ShardStatus.DONE, "k1", 10)
    requeued = store.get_shard(mission_id, "s000001")
    assert requeued is not None
    assert (requeued.status, requeued.attempt) == (ShardStatus.QUEUED, 3)


def test_a_batch_of_moves_lands_whole_or_names_what_refused_it(store: MissionStore) -> None:
    mission_id = planned(store, shards=4, units=1)
    claims = [ShardMove(f"s00000{i}", ShardStatus.RUNNING, {"instanceId": "i-1"}) for i in range(3)]
    assert store.move_shards(mission_id, claims, attempt=1) == []
    assert store.move_shard(mission_id, "s000001", ShardStatus.DONE, attempt=1)
    commits = [ShardMove(f"s00000{i}", ShardStatus.DONE, {"resultKey": f"k{i}"}) for i in range(3)]
    assert store.move_shards(mission_id, commits, attempt=1) == ["s000001"]  # none applied
    assert [s.status for s in store.list_shards(mission_id)] == [
        ShardStatus.RUNNING,
        ShardStatus.DONE,
        ShardStatus.RUNNING,
        ShardStatus.QUEUED,
    ]
    assert store.move_shards(mission_id, commits[:1] + commits[2:], attempt=1) == []
    stale = [ShardMove("s000003", ShardStatus.RUNNING), ShardMove("s000009", ShardStatus.RUNNING)]
    assert store.move_shards(mission_id, stale, attempt=2) == ["s000003", "s000009"]
    requeue = [ShardMove("s000003", ShardStatus.QUEUED)]
    assert store.move_shards(mission_id, requeue, attempt=2, older_attempts=True) == []
    assert [(s.status, s.attempt, s.result_key) for s in store.list_shards(mission_id)] == [
        (ShardStatus.DONE, 1, "k0"),
        (ShardStatus.DONE, 1, None),
        (ShardStatus.DONE, 1, "k2"),
        (ShardStatus.QUEUED, 2, None),
    ]
    too_many = [ShardMove(f"s{i:06d}", ShardStatus.RUNNING) for i in range(MAX_BATCH_MOVES + 1)]
    with pytest.raises(ValueError, match="at most"):
        store.move_shards(mission_id, too_many, attempt=1)
