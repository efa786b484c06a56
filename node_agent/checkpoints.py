"""Shard checkpoints in S3: attempt-specific keys, the position in object metadata.

Checkpoints are progress caches (results are deterministic), so a later attempt resumes from
the checkpoint with the highest position among *all* attempts of the shard, even one uploaded
late by a superseded attempt. The position lives in S3 object metadata so choosing needs
only ``ListObjectsV2`` + ``HeadObject``, never a download of every payload.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from workflow.keys import KIND_CHECKPOINT, checkpoint_key, checkpoint_prefix, kind_tagging

POSITION_METADATA: Final = "position"
_ATTEMPT_IN_KEY: Final = re.compile(r"attempt-(\d+)\.ckpt$")


@dataclass(frozen=True)
class CheckpointRef:
    key: str
    position: int
    attempt: int


def attempt_of(key: str) -> int:
    """The attempt number encoded in a checkpoint key (0 when the key is foreign)."""
    match = _ATTEMPT_IN_KEY.search(key)
    return int(match.group(1)) if match else 0


def parse_position(metadata: Mapping[str, str]) -> int | None:
    """The ``position`` metadata as a non-negative int; None when absent or garbled."""
    raw = metadata.get(POSITION_METADATA)
    if raw is None or not raw.strip().isdigit():
        return None
    return int(raw)


def pick_newest(refs: Iterable[CheckpointRef], start: int, end: int) -> CheckpointRef | None:
    """The usable checkpoint with the highest position (ties: the later attempt)."""
    usable = [r for r in refs if start <= r.position <= end]
    return max(usable, key=lambda r: (r.position, r.attempt, r.key), default=None)


class CheckpointStore:
    """Checkpoint objects of one mission in the result bucket."""

    def __init__(self, s3: Any, bucket: str, mission_id: str) -> None:
        self._s3 = s3
        self.bucket = bucket
        self.mission_id = mission_id

    def upload(self, shard_id: str, attempt: int, data: bytes, position: int) -> str:
        key = checkpoint_key(self.mission_id, shard_id, attempt)
        self._s3.put_object(
            Bucket=self.bucket,
            Key=key,
            Body=data,
            Metadata={POSITION_METADATA: str(position)},
            ContentType="application/octet-stream",
            Tagging=kind_tagging(KIND_CHECKPOINT),  # expired by the bucket's lifecycle rule
        )
        return key

    def candidates(self, shard_id: str) -> list[CheckpointRef]:
        prefix = checkpoint_prefix(self.mission_id, shard_id)
        refs: list[CheckpointRef] = []
        paginator = self._s3.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self.bucket, Prefix=prefix):
            for obj in page.get("Contents", []):
                key = str(obj["Key"])
                head = self._s3.head_object(Bucket=self.bucket, Key=key)
                position = parse_position(head.get("Metadata", {}))
                if position is not None:
                    refs.append(CheckpointRef(key, position, attempt_of(key)))
        return refs

    def newest(self, shard_id: str, start: int, end: int) -> CheckpointRef | None:
        return pick_newest(self.candidates(shard_id), start, end)

    def resume_point(
        self, shard_id: str, start: int, end: int, *, claimed_before: bool
    ) -> tuple[CheckpointRef | None, bytes | None]:
        """The newest usable checkpoint and its payload. A shard no attempt ever claimed
        cannot have one, so it costs no request (every shard of a first attempt)."""
        if not claimed_before:
            return None, None
        ref = self.newest(shard_id, start, end)
        return (None, None) if ref is None else (ref, self.download(ref))

    def download(self, ref: CheckpointRef) -> bytes:
        body = self._s3.get_object(Bucket=self.bucket, Key=ref.key)["Body"]
        return bytes(body.read())


@dataclass
class _ShardUploads:
    lock: threading.Lock = field(default_factory=threading.Lock)
    position: int = -1
    key: str | None = None


class CheckpointUploader:
    """Uploads checkpoints as they come, never replacing a newer one with an older one.

    Periodic checkpoints arrive through a queue while the final one (on stop) arrives with
    the shard's outcome; whichever is uploaded last, S3 keeps the highest position.
    """

    def __init__(self, store: CheckpointStore, attempt: int) -> None:
        self._store = store
        self._attempt = attempt
        self._lock = threading.Lock()
        self._shards: dict[str, _ShardUploads] = {}
        self.bytes_uploaded = 0
        self.uploads = 0

    def _state(self, shard_id: str) -> _ShardUploads:
        with self._lock:
            return self._shards.setdefault(shard_id, _ShardUploads())

    def offer(self, shard_id: str, data: bytes, position: int) -> str | None:
        """Upload when newer than what is stored; returns the key holding the newest."""
        state = self._state(shard_id)
        with state.lock:
            if position > state.position and data:
                state.key = self._store.upload(shard_id, self._attempt, data, position)
                state.position = position
                with self._lock:
                    self.bytes_uploaded += len(data)
                    self.uploads += 1
            return state.key

    def latest(self, shard_id: str) -> tuple[str | None, int]:
        state = self._state(shard_id)
        with state.lock:
            return state.key, state.position
