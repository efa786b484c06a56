"""PlanMission: from an execution input to a written plan (or a duplicate, or a rejection).

Everything is validated before the first write; a failure after the first write rolls the
mission back, so a rejected input leaves no partial state.
"""

from __future__ import annotations

import hashlib
import json
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from workflow.budget import check_plan
from workflow.bundles import (
    MAX_ARCHIVE_BYTES,
    BundleManifest,
    BundleRef,
    inspect_bundle,
    sha256_of,
)
from workflow.errors import BundleInvalid, MissionInvalidInput, ObjectUnavailable
from workflow.keys import manifest_key
from workflow.lambda_room import LambdaRoom
from workflow.launching import choose_capacity
from workflow.params import MissionParams, parse_params
from workflow.planner import WorkUnit, pack_units, plan_shards
from workflow.ports import Ports
from workflow.records import MAX_LISTED_INVALID_LINES, MissionRecord
from workflow.request import MissionRequest, SampleRef, parse_execution_input
from workflow.rerun import RERUN_ID, RERUN_OF, check_same_inputs, rerun_base
from workflow.start_checks import object_head, stored_profiles, validate_start
from workflow.states import Capacity, MissionStatus
from workflow.workloads import load_workload
from workflow.workloads.base import WorkInputs


@dataclass(frozen=True)
class PlanResult:
    mission_id: str
    duplicate: bool
    units: int
    shards: int
    manifest_bucket: str
    manifest_key: str
    params: MissionParams
    max_concurrency: int = 1

    def as_output(self) -> dict[str, Any]:
        """The state output of PlanMission (small: the manifest stays in S3)."""
        return {
            "missionId": self.mission_id,
            "duplicate": self.duplicate,
            "manifest": {"bucket": self.manifest_bucket, "key": self.manifest_key},
            "units": self.units,
            "shards": self.shards,
            "maxConcurrency": self.max_concurrency,
            "heartbeatSeconds": self.params.heartbeat_seconds,
            "timeoutSeconds": self.params.timeout_seconds,
        }


def map_concurrency(max_nodes: int, units: int, node_cap: int = 0) -> int:
    """Work units the Map runs at once: one node each, at most maxNodes, and at most the
    deployment's ``max_concurrent_nodes`` when set (0: no cap)."""
    concurrency = min(max_nodes, max(units, 1))
    return min(concurrency, node_cap) if node_cap > 0 else concurrency


def expires_at(svc: Ports) -> int:
    """TTL of the mission's items: retention counted from planning (a mission cannot run
    longer than its timeoutSeconds, at most a week, so it always ends well before)."""
    return int(time.time()) + svc.settings.retention_days * 86_400


def mission_id_for(dedupe_key: str) -> str:
    return f"m-{dedupe_key[:16]}"


