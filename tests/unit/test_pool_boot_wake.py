"""The local pool starts a node when its instance has booted, not at the poll after it."""

from __future__ import annotations

import time
from dataclasses import dataclass

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from localcloud.pool import LocalNodePool
from workflow.settings import Settings

pytestmark = pytest.mark.unit

POLL = 0.2


@dataclass(frozen=True)
class _Nowhere:
    """Clients are made, never called: nothing is started."""

    endpoint_url: str = "http://127.0.0.1:9"
    region: str = "xx-local-1"


_POOL = LocalNodePool(_Nowhere(), Settings(), poll_seconds=POLL)  # never started


def _pool(boot: float, install: float) -> LocalNodePool:
    _POOL.boot_seconds, _POOL.install_seconds = boot, install
    _POOL._waiting.clear()
    return _POOL


@settings(max_examples=50, deadline=None)
@given(
    boot=st.sampled_from([0.0, 0.05, 0.5, 30.0]),
    install=st.sampled_from([0.0, 0.1, 11.0]),
    ages=st.lists(
        st.sampled_from([0.0, 0.02, 0.1, 0.45, 1.0, 40.0]) | st.floats(0.0, 45.0), max_size=4
    ),
)
def test_the_watcher_wakes_by_the_next_boot_or_install_end(
    boot: float, install: float, ages: list[float]
) -> None:
    pool = _pool(boot, install)
    now = time.monotonic()
    for n, age in enumerate(ages):
        pool._waiting[f"i-{n}"] = ({}, now - age)
    wait = pool._until_next_boot()
    ends = [end - age for age in ages for end in (boot, boot + install)]
    due = [e for e in ends if e > 0]
    assert 0.0 <= wait <= POLL
    if due and min(due) < POLL - 0.01:
        # ``now`` is read once more inside: the wait ends by the due time, never after it.
        assert wait <= min(due) + 1e-6
        assert wait >= min(due) - 0.05
    elif not due or min(due) > POLL + 0.05:
        assert wait == POLL
