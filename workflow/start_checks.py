"""The checks a mission passes before anything is written or started, in one place.

PlanMission runs them on the execution input; ``lighthpc start`` runs them before it sends
StartExecution, so a start the CLI accepts is one PlanMission accepts, and both refuse the
same input with the same ``Mission.InvalidInput`` words. The order is the user's: where the
sample is, which profile, the merged params, then the sample itself (the only S3 call).
AWS stays outside: the profile lookup and the sample's HEAD are callables handed in.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from workflow.errors import MissionInvalidInput, ObjectUnavailable
from workflow.params import MissionParams, parse_params
from workflow.ports import MissionStore, ObjectHead, ObjectStore
from workflow.request import MissionRequest, SampleRef
from workflow.settings import Settings

# PlanMission downloads the sample into a Lambda's /tmp (512 MB unless configured).
MAX_SAMPLE_BYTES = 512 * 1024 * 1024


class ProfileParams(Protocol):
    def __call__(self, name: str, /) -> Mapping[str, Any] | None:
        """The params stored under profile ``name``; None when there is no such profile."""


class HeadSample(Protocol):
    def __call__(self, sample: SampleRef, /) -> ObjectHead:
        """HEAD ``sample``; ``ObjectUnavailable`` when the input is at fault (missing,
        forbidden, a bad version id), any other error when the service is."""


@dataclass(frozen=True)
class ValidStart:
    """A start that passed every check: the effective params and the pinned sample."""

    params: MissionParams
    sample: SampleRef


def stored_profiles(store: MissionStore) -> ProfileParams:
    """The ``ProfileParams`` of MissionCfg profiles kept in ``store``."""

    def lookup(name: str) -> Mapping[str, Any] | None:
        profile = store.get_profile(name)
        return None if profile is None else dict(profile.params)

    return lookup


def object_head(objects: ObjectStore) -> HeadSample:
    """The ``HeadSample`` of the sample's object in ``objects``, at its version if pinned."""

    def head(sample: SampleRef) -> ObjectHead:
        return objects.head(sample.bucket, sample.key, version_id=sample.version_id)

    return head


def validate_start(
    request: MissionRequest,
    *,
    settings: Settings,
    profile_params: ProfileParams,
    head_sample: HeadSample,
) -> ValidStart:
    """Every start-time check, or ``Mission.InvalidInput`` naming the first that failed."""
    check_location(request.sample, settings)
    params = parse_params(
        _profile(request, settings, profile_params),
        request.params,
        min_heartbeat_seconds=settings.min_heartbeat_seconds,
    )
    return ValidStart(params=params, sample=_pinned(request.sample, head_sample))


def check_location(sample: SampleRef, settings: Settings) -> None:
    """Only the watched source bucket and prefix start missions."""
    if sample.bucket != settings.source_bucket:
        raise MissionInvalidInput(
            f"bucket {sample.bucket!r} is not the mission source bucket {settings.source_bucket!r}"
        )
    if not sample.key.startswith(settings.source_prefix):
        raise MissionInvalidInput(
            f"key {sample.key!r} is outside the watched prefix {settings.source_prefix!r}"
        )


def _profile(
    request: MissionRequest, settings: Settings, profile_params: ProfileParams
) -> Mapping[str, Any]:
    """The named profile (which must exist), else the default one (which may not)."""
    name = request.profile or settings.default_profile
    params = profile_params(name)
    if params is None:
        if request.profile is not None:
            raise MissionInvalidInput(f"unknown MissionCfg profile {name!r}")
        return {}
    return params


def _pinned(sample: SampleRef, head_sample: HeadSample) -> SampleRef:
    """The sample as HEAD sees it: readable, not empty, not over the limit, and pinned to
    the version HEAD saw (so a later upload to the same key cannot change the mission)."""
    try:
        head = head_sample(sample)
    except ObjectUnavailable as exc:
        raise MissionInvalidInput(f"sample {sample.uri} cannot be read ({exc.code})") from exc
    if head.size == 0:
        raise MissionInvalidInput(f"sample {sample.uri} is empty")
    if head.size > MAX_SAMPLE_BYTES:
        raise MissionInvalidInput(
            f"sample {sample.uri} is {head.size} bytes; limit {MAX_SAMPLE_BYTES}"
        )
    return SampleRef(
        bucket=sample.bucket,
        key=sample.key,
        etag=head.etag or sample.etag,
        version_id=head.version_id or sample.version_id,
        size=head.size,
    )
