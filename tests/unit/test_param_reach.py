"""Every value a parameter's bounds allow must be reachable through the state machine: a
bound looser than an ASL retry limit or a static ASL value is a promise the ASL breaks."""

from __future__ import annotations

from typing import Any

import pytest

from workflow.asl import load_definition, placeholders, read_definition
from workflow.launching import choose_capacity
from workflow.params import PARAMS, parse_params
from workflow.planning import PlanResult
from workflow.states import Capacity

SPOT_INTERRUPTED = "Spot.Interrupted"


@pytest.fixture(scope="module")
def asl() -> dict[str, Any]:
    text = read_definition()
    return load_definition({name: f"arn:{name}" for name in placeholders(text)})


def _run(asl: dict[str, Any]) -> dict[str, Any]:
    state: dict[str, Any] = asl["States"]["RunWorkUnits"]
    return state


def _launch(asl: dict[str, Any]) -> dict[str, Any]:
    state: dict[str, Any] = _run(asl)["ItemProcessor"]["States"]["LaunchNode"]
    return state


def retries_for(state: dict[str, Any], error: str) -> int:
    """MaxAttempts of the retrier Step Functions picks for ``error``: the first that lists
    it (or ``States.ALL``); 0 when none does. MaxAttempts defaults to 3 in the ASL spec."""
    for retrier in state.get("Retry", []):
        if error in retrier["ErrorEquals"] or "States.ALL" in retrier["ErrorEquals"]:
            return int(retrier.get("MaxAttempts", 3))
    return 0


def reaches_on_demand(spot_attempts: int, spot_retries: int) -> bool:
    """Worst case, every Spot node is interrupted: each interruption fails the task with
    Spot.Interrupted and spends one retry, so launches happen after 0..spot_retries
    interruptions (``launch_unit`` counts them); the next one ends the unit (Catch)."""
    return any(
        choose_capacity(interruptions, spot_attempts) is Capacity.ON_DEMAND
        for interruptions in range(spot_retries + 1)
    )


def test_the_reach_model_can_say_no() -> None:
    assert reaches_on_demand(8, 8)
    assert not reaches_on_demand(9, 8)


def test_every_allowed_spot_attempts_reaches_on_demand(asl: dict[str, Any]) -> None:
    """spotAttempts ≤ the Spot.Interrupted retrier's MaxAttempts, or On-Demand never comes."""
    spot_retries = retries_for(_launch(asl), SPOT_INTERRUPTED)
    row = PARAMS["spotAttempts"]
    assert row.low is not None and row.high is not None
    unreachable = [
        n for n in range(row.low, row.high + 1) if not reaches_on_demand(n, spot_retries)
    ]
    assert unreachable == [], (
        f"spotAttempts {unreachable} never reach On-Demand: the ASL retries "
        f"{SPOT_INTERRUPTED} {spot_retries} times"
    )


def test_max_nodes_is_not_capped_by_a_static_map_concurrency(asl: dict[str, Any]) -> None:
    """The Map reads its concurrency from the plan (≤ maxNodes); a static MaxConcurrency
    below the bound would make the larger maxNodes values unreachable."""
    run = _run(asl)
    high = PARAMS["maxNodes"].high
    assert high is not None
    assert run["MaxConcurrencyPath"] == "$.maxConcurrency"
    assert run.get("MaxConcurrency", high) >= high


@pytest.mark.parametrize(
    ("param", "asl_field"),
    [("heartbeatSeconds", "HeartbeatSecondsPath"), ("timeoutSeconds", "TimeoutSecondsPath")],
)
def test_the_task_timers_are_the_mission_params(
    asl: dict[str, Any], param: str, asl_field: str
) -> None:
    """PlanMission's output → the Map's item → LaunchNode's timer: the param's whole range
    reaches Step Functions, no static HeartbeatSeconds/TimeoutSeconds overrides it."""
    high = PARAMS[param].high
    params = parse_params({param: high})
    output = PlanResult("m", False, 1, 1, "b", "k", params).as_output()
    assert output[param] == high
    plan = asl["States"]["PlanMission"]
    assert plan["ResultSelector"][f"{param}.$"] == f"$.Payload.{param}"
    assert _run(asl)["ItemSelector"][f"{param}.$"] == f"$.{param}"
    launch = _launch(asl)
    assert launch[asl_field] == f"$.{param}"
    assert asl_field.removesuffix("Path") not in launch
