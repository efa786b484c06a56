"""Result packs: small results share an object, and RsltProc reads each object once, giving
every shard its own bytes back in shard order (workflow/result_packs.py)."""

from __future__ import annotations

import itertools
import tempfile
from collections import Counter
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from tests.fakes import MemoryObjectStore
from workflow.records import ShardRecord
from workflow.result_packs import (
    MAX_PACKED_RESULT_BYTES,
    PACK_BYTES,
    ResultReader,
    packable,
    write_pack,
)
from workflow.states import ShardStatus

BUCKET = "results"
SIZES = st.lists(
    st.one_of(
        st.integers(0, 2048),
        st.integers(MAX_PACKED_RESULT_BYTES - 2, MAX_PACKED_RESULT_BYTES + 2),
        st.integers(PACK_BYTES // 3, PACK_BYTES // 2),
    ),
    max_size=40,
)


@given(SIZES)
def test_packs_keep_order_hold_only_small_results_and_stay_within_the_pack_size(
    sizes: list[int],
) -> None:
    groups = packable(sizes)
    assert [i for g in groups for i in g] == list(range(len(sizes)))
    for group in groups:
        if len(group) > 1:
            assert all(sizes[i] <= MAX_PACKED_RESULT_BYTES for i in group)
            assert sum(sizes[i] for i in group) <= PACK_BYTES
    # Nothing packable is left alone needlessly: two neighbouring singles of small results
    # would have fitted together.
    for left, right in itertools.pairwise(groups):
        if left == [left[0]] and right == [right[0]]:
            small = [sizes[left[0]], sizes[right[0]]]
            assert max(small) > MAX_PACKED_RESULT_BYTES or sum(small) > PACK_BYTES


class CountingStore(MemoryObjectStore):
    def __init__(self) -> None:
        super().__init__()
        self.gets: Counter[str] = Counter()
        self.fetched_to_disk = 0

    def fetch(self, bucket: str, key: str, dest: Path) -> None:
        self.gets[key] += 1
        self.fetched_to_disk += 1
        super().fetch(bucket, key, dest)

    def get_bytes(self, bucket: str, key: str) -> bytes:
        self.gets[key] += 1
        return super().get_bytes(bucket, key)


@settings(max_examples=60, deadline=None)
@given(
    bodies=st.lists(st.binary(max_size=64), min_size=1, max_size=30),
    cuts=st.lists(st.integers(1, 6), max_size=30),
    order=st.randoms(use_true_random=False),
    window=st.integers(1, 4),
)
def test_the_reader_gives_each_shard_its_own_bytes_in_order_and_reads_each_object_once(
    bodies: list[bytes], cuts: list[int], order: object, window: int
) -> None:
    store = CountingStore()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        # Shards in groups: a group of one is a shard's own object, a bigger one a pack.
        shards: list[ShardRecord] = []
        sizes = iter(cuts + [1] * len(bodies))
        index = 0
        while index < len(bodies):
            group = list(range(index, min(index + next(sizes), len(bodies))))
            index = group[-1] + 1
            files = []
            for i in group:
                path = root / f"r{i}.csv"
                path.write_bytes(bodies[i])
                files.append((f"s{i:06d}", path))
            key = f"k/{group[0]}.csv"
            if len(group) == 1:
                store.put_bytes(BUCKET, key, bodies[group[0]])
                shards.append(_shard(group[0], key, None, len(bodies[group[0]])))
                continue
            pack = root / "pack"
            members = write_pack(files, pack)
            store.put_bytes(BUCKET, key, pack.read_bytes())
            shards.extend(
                _shard(i, key, m.offset, m.length) for i, m in zip(group, members, strict=True)
            )
        # Interleave the packs' members: the reader must still answer in the order asked.
        order.shuffle(shards)  # type: ignore[attr-defined]
        out = root / "out"
        out.mkdir()
        got = []
        for shard, path in ResultReader(store, BUCKET, out, window).files(shards):
            got.append((shard.shard_id, path.read_bytes(), path.suffix))
            path.unlink()
        assert got == [(s.shard_id, bodies[s.index], ".csv") for s in shards]
        assert set(store.gets.values()) == {1}
        assert list(out.iterdir()) == []  # every object deleted once used up
        # The same results as bytes, with no file at all.
        store.gets.clear()
        store.fetched_to_disk = 0
        reader = ResultReader(store, BUCKET, out, window)
        contents = [(shard.shard_id, data) for shard, data in reader.contents(shards)]
        assert contents == [(s.shard_id, bodies[s.index]) for s in shards]
        assert set(store.gets.values()) == {1}
        assert store.fetched_to_disk == 0
        assert list(out.iterdir()) == []


def _shard(index: int, key: str, offset: int | None, length: int) -> ShardRecord:
    return ShardRecord(
        mission_id="m",
        shard_id=f"s{index:06d}",
        unit_id="u0",
        index=index,
        start=index,
        end=index + 1,
        status=ShardStatus.DONE,
        attempt=1,
        result_key=key,
        result_offset=offset,
        result_bytes=length,
    )
