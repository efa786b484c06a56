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
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Final

from workflow.ports import ObjectStore
from workflow.records import ShardRecord

# A result up to this size may share an object; a pack holds at most PACK_BYTES. Small next to
# a Lambda's 512 MB /tmp (RsltProc keeps about FETCH_WORKERS packs at once), large next to a
# twenty-millisecond shard's output.
MAX_PACKED_RESULT_BYTES: Final = 256 * 1024
PACK_BYTES: Final = 8 * 1024 * 1024


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

    Each distinct object is fetched once, ``window`` at a time ahead of the reader; a
    pack's file is kept until its last member in the order has been cut out, then deleted.
    The caller deletes each yielded file once read (so /tmp holds about ``window`` objects).
    The pack being cut is read into memory once (at most ``PACK_BYTES``), not reopened per
    member.
    """

    def __init__(self, objects: ObjectStore, bucket: str, root: Path, window: int) -> None:
        self._objects = objects
        self._bucket = bucket
        self._root = root
        self._window = window
        self._pack: tuple[Path, bytes] | None = None  # the pack being cut, and its bytes

    def files(self, shards: Sequence[ShardRecord]) -> Iterator[tuple[ShardRecord, Path]]:
        for shard, whole, index, last in self._fetched(shards):
            yield shard, self._cut(shard, whole, index, last=last)

    def contents(self, shards: Sequence[ShardRecord]) -> Iterator[tuple[ShardRecord, bytes]]:
        """Each shard's result as bytes: no file per shard (on a busy host each file's open,
        write and unlink waits for the GIL again: most of RsltProc's second at 1,000 noop
        shards). A whole object is read whole: for workloads whose results are small."""
        for shard, whole, _, last in self._fetched(shards):
            if shard.result_offset is None:
                yield shard, whole.read_bytes()
            else:
                yield shard, self._member(shard, whole, last=last)

    def _fetched(
        self, shards: Sequence[ShardRecord]
    ) -> Iterator[tuple[ShardRecord, Path, int, bool]]:
        """(shard, its object's local file, index, whether the object's last use), with the
        object fetched; the file is deleted after its last use."""
        keys = list(dict.fromkeys(str(s.result_key) for s in shards))
        last_use = {str(s.result_key): i for i, s in enumerate(shards)}
        names = {key: self._root / f"object-{n:07d}" for n, key in enumerate(keys)}
        queued = iter(keys)
        fetching: dict[str, Future[None]] = {}  # fetched or in flight, not yet used up
        with ThreadPoolExecutor(self._window, thread_name_prefix="rslt-fetch") as pool:

            def submit_next() -> bool:
                key = next(queued, None)
                if key is not None:
                    fetching[key] = pool.submit(self._objects.fetch, self._bucket, key, names[key])
                return key is not None

            for index, shard in enumerate(shards):
                key = str(shard.result_key)
                while key not in fetching and submit_next():  # packs interleaved past the window
                    pass
                while len(fetching) < self._window and submit_next():
                    pass
                fetching[key].result()
                yield shard, names[key], index, last_use[key] == index
                if last_use[key] == index:
                    del fetching[key]
                    names[key].unlink(missing_ok=True)

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
        start = shard.result_offset or 0
        end = None if shard.result_bytes is None else start + shard.result_bytes
        data = self._pack[1][start:end]
        if last:
            self._pack = None
        return data