def plan_mission(
    event: Any, execution_arn: str, svc: Ports, room: LambdaRoom | None = None
) -> PlanResult:
    """Plan the mission; ``room`` (the invocation's memory and /tmp) refuses inputs that
    cannot fit before they are downloaded (None: no limit, as on a laptop)."""
    request = parse_execution_input(event)
    rerun = None if request.rerun_of is None else rerun_base(svc.store, request.rerun_of)
    start = validate_start(
        request,
        settings=svc.settings,
        profile_params=stored_profiles(svc.store),
        head_sample=object_head(svc.objects),
    )
    params, sample = start.params, start.sample
    if rerun is not None:
        check_same_inputs(rerun.old, sample, params)
    library = pin_library(params, svc) if rerun is None else rerun.old.library
    # A rerun reads the old mission's pinned bundle version, never the key's newest one.
    bundle_head = pin_bundle_version(params, svc) if rerun is None else _pinned(rerun.old.bundle)
    if room is not None:
        room.check_inputs(_input_sizes(sample, library, bundle_head))
    bundle: BundleRef | None = None
    with tempfile.TemporaryDirectory(prefix="lighthpc-plan-") as tmp:
        if bundle_head is not None:
            bundle, manifest = fetch_bundle(bundle_head, svc, Path(tmp))
            params = with_manifest(params, manifest, bundle_head.uri)
        inputs = fetch_inputs(sample, library, params, svc, Path(tmp))
        workload = load_workload(params.workload)
        report = workload.validate(inputs)
        if report.items == 0:
            raise MissionInvalidInput(f"sample {sample.uri} has no usable records")
        shards = plan_shards(workload.count_items(inputs), params.shards)
    if rerun is not None:  # the old mission's failed shards, ids and ranges unchanged
        shards = list(rerun.ranges)
    units = pack_units(shards, params.max_nodes)
    check_plan(params, len(shards), len(units), _first_capacity(params))
    mission_id = mission_id_for(_dedupe_key(request, sample, bundle))
    result = PlanResult(
        mission_id=mission_id,
        duplicate=False,
        units=len(units),
        shards=len(shards),
        manifest_bucket=svc.settings.result_bucket,
        manifest_key=manifest_key(mission_id),
        params=params,
        max_concurrency=map_concurrency(
            params.max_nodes, len(units), svc.settings.max_concurrent_nodes
        ),
    )
    ttl = expires_at(svc)
    record = _mission_record(
        mission_id,
        request=request,
        sample=sample,
        params=params,
        plan=result,
        execution_arn=execution_arn,
        expires=ttl,
        invalid_lines=report.invalid_lines,
        library=library,
        bundle=bundle,
    )
    if rerun is not None:
        record = replace(record, extra={RERUN_OF: rerun.old.mission_id})
    existing = svc.store.create_mission(record)
    if existing is not None and existing.execution_arn != execution_arn:
        return PlanResult(**{**result.__dict__, "duplicate": True})
    _write_plan(mission_id, units, result, svc, created=existing is None, ttl=ttl)
    if rerun is not None:
        svc.store.update_mission(rerun.old.mission_id, {RERUN_ID: mission_id})
    return result


def _first_capacity(params: MissionParams) -> Capacity:
    """How every unit's first node is bought (LaunchNode's rule, before any interruption)."""
    return choose_capacity(
        0, params.spot_attempts, spot_capacity_errors=params.spot_capacity_errors
    )


def parse_s3_uri(uri: str) -> tuple[str, str]:
    bucket, _, key = uri.removeprefix("s3://").partition("/")
    if not bucket or not key:
        raise MissionInvalidInput(f"{uri!r} is not an s3://bucket/key URI")
    return bucket, key


def pin_library(params: MissionParams, svc: Ports) -> SampleRef | None:
    """The library named by ``params`` as HEAD sees it now: the version every node of the
    mission will read (None: the workload's built-in library)."""
    if not params.library:
        return None
    bucket, key = parse_s3_uri(params.library)
    try:
        head = svc.objects.head(bucket, key)
    except ObjectUnavailable as exc:
        raise MissionInvalidInput(f"library {params.library} cannot be read ({exc.code})") from exc
    return SampleRef(bucket, key, etag=head.etag, version_id=head.version_id, size=head.size)


def pin_bundle_version(params: MissionParams, svc: Ports) -> SampleRef | None:
    """The bundle named by ``params`` as HEAD sees it now, refused past the size limit
    before a byte is downloaded (None: the mission names no bundle)."""
    if not params.bundle:
        return None
    bucket, key = parse_s3_uri(params.bundle)
    try:
        head = svc.objects.head(bucket, key)
    except ObjectUnavailable as exc:
        raise MissionInvalidInput(f"bundle {params.bundle} cannot be read ({exc.code})") from exc
    if head.size > MAX_ARCHIVE_BYTES:
        raise MissionInvalidInput(
            f"bundle {params.bundle}: is {head.size} bytes, more than "
            f"{MAX_ARCHIVE_BYTES // 2**20} MiB"
        )
    return SampleRef(bucket, key, etag=head.etag, version_id=head.version_id, size=head.size)


def _pinned(bundle: BundleRef | None) -> SampleRef | None:
    return None if bundle is None else bundle.ref


