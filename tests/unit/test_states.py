"""Shard transitions: DONE and FAILED are terminal; every status can reach a terminal one."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from workflow.states import ALLOWED, TERMINAL, ShardStatus, can_move


def test_terminal_states_have_no_exit() -> None:
    for terminal in TERMINAL:
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
        assert reach[status] & TERMINAL, status


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
