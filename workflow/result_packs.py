"""Small shard results travel in packs: one S3 object per commit batch, not one per shard.

A node that commits a batch of shards whose results are small concatenates them into one
object (``pack``); each shard's commit names the pack and its byte range (``resultOffset``,
``resultBytes``). 10,000 twenty-millisecond shards cost ~100 PutObjects instead of 10,000, and
RsltProc as many GETs (``ResultReader``). A large result keeps its own object, as does a
shard committed alone. The pack's key is attempt-specific, like a result's, so a superseded
attempt can never overwrite what a later one committed.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Final, TypeVar

from workflow.ports import ObjectStore
from workflow.records import ShardRecord

# A result up to this size may share an object; a pack holds at most PACK_BYTES. Small next to
# a Lambda's 512 MB /tmp (RsltProc keeps about FETCH_WORKERS packs at once), large next to a
# twenty-millisecond shard's output.
MAX_PACKED_RESULT_BYTES: Final = 256 * 1024
PACK_BYTES: Final = 8 * 1024 * 1024

_Fetched = TypeVar("_Fetched", Path, bytes)


@dataclass(frozen=True)
class PackMember:
    """Where one shard's result sits in its pack."""

    shard_id: str
    offset: int
    length: int


def packable(sizes: Sequence[int]) -> list[list[int]]:
    """Group result indices (in order) into packs: each member small, each pack within
    ``PACK_BYTES``; a group of one is uploaded on its own."""
    groups: list[list[int]] = []
    current: list[int] = []
    total = 0
    for index, size in enumerate(sizes):
        alone = size > MAX_PACKED_RESULT_BYTES
        if current and (alone or total + size > PACK_BYTES):
            groups.append(current)
            current, total = [], 0
        if alone:
            groups.append([index])
            continue
        current.append(index)
        total += size
    if current:
        groups.append(current)
    return groups


def write_pack(results: Sequence[tuple[str, Path]], dest: Path) -> list[PackMember]:
    """Concatenate ``(shard_id, file)`` results into ``dest``; their places in it."""
    members: list[PackMember] = []
    offset = 0
    with dest.open("wb") as out:
        for shard_id, path in results:
            data = path.read_bytes()
            out.write(data)
            members.append(PackMember(shard_id, offset, len(data)))
            offset += len(data)
    return members


class ResultReader:
    """The committed results of ``shards``, in the shards' order: as local files (``files``)
    or as bytes (``contents``, for small results such as noop's).

    Each distinct object is fetched once, ``window`` at a time ahead of the reader. For
    ``files``, a pack's file is kept until its last member in the order has been cut out,
    then deleted, and the caller deletes each yielded file once read (so /tmp holds about
    ``window`` objects); the pack being cut is read into memory once, not reopened per member.
    """

    def __init__(self, objects: ObjectStore, bucket: str, root: Path, window: int) -> None:
        self._objects = objects
        self._bucket = bucket
        self._root = root
        self._window = window
        self._pack: tuple[Path, bytes] | None = None  # the pack being cut, and its bytes

    def files(self, shards: Sequence[ShardRecord]) -> Iterator[tuple[ShardRecord, Path]]:
        keys = dict.fromkeys(str(s.result_key) for s in shards)
        names = {key: self._root / f"object-{n:07d}" for n, key in enumerate(keys)}

        def download(key: str) -> Path:
            self._objects.fetch(self._bucket, key, names[key])
            return names[key]

        for index, (shard, whole, last) in enumerate(self._fetched(shards, download)):
            try:
                yield shard, self._cut(shard, whole, index, last=last)
            finally:
                if last:
                    whole.unlink(missing_ok=True)

    def contents(self, shards: Sequence[ShardRecord]) -> Iterator[tuple[ShardRecord, bytes]]:
        """Each shard's result as bytes, its object read straight into memory: no file at all
        (on a busy host each file's open, write, read and unlink waits for the GIL again:
        most of RsltProc's second at 1,000 noop shards). For workloads whose results are
        small: up to ``window`` objects are held at once."""

        def read(key: str) -> bytes:
            return self._objects.get_bytes(self._bucket, key)

        for shard, whole, _ in self._fetched(shards, read):
            yield shard, whole[_member_slice(shard)]

    def _fetched(
        self, shards: Sequence[ShardRecord], fetch: Callable[[str], _Fetched]
    ) -> Iterator[tuple[ShardRecord, _Fetched, bool]]:
        """(shard, what ``fetch`` made of its object, whether it is the object's last use),
        the next objects fetched meanwhile on ``window`` threads."""
        keys = iter(dict.fromkeys(str(s.result_key) for s in shards))
        last_use = {str(s.result_key): i for i, s in enumerate(shards)}
        fetching: dict[str, Future[_Fetched]] = {}  # fetched or in flight, not yet used up
        with ThreadPoolExecutor(self._window, thread_name_prefix="rslt-fetch") as pool:

            def submit_next() -> bool:
                key = next(keys, None)
                if key is not None:
                    fetching[key] = pool.submit(fetch, key)
                return key is not None

            for index, shard in enumerate(shards):
                key = str(shard.result_key)
                while key not in fetching and submit_next():  # packs interleaved past the window
                    pass
                while len(fetching) < self._window and submit_next():
                    pass
                last = last_use[key] == index
                fetched = (fetching.pop(key) if last else fetching[key]).result()
                yield shard, fetched, last

    def _cut(self, shard: ShardRecord, whole: Path, index: int, *, last: bool) -> Path:
        """The shard's own bytes as a file named with its result's suffix: a whole object
        used for the last time is renamed, not copied."""
        suffix = PurePosixPath(str(shard.result_key)).suffix
        out = self._root / f"{index:07d}-{shard.shard_id}{suffix}"
        if shard.result_offset is None:
            if last:
                whole.rename(out)
            else:
                shutil.copyfile(whole, out)
        else:
            out.write_bytes(self._member(shard, whole, last=last))
        return out

    def _member(self, shard: ShardRecord, whole: Path, *, last: bool) -> bytes:
        """A pack member's bytes, the pack read once for all its members."""
        if self._pack is None or self._pack[0] != whole:
            self._pack = (whole, whole.read_bytes())
        data = self._pack[1][_member_slice(shard)]
        if last:
            self._pack = None
        return data


def _member_slice(shard: ShardRecord) -> slice:
    """Where the shard's result sits in its object (all of it, when not in a pack)."""
    if shard.result_offset is None:
        return slice(None)
    end = None if shard.result_bytes is None else shard.result_offset + shard.result_bytes
    return slice(shard.result_offset, end)
