"""Issue 12 §4: EC2's refusals are named for what they are, and Spot refusals lead to
On-Demand within the launch budget the ASL gives ``Node.Capacity``."""

from __future__ import annotations

from typing import Any

import pytest

from tests.unit.test_param_reach import asl, retries_for  # noqa: F401  (fixture)
from workflow.aws.ec2 import launch_error
from workflow.errors import NodeCapacity, NodeLaunchDenied
from workflow.launching import choose_capacity
from workflow.params import PARAMS
from workflow.states import Capacity


@pytest.mark.parametrize(
    ("codes", "error"),
    [
        (["UnauthorizedOperation"], NodeLaunchDenied),
        (["UnauthorizedOperation", "UnauthorizedOperation"], NodeLaunchDenied),
        (["InsufficientInstanceCapacity"], NodeCapacity),
        (["MaxSpotInstanceCountExceeded"], NodeCapacity),
        (["UnauthorizedOperation", "InsufficientInstanceCapacity"], NodeCapacity),
        ([], NodeCapacity),
    ],
)
def test_ec2_refusals_are_named_for_what_they_are(codes: list[str], error: type) -> None:
    exc = launch_error(codes, "detail")
    assert type(exc) is error
    assert type(exc).__name__ == error.error_name


def test_spot_refusals_lead_to_on_demand() -> None:
    assert choose_capacity(0, 2, capacity_refusals=1, spot_capacity_errors=2) is Capacity.SPOT
    assert choose_capacity(0, 2, capacity_refusals=2, spot_capacity_errors=2) is (
        Capacity.ON_DEMAND
    )


def test_every_allowed_spot_capacity_errors_reaches_on_demand(asl: dict[str, Any]) -> None:  # noqa: F811
    """Each Spot refusal fails LaunchNode with Node.Capacity and spends one of its retries:
    launches happen after 0..MaxAttempts refusals, so the bound must leave one On-Demand."""
    launch = asl["States"]["RunWorkUnits"]["ItemProcessor"]["States"]["LaunchNode"]
    budget = retries_for(launch, NodeCapacity.error_name)
    row = PARAMS["spotCapacityErrors"]
    assert row.low is not None and row.high is not None
    unreachable = [
        n
        for n in range(row.low, row.high + 1)
        if not any(
            choose_capacity(0, 8, capacity_refusals=k, spot_capacity_errors=n) is Capacity.ON_DEMAND
            for k in range(budget + 1)
        )
    ]
    assert unreachable == [], f"spotCapacityErrors {unreachable} exceed {budget} retries"
