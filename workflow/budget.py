"""The mission's budget (``maxCostUsd``), priced by the one cost model.

Two checks, both against the modelled cost ``lighthpc cost`` shows:

- at planning, the least a plan can cost (every unit launched once, on the cheapest allowed
  type at its first capacity, billed EC2's minimum, and verified): above the cap, PlanMission
  refuses the mission with ``Mission.OverBudget`` before writing anything;
- before each launch or relaunch, the spend so far: the priced records (orchestration of the
  launches made, every node's billed seconds) plus what the nodes not yet billed have run
  (from their attempt's ``launchedAt``, at their type and capacity). At or above
  the cap, LaunchNode refuses the unit with ``Mission.OverBudget``; its open shards fail.

Running nodes are not stopped at the cap: they finish their unit (docs/architecture.md,
"The budget").
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

from workflow.aggregation import STOPPED_BY_BUDGET, mission_usage
from workflow.cost import PriceList, Usage, billed_seconds, estimate
from workflow.errors import MissionOverBudget
from workflow.params import MissionParams
from workflow.records import MissionRecord, UnitRecord, billing_key
from workflow.states import Capacity, UnitStatus

# A unit whose node may be running: launched (an instance id) and not yet ended.
ACTIVE_UNIT = frozenset({UnitStatus.LAUNCHING, UnitStatus.RUNNING})


@dataclass(frozen=True)
class Spend:
    """What a mission has cost so far (USD): ``recorded`` from its records, ``unbilled`` for
    its nodes that have not billed yet (the running ones, mostly)."""

    recorded: float
    unbilled: float

    @property
    def total(self) -> float:
        return math.fsum((self.recorded, self.unbilled))


def over_budget(spend: float, cap: float | None) -> bool:
    """No cap: never. Otherwise at the cap already counts: one more launch can only add."""
    return cap is not None and spend >= cap


def plan_floor(
    params: MissionParams,
    shards: int,
    units: int,
    first_capacity: Capacity,
    prices: PriceList | None = None,
) -> float:
    """The least modelled cost of a plan of ``shards`` shards in ``units`` units."""
    p = prices if prices is not None else PriceList()
    cheapest = min(params.instance_types, key=lambda t: p.hourly(t, first_capacity))
    ran_once = [
        UnitRecord("", f"u{i}", 0, 0, UnitStatus.SUCCEEDED, attempt=1, launches=1)
        for i in range(units)
    ]
    least = mission_usage(shards, ran_once)
    compute = {(cheapest, first_capacity): units * billed_seconds(0.0)}
    return estimate(replace(least, instance_seconds=compute), p).total


def check_plan(
    params: MissionParams,
    shards: int,
    units: int,
    first_capacity: Capacity,
    prices: PriceList | None = None,
) -> None:
    """``Mission.OverBudget`` when even the least the plan can cost passes ``maxCostUsd``."""
    cap = params.max_cost_usd
    if cap is None:
        return
    floor = plan_floor(params, shards, units, first_capacity, prices)
    if floor > cap:
        raise MissionOverBudget(
            f"modelled cost at least ${floor:.6f} ({shards} shards on {units} node(s), each "
            f"billed EC2's minimum) exceeds maxCostUsd ${cap:g}; raise the cap or plan fewer "
            "nodes"
        )


def spend_of(
    mission: MissionRecord,
    units: Sequence[UnitRecord],
    now: float,
    prices: PriceList | None = None,
) -> Spend:
    """The mission's spend at ``now``: its priced records plus its nodes not yet billed."""
    p = prices if prices is not None else PriceList()
    recorded = estimate(mission_usage(mission.shards, units, mission.instance_seconds), p)
    pending = unbilled_seconds(mission.instance_seconds, units, now)
    unbilled = estimate(Usage(instance_seconds=pending), p).compute if pending else 0.0
    return Spend(recorded=recorded.total, unbilled=unbilled)


def unbilled_seconds(
    billed: Mapping[str, float], units: Sequence[UnitRecord], now: float
) -> dict[tuple[str, Capacity], float]:
    """Billable seconds of each unit's current node until its own billing key exists (a node
    bills as it exits, after its report), by (type, capacity): from its attempt's launch to
    ``now`` while the unit runs, to the unit's end once it succeeded, and EC2's minute for a
    node that ended otherwise (its end is not recorded; it bills within a second anyway)."""
    out: dict[tuple[str, Capacity], float] = {}
    for u in units:
        if not (u.instance_id and u.instance_type):
            continue
        capacity = Capacity.SPOT if u.capacity == Capacity.SPOT else Capacity.ON_DEMAND
        if billing_key(u.instance_type, capacity, u.instance_id) in billed:
            continue
        began = u.launched_at if u.launched_at is not None else now
        if u.status in ACTIVE_UNIT:
            ended = now
        elif u.status is UnitStatus.SUCCEEDED and u.finished_at is not None:
            ended = u.finished_at
        else:
            ended = began
        key = (u.instance_type, capacity)
        out[key] = out.get(key, 0.0) + billed_seconds(max(ended - began, 0.0))
    return out


def check_launch(mission: MissionRecord, units: Sequence[UnitRecord], now: float) -> Spend:
    """``Mission.OverBudget`` when the spend at ``now`` has reached ``maxCostUsd``; else the
    spend (for the log)."""
    cap = mission.mission_params().max_cost_usd
    spend = spend_of(mission, units, now)
    if over_budget(spend.total, cap):
        raise MissionOverBudget(
            f"spend ${spend.total:.6f} (recorded ${spend.recorded:.6f} + nodes not yet billed "
            f"${spend.unbilled:.6f}) has reached maxCostUsd ${cap:g}: no more launches"
        )
    return spend


def stopped_by_budget(mission: MissionRecord) -> bool:
    """Whether RsltProc recorded that the budget refused one of the mission's launches."""
    return mission.extra.get("stoppedBy") == STOPPED_BY_BUDGET