def fetch_bundle(head: SampleRef, svc: Ports, into: Path) -> tuple[BundleRef, BundleManifest]:
    """Download the bundle at its pinned version and verify it as a node will (members,
    manifest, entry files); the sha256 recorded here is what every node checks."""
    local = into / "bundle.archive"
    try:
        svc.objects.download(head.bucket, head.key, local, version_id=head.version_id)
        listing = inspect_bundle(local)
    except ObjectUnavailable as exc:
        raise MissionInvalidInput(f"bundle {head.uri} cannot be read ({exc.code})") from exc
    except BundleInvalid as exc:
        raise MissionInvalidInput(f"bundle {head.uri}: {exc}") from exc
    return BundleRef(head, sha256_of(local)), listing.manifest


def with_manifest(params: MissionParams, manifest: BundleManifest, uri: str) -> MissionParams:
    """The mission's params over the manifest's: its own shard knobs win, but the program
    is the bundle's (an ``argv`` other than the entry is refused, not silently dropped)."""
    own = params.to_wire()
    if "argv" in own and own["argv"] != list(manifest.entry):
        raise MissionInvalidInput(
            f"params.argv: bundle {uri} names its program in its manifest's entry; leave argv out"
        )
    return parse_params(manifest.mission_params(), own, what=f"bundle {uri}")


def _dedupe_key(request: MissionRequest, sample: SampleRef, bundle: BundleRef | None) -> str:
    """The request's key; a new bundle version is a new mission, as a new sample is."""
    key = request.dedupe_key(sample)
    if bundle is None:
        return key
    return hashlib.sha256(f"{key}\0{bundle.sha256}".encode()).hexdigest()


def _input_sizes(
    sample: SampleRef, library: SampleRef | None, bundle: SampleRef | None = None
) -> dict[str, int]:
    sizes = {f"sample {sample.uri}": sample.size or 0}
    if library is not None:
        sizes[f"library {library.uri}"] = library.size or 0
    if bundle is not None:
        sizes[f"bundle {bundle.uri}"] = bundle.size or 0
    return sizes


def fetch_inputs(
    sample: SampleRef, library: SampleRef | None, params: MissionParams, svc: Ports, into: Path
) -> WorkInputs:
    """Download the sample and the library, if any, at their pinned versions into ``into``."""
    local = into / "sample"
    svc.objects.download(sample.bucket, sample.key, local, version_id=sample.version_id)
    reference = None
    if library is not None:
        reference = into / "library"
        try:
            svc.objects.download(
                library.bucket, library.key, reference, version_id=library.version_id
            )
        except ObjectUnavailable as exc:
            raise MissionInvalidInput(f"library {library.uri} cannot be read") from exc
    return WorkInputs(sample=local, reference=reference, options=params.workload_options())


def _mission_record(
    mission_id: str,
    *,
    request: MissionRequest,
    sample: SampleRef,
    params: MissionParams,
    plan: PlanResult,
    execution_arn: str,
    expires: int,
    invalid_lines: Sequence[int],
    library: SampleRef | None,
    bundle: BundleRef | None = None,
) -> MissionRecord:
    return MissionRecord(
        mission_id=mission_id,
        status=MissionStatus.PLANNED,
        execution_arn=execution_arn,
        source=request.source,
        profile=request.profile,
        sample=sample,
        library=library,
        bundle=bundle,
        params=params.to_wire(),
        shards=plan.shards,
        units=plan.units,
        created_at=time.time(),
        expires_at=expires,
        invalid_sample_lines=tuple(invalid_lines[:MAX_LISTED_INVALID_LINES]),
        invalid_sample_count=len(invalid_lines),
    )


def _write_plan(
    mission_id: str,
    units: list[WorkUnit],
    plan: PlanResult,
    svc: Ports,
    *,
    created: bool,
    ttl: int,
) -> None:
    """Write tblTrans and the manifest; undo the mission on failure if this call created it."""
    try:
        svc.store.put_plan(mission_id, units, ttl)
        body = json.dumps([u.manifest_item() for u in units], separators=(",", ":"))
        svc.objects.put_bytes(
            plan.manifest_bucket, plan.manifest_key, body.encode(), content_type="application/json"
        )
        svc.store.update_mission(mission_id, {"status": MissionStatus.RUNNING.value})
    except Exception:
        if created:
            svc.store.delete_trans(mission_id)
            svc.store.delete_mission(mission_id)
        raise
