"""Shard transitions (DONE and FAILED are settled; every status can settle) and the AWS
vocabularies (execution status, capacity) checked against AWS's own service models."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from workflow.states import (
    ALLOWED,
    FAILED_EXECUTION,
    SETTLED_SHARD,
    TERMINAL_EXECUTION,
    Capacity,
    ExecutionStatus,
    ShardStatus,
    can_move,
)


def test_terminal_states_have_no_exit() -> None:
    for terminal in SETTLED_SHARD:
        assert not any(can_move(terminal, target) for target in ShardStatus)


def test_every_status_can_finish() -> None:
    reach = {s: {s} for s in ShardStatus}
    changed = True
    while changed:
        changed = False
        for src in ShardStatus:
            for target in ShardStatus:
                if can_move(src, target) and not reach[target] <= reach[src]:
                    reach[src] |= reach[target]
                    changed = True
    for status in ShardStatus:
        assert reach[status] & SETTLED_SHARD, status


@given(st.lists(st.sampled_from(list(ShardStatus)), max_size=40))
def test_a_walk_that_obeys_the_table_reaches_done_at_most_once(walk: list[ShardStatus]) -> None:
    status = ShardStatus.PENDING
    done = 0
    for target in walk:
        if can_move(status, target):
            status = target
            done += target is ShardStatus.DONE
    assert done <= 1


def test_done_only_from_running() -> None:
    assert ALLOWED[ShardStatus.DONE] == frozenset({ShardStatus.RUNNING})


def _aws_enum(service: str, shape: str) -> list[str]:
    """The values AWS itself lists for ``shape`` (botocore's bundled service model)."""
    import botocore.session

    model = botocore.session.get_session().get_service_model(service)
    return list(model.shape_for(shape).enum)


def test_execution_status_is_step_functions_vocabulary() -> None:
    assert [s.value for s in ExecutionStatus] == _aws_enum("stepfunctions", "ExecutionStatus")


def test_a_running_or_redrivable_execution_is_not_terminal() -> None:
    assert ExecutionStatus.RUNNING not in TERMINAL_EXECUTION
    assert ExecutionStatus.PENDING_REDRIVE not in TERMINAL_EXECUTION
    assert TERMINAL_EXECUTION - {ExecutionStatus.SUCCEEDED} == FAILED_EXECUTION
    assert "TIMED_OUT" in FAILED_EXECUTION  # a status read from the API is a plain str


def test_capacity_values_are_the_ones_ec2_fleet_takes() -> None:
    assert {c.value for c in Capacity} <= set(_aws_enum("ec2", "DefaultTargetCapacityType"))


def test_no_one_word_names_two_vocabularies() -> None:
    """``FAILED`` is both a shard and an execution status: the sets say whose it is."""
    from workflow import states

    assert not hasattr(states, "TERMINAL")
    assert ShardStatus.FAILED in SETTLED_SHARD and ExecutionStatus.FAILED in FAILED_EXECUTION
