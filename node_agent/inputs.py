"""Staging a mission's inputs on local disk: the sample and the library, each at the version
PlanMission pinned in the mission item, so an upload to the same key mid-mission cannot give
two nodes different bytes.

The reference library is cached by bucket/key/version/ETag: nodes that share a disk (the local
pool, or an AMI with a warm cache) download it once, and a changed object is a different entry.
Downloads land in a temporary name and are renamed, so a crash never leaves a half file that
a later run would trust.

A job bundle is downloaded at its pinned version, checked against the sha256 PlanMission
recorded, verified and extracted once per node into the attempt's work directory; its entry
becomes the ``command`` workload's argv, with ``{bundle}`` that directory and ``{python}``
this interpreter (the node's venv, built from its wheelhouse).
"""

from __future__ import annotations

import hashlib
import os
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from workflow.bundles import (
    MAX_ARCHIVE_BYTES,
    BundleRef,
    extract_bundle,
    missing_requirements,
    resolve_entry,
    sha256_of,
)
from workflow.errors import BundleInvalid
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


def cache_name(bucket: str, key: str, etag: str, version_id: str | None = None) -> str:
    """A file name for one object version: stable, filesystem-safe, collision-free."""
    material = f"{bucket}\0{key}\0{etag}\0{version_id or ''}"
    digest = hashlib.sha256(material.encode()).hexdigest()[:32]
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


def fetch_library(
    objects: ObjectStore, library: SampleRef, cache_dir: Path
) -> tuple[Path, int, bool]:
    """The pinned library on local disk: (path, bytes downloaded, was cached)."""
    head = objects.head(library.bucket, library.key, version_id=library.version_id)
    path = cache_dir / cache_name(library.bucket, library.key, head.etag, head.version_id)
    if path.is_file() and path.stat().st_size == head.size:
        return path, 0, True
    size = _download(objects, library.bucket, library.key, path, library.version_id)
    return path, size, False


def unpinned_library(uri: str) -> SampleRef:
    """A library named by URI only (a mission planned before libraries were pinned): the
    version current when the node reads it."""
    bucket, key = parse_s3_uri(uri)
    return SampleRef(bucket, key)


def stage_bundle(objects: ObjectStore, bundle: BundleRef, work_dir: Path) -> tuple[Path, int]:
    """The pinned bundle extracted under ``work_dir``: (its directory, bytes downloaded).
    Raises ``Bundle.Invalid`` when the bytes are not the ones planned or not safe."""
    ref = bundle.ref
    archive = work_dir / "bundle.archive"
    size = _download(objects, ref.bucket, ref.key, archive, ref.version_id)
    if size > MAX_ARCHIVE_BYTES:
        raise BundleInvalid(f"{ref.uri} is {size} bytes, more than the bundle limit")
    digest = sha256_of(archive)
    if digest != bundle.sha256:
        raise BundleInvalid(
            f"{ref.uri} has sha256 {digest}, not the {bundle.sha256} pinned at planning"
        )
    target = work_dir / "bundle"
    listing = extract_bundle(archive, target)
    archive.unlink()
    missing = missing_requirements(listing.manifest.requirements)
    if missing:
        raise BundleInvalid(
            f"{ref.uri} requires {', '.join(missing)}, not installed on the node "
            "(requirements come from the node's wheelhouse only)"
        )
    return target, size


def stage_inputs(
    objects: ObjectStore,
    sample: SampleRef,
    params: MissionParams,
    work_dir: Path,
    cache_dir: Path,
    *,
    library: SampleRef | None,
    bundle: BundleRef | None = None,
) -> StagedInputs:
    """Download what every shard of the unit reads, at the mission's pinned versions; the
    workload's built-in library when the mission names none."""
    local = work_dir / "sample"
    size = _download(objects, sample.bucket, sample.key, local, sample.version_id)
    reference: Path | None = None
    cached = False
    if library is None and params.library:
        library = unpinned_library(params.library)
    if library is not None:
        reference, fetched, cached = fetch_library(objects, library, cache_dir)
        size += fetched
    options = params.workload_options()
    if bundle is not None:
        bundle_dir, fetched = stage_bundle(objects, bundle, work_dir)
        size += fetched
        options["argv"] = resolve_entry(options["argv"], bundle_dir, sys.executable)
    inputs = WorkInputs(sample=local, reference=reference, options=options)
    return StagedInputs(inputs, size, cached)
