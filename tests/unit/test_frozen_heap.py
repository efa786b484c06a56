"""``localcloud.heap.FrozenHeap``: the objects alive at freeze are out of every collection
until thaw, and a caller's own freeze is left as the caller made it."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from localcloud.heap import FrozenHeap


@pytest.fixture(autouse=True)
def _thawed() -> Iterator[None]:
    gc.unfreeze()
    yield
    gc.unfreeze()


def _in_collected_generations(obj: object) -> bool:
    return any(o is obj for generation in range(3) for o in gc.get_objects(generation))


def test_what_lives_at_freeze_is_out_of_every_collection_until_thaw() -> None:
    alive = [[i] for i in range(1000)]  # containers: the collector tracks them
    heap = FrozenHeap()
    heap.freeze()
    assert gc.get_freeze_count() >= len(alive)
    assert not _in_collected_generations(alive[0])
    later = [0]
    assert _in_collected_generations(later)  # made after: collected as usual
    heap.thaw()
    assert gc.get_freeze_count() == 0
    assert _in_collected_generations(alive[0])


def test_thaw_without_freeze_and_a_second_freeze_change_nothing() -> None:
    heap = FrozenHeap()
    heap.thaw()
    assert gc.get_freeze_count() == 0
    heap.freeze()
    frozen = gc.get_freeze_count()
    _made_after = [[i] for i in range(100)]
    heap.freeze()
    assert gc.get_freeze_count() == frozen
    heap.thaw()
    assert gc.get_freeze_count() == 0


def test_a_heap_the_caller_froze_stays_frozen() -> None:
    gc.freeze()
    theirs = gc.get_freeze_count()
    heap = FrozenHeap()
    heap.freeze()
    heap.thaw()
    assert gc.get_freeze_count() == theirs
