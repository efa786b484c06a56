"""A stopped execution ends its mission CANCELLED, keeping what was done.

``lighthpc cancel`` only stops the execution (StopExecution); node_watch receives the
ABORTED event and calls ``settle_cancelled`` after terminating the nodes. DONE shards and
their committed results stay as they are (a rerun can build on them); every shard still open
becomes FAILED, fenced by its own attempt, so a node's commit that races the cancel either
lands first (DONE, kept) or is refused (the shard is settled).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from workflow.aggregation import price_mission
from workflow.ports import Ports
from workflow.progress import progress_of
from workflow.states import SETTLED_SHARD, MissionStatus, ShardStatus

CANCELLED_CAUSE = "Mission.Cancelled: the execution was stopped before this shard finished"


@dataclass(frozen=True)
class Cancelled:
    mission_id: str
    done: int
    failed: int


def settle_cancelled(svc: Ports, mission_id: str) -> Cancelled:
    """Open shards → FAILED; the mission → CANCELLED with its final counts and cost."""
    store = svc.store
    for shard in store.list_shards(mission_id):
        if shard.status not in SETTLED_SHARD:
            store.move_shard(
                mission_id,
                shard.shard_id,
                ShardStatus.FAILED,
                attempt=shard.attempt,
                fields={"error": CANCELLED_CAUSE},
            )
    shards, units = store.list_shards(mission_id), store.list_units(mission_id)
    counts = progress_of(shards, units)
    mission = store.get_mission(mission_id)
    store.update_mission(
        mission_id,
        {
            "status": MissionStatus.CANCELLED.value,
            "shardsDone": counts.done,
            "shardsFailed": counts.failed,
            "cost": round(price_mission(mission, shards, units).total, 6),
            "finishedAt": time.time(),
        },
    )
    return Cancelled(mission_id, counts.done, counts.failed)
