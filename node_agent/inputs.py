"""Staging a mission's inputs on local disk: the sample (pinned version) and the library.

The reference library is cached by bucket/key/ETag: nodes that share a disk (the local pool,
or an AMI with a warm cache) download it once, and a changed object is a different entry.
Downloads land in a temporary name and are renamed, so a crash never leaves a half file that
a later run would trust.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from workflow.params import MissionParams
from workflow.planning import parse_s3_uri
from workflow.ports import ObjectStore
from workflow.request import SampleRef
from workflow.workloads.base import WorkInputs


@dataclass(frozen=True)
class StagedInputs:
    inputs: WorkInputs
    bytes_downloaded: int
    library_cached: bool


def cache_name(bucket: str, key: str, etag: str) -> str:
    """A file name for one object version: stable, filesystem-safe, collision-free."""
    digest = hashlib.sha256(f"{bucket}\0{key}\0{etag}".encode()).hexdigest()[:32]
    return f"{digest}{Path(key).suffix if len(Path(key).suffix) <= 16 else ''}"


def _download(
    objects: ObjectStore, bucket: str, key: str, dest: Path, version_id: str | None
) -> int:
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=".part-")
    os.close(fd)
    try:
        objects.download(bucket, key, Path(tmp), version_id=version_id)
        os.replace(tmp, dest)
    finally:
        Path(tmp).unlink(missing_ok=True)
    return dest.stat().st_size


def fetch_library(objects: ObjectStore, uri: str, cache_dir: Path) -> tuple[Path, int, bool]:
    """The library at ``uri`` on local disk: (path, bytes downloaded, was cached)."""
    bucket, key = parse_s3_uri(uri)
    head = objects.head(bucket, key)
    path = cache_dir / cache_name(bucket, key, head.etag)
    if path.is_file() and path.stat().st_size == head.size:
        return path, 0, True
    return path, _download(objects, bucket, key, path, head.version_id), False


def stage_inputs(
    objects: ObjectStore,
    sample: SampleRef,
    params: MissionParams,
    work_dir: Path,
    cache_dir: Path,
) -> StagedInputs:
    """Download what every shard of the unit reads; the workload default when no library."""
    local = work_dir / "sample"
    size = _download(objects, sample.bucket, sample.key, local, sample.version_id)
    reference: Path | None = None
    cached = False
    if params.library:
        reference, fetched, cached = fetch_library(objects, params.library, cache_dir)
        size += fetched
    inputs = WorkInputs(sample=local, reference=reference, options=params.workload_options())
    return StagedInputs(inputs, size, cached)
