"""Re-running the failed shards of a finished mission, and merging the result.

A rerun is an ordinary mission (same state machine, same attempt protocol) planned over a
subset: the old mission's shards that did not end DONE, with their ids, indexes and ranges
unchanged, on the old mission's pinned sample and library versions and with its params. The
new mission names the old one (``rerunOf``) and the old one learns its rerun (``rerunId``).
RsltProc merges the rerun's DONE shards with the DONE shards of every mission up the
``rerunOf`` chain (only their committed ``resultKey``s), in shard order, so the merged
result is the one a clean run computes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from workflow.errors import MissionInvalidInput, MissionNotFound
from workflow.keys import require_mission_id
from workflow.params import MissionParams
from workflow.ports import MissionStore
from workflow.records import MissionRecord, ShardRecord
from workflow.request import SampleRef
from workflow.states import FINISHED_MISSION, ShardStatus
from workflow.workloads.base import ShardRange

RERUN_OF = "rerunOf"  # on the new mission: the mission it re-runs
RERUN_ID = "rerunId"  # on the old mission: its latest rerun


@dataclass(frozen=True)
class RerunBase:
    """What a rerun inherits: the old mission and the ranges to run again (shard order)."""

    old: MissionRecord
    ranges: tuple[ShardRange, ...]


def unfinished_shards(shards: Sequence[ShardRecord]) -> list[ShardRecord]:
    """The shards a rerun runs again: every one that did not end DONE, in shard order."""
    return sorted((s for s in shards if s.status is not ShardStatus.DONE), key=lambda s: s.index)


def rerun_base(store: MissionStore, mission_id: str) -> RerunBase:
    """The old mission and its failed ranges; ``Mission.InvalidInput`` when it is unknown,
    still running, or has no failed shard (PlanMission then writes nothing)."""
    try:
        old = store.get_mission(require_mission_id(mission_id))
    except MissionNotFound as exc:
        raise MissionInvalidInput(f"rerunOf: {exc}") from exc
    if old.status not in FINISHED_MISSION:
        raise MissionInvalidInput(
            f"rerunOf: mission {mission_id} is {old.status.value}; rerun a finished mission"
        )
    failed = unfinished_shards(store.list_shards(mission_id))
    if not failed:
        raise MissionInvalidInput(f"rerunOf: mission {mission_id} has no failed shard to rerun")
    return RerunBase(old, tuple(s.range for s in failed))


def rerun_of(mission: MissionRecord) -> str | None:
    ref = mission.extra.get(RERUN_OF)
    return None if ref is None else str(ref)


def with_inherited(
    store: MissionStore, mission: MissionRecord, done: Sequence[ShardRecord]
) -> list[ShardRecord]:
    """``done`` plus, for each shard index it lacks, the DONE shard of the nearest mission up
    the ``rerunOf`` chain; in shard order. A mission that is no rerun gets ``done`` back."""
    by_index = {s.index: s for s in done}
    seen = {mission.mission_id}
    ref = rerun_of(mission)
    while ref is not None and ref not in seen:
        seen.add(ref)
        for shard in store.list_shards(ref):
            if shard.status is ShardStatus.DONE:
                by_index.setdefault(shard.index, shard)
        ref = rerun_of(store.get_mission(ref))
    return [by_index[i] for i in sorted(by_index)]


def check_same_inputs(old: MissionRecord, sample: SampleRef, params: MissionParams) -> None:
    """A rerun runs on exactly the old mission's pinned sample version and params."""
    pinned = old.sample
    if (sample.bucket, sample.key, sample.version_id, sample.etag) != (
        pinned.bucket,
        pinned.key,
        pinned.version_id,
        pinned.etag,
    ):
        raise MissionInvalidInput(
            f"rerunOf: the sample must be mission {old.mission_id}'s pinned version "
            f"({pinned.uri} version {pinned.version_id or pinned.etag})"
        )
    if params != old.mission_params():
        raise MissionInvalidInput(f"rerunOf: the params must be mission {old.mission_id}'s")
