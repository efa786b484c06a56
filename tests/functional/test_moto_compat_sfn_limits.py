"""Step Functions limits and Distributed Map semantics: fix 11 of ``localcloud.moto_compat``.

``test_bug_still_present_<fix>`` reverts the fix and shows moto still has the bug (it FAILS
the day moto fixes it: then drop the fix); the other tests show AWS's behaviour with it.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import pytest
from botocore.exceptions import ClientError

from localcloud.lambda_runtime import LambdaContext
from localcloud.moto_compat import MAP_TOLERATED_FAILURE, TOLERATED_FAILURE_PERCENTAGE_INTEGER
from localcloud.moto_compat.parity_sfn_limits import (
    EXCEED_TOLERATED_FAILURE_THRESHOLD,
    THRESHOLD_CAUSE,
)
from tests.functional._compat_fixtures import Harness, open_harness, output_of


@pytest.fixture(scope="module")
def harness() -> Iterator[Harness]:
    yield from open_harness()


def _never_reports(_event: dict[str, Any], _context: LambdaContext) -> dict[str, Any]:
    """A node that never reports: its child waits on the token until TimeoutSeconds."""
    return {"launched": True}


def map_machine(
    harness: Harness, *, tolerance: dict[str, Any] | None = None, waiter: str | None = None
) -> str:
    """A DISTRIBUTED Map whose item ``{"fail": true}`` fails its child (after ``delay`` s),
    ``{"wait": true}`` waits on a task token nobody reports, anything else succeeds."""
    child_states: dict[str, Any] = {
        "Route": {
            "Type": "Choice",
            "Choices": [
                {"Variable": "$.fail", "BooleanEquals": True, "Next": "Delay"},
                {"Variable": "$.wait", "BooleanEquals": True, "Next": "WaitForNode"},
            ],
            "Default": "Done",
        },
        "Delay": {"Type": "Wait", "SecondsPath": "$.delay", "Next": "Boom"},
        "Boom": {"Type": "Fail", "Error": "Unit.Failed", "Cause": "the child failed"},
        "Done": {"Type": "Pass", "Result": "ok", "End": True},
    }
    if waiter is not None:
        child_states["WaitForNode"] = {
            "Type": "Task",
            "Resource": "arn:aws:states:::lambda:invoke.waitForTaskToken",
            "Parameters": {"FunctionName": waiter, "Payload": {"token.$": "$$.Task.Token"}},
            "TimeoutSeconds": 30,
            "End": True,
        }
    run: dict[str, Any] = {
        "Type": "Map",
        "ItemsPath": "$.items",
        "ItemProcessor": {
            "ProcessorConfig": {"Mode": "DISTRIBUTED", "ExecutionType": "STANDARD"},
            "StartAt": "Route",
            "States": child_states,
        },
        **(tolerance or {}),
        "ResultPath": "$.results",
        "Catch": [{"ErrorEquals": ["States.ALL"], "ResultPath": "$.mapError", "Next": "Caught"}],
        "End": True,
    }
    caught = {"Type": "Pass", "End": True}
    return harness.state_machine({"StartAt": "Run", "States": {"Run": run, "Caught": caught}})


def _items(failing: int, total: int) -> dict[str, Any]:
    return {"items": [{"fail": i < failing, "delay": 0} for i in range(total)]}


def test_bug_still_present_map_tolerated_failure(harness: Harness) -> None:
    """moto: a failed child leaves a null in the results and the Map Run succeeds."""
    machine = map_machine(harness)
    with MAP_TOLERATED_FAILURE.reverted():
        output = output_of(harness.run(machine, _items(failing=1, total=3)))
    assert "mapError" not in output, output
    assert output["results"] == [None, "ok", "ok"]


def test_one_failed_child_fails_an_untolerant_map_run(harness: Harness) -> None:
    output = output_of(harness.run(map_machine(harness), _items(failing=1, total=3)))
    assert output["mapError"]["Error"] == EXCEED_TOLERATED_FAILURE_THRESHOLD, output
    assert "results" not in output


@pytest.mark.parametrize(
    ("tolerance", "failing", "fails"),
    [
        ({"ToleratedFailurePercentage": 50.0}, 2, False),  # 50 % is not more than 50 %
        ({"ToleratedFailurePercentage": 50.0}, 3, True),
        ({"ToleratedFailureCount": 1}, 1, False),
        ({"ToleratedFailureCount": 1}, 2, True),
        ({"ToleratedFailurePercentage": 100.0}, 4, False),
        ({"ToleratedFailureCount": 3, "ToleratedFailurePercentage": 25.0}, 2, True),  # either
    ],
)
def test_a_map_run_goes_on_within_its_tolerance(
    harness: Harness, tolerance: dict[str, Any], failing: int, fails: bool
) -> None:
    machine = map_machine(harness, tolerance=tolerance)
    output = output_of(harness.run(machine, _items(failing=failing, total=4)))
    if fails:
        assert output["mapError"]["Error"] == EXCEED_TOLERATED_FAILURE_THRESHOLD, output
    else:
        assert "mapError" not in output, output
        assert output["results"].count("ok") == 4 - failing


def test_a_failed_map_run_aborts_its_running_children(harness: Harness) -> None:
    """The Map Run fails at the first failure, without waiting for a child still waiting on
    its node (TimeoutSeconds 30); that child is stopped and takes no further step."""
    machine = map_machine(harness, waiter=harness.function(_never_reports, "never-reports"))
    items = {"items": [{"wait": True}, {"fail": True, "delay": 1}]}
    started = time.monotonic()
    described = harness.run(machine, items, timeout=25)
    elapsed = time.monotonic() - started
    output = output_of(described)
    assert output["mapError"]["Error"] == EXCEED_TOLERATED_FAILURE_THRESHOLD
    assert output["mapError"]["Cause"] == THRESHOLD_CAUSE
    assert elapsed < 10, f"the Map Run waited {elapsed:.1f} s for a child it should abort"


def test_bug_still_present_tolerated_failure_percentage_integer(harness: Harness) -> None:
    """moto's ASL grammar takes only a decimal ``ToleratedFailurePercentage``; AWS takes (and
    its language service requires) ``100``. Fails the day moto accepts the integer."""
    with (
        TOLERATED_FAILURE_PERCENTAGE_INTEGER.reverted(),
        pytest.raises(ClientError, match="ToleratedFailurePercentage"),
    ):
        map_machine(harness, tolerance={"ToleratedFailurePercentage": 100})


def test_an_integer_tolerated_failure_percentage_is_accepted(harness: Harness) -> None:
    map_machine(harness, tolerance={"ToleratedFailurePercentage": 100})


# --------------------------------------- 256 KiB of state data (moto enforces it already)

STATE_LIMIT_BYTES = 256 * 1024


def _doubling_machine(harness: Harness) -> str:
    """A Pass state whose output holds its input twice, then a Catch-free end."""
    double = {
        "Type": "Pass",
        "Parameters": {"a.$": "$.s", "b.$": "$.s"},
        "End": True,
    }
    return harness.state_machine({"StartAt": "Double", "States": {"Double": double}})


def test_a_state_output_over_256_kib_fails_with_data_limit_exceeded(harness: Harness) -> None:
    """AWS: a state's input or output over 256 KiB fails with States.DataLimitExceeded. moto
    enforces it (``quotas.is_within_size_quota``); this FAILS the day it stops."""
    machine = _doubling_machine(harness)
    described = harness.run(machine, {"s": "x" * (STATE_LIMIT_BYTES // 2 + 1024)})
    assert described["status"] == "FAILED", described
    assert described.get("error") == "States.DataLimitExceeded", described


def test_a_state_output_under_256_kib_passes(harness: Harness) -> None:
    machine = _doubling_machine(harness)
    described = harness.run(machine, {"s": "x" * (STATE_LIMIT_BYTES // 2 - 1024)})
    assert len(json.dumps(output_of(described))) < STATE_LIMIT_BYTES
