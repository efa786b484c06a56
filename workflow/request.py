"""The execution input, in both of its forms, normalised into one ``MissionRequest``.

Form 1: the EventBridge "Object Created" event from the source bucket (raw event as input).
Form 2: a manual StartExecution ``{"input": {"bucket", "key", "versionId"?}, "params": {...},
"profile"?, "rerunOf"?}`` (``rerunOf``: a mission whose failed shards this one re-runs,
``workflow.rerun``). Anything else is ``Mission.InvalidInput`` with a message that says what was
expected, never a stack trace.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from workflow.errors import MissionInvalidInput
from workflow.params import describe_validation_error

PROFILE_NAME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.")
_MANUAL_KEYS = frozenset({"input", "params", "profile", "rerunOf"})
MISSION_ID_MAX = 64
_INPUT_KEYS = frozenset({"bucket", "key", "versionId"})
KEY_BYTES_MAX = 1024  # S3's limit on an object key
BUCKET_NAME_MAX = 63  # S3's limit on a bucket name


@dataclass(frozen=True)
class SampleRef:
    """Where the sample lives; ``etag``/``version_id`` pin the exact object version."""

    bucket: str
    key: str
    etag: str | None = None
    version_id: str | None = None
    size: int | None = None

    @property
    def uri(self) -> str:
        return f"s3://{self.bucket}/{self.key}"


@dataclass(frozen=True)
class MissionRequest:
    source: Literal["s3-event", "manual"]
    sample: SampleRef
    params: Mapping[str, Any] = field(default_factory=dict)
    profile: str | None = None
    rerun_of: str | None = None

    def dedupe_key(self, sample: SampleRef) -> str:
        """Same object version + same overrides (+ same rerun) → same key (→ same missionId)."""
        fields: dict[str, Any] = {
            "bucket": sample.bucket,
            "key": sample.key,
            "etag": sample.etag,
            "version": sample.version_id,
            "params": self.params,
            "profile": self.profile,
        }
        if self.rerun_of is not None:  # absent otherwise: older missions keep their ids
            fields["rerunOf"] = self.rerun_of
        material = json.dumps(
            fields,
            sort_keys=True,
            separators=(",", ":"),
        )
        return hashlib.sha256(material.encode()).hexdigest()


def parse_execution_input(event: Any) -> MissionRequest:
    """Normalise either input form; raise ``MissionInvalidInput`` with a readable cause."""
    if not isinstance(event, Mapping):
        raise MissionInvalidInput(
            f"execution input must be a JSON object, got {type(event).__name__}"
        )
    if event.get("source") == "aws.s3" or "detail-type" in event:
        return _from_s3_event(event)
    return _from_manual(event)


class _S3Bucket(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)
    name: str = Field(min_length=1, max_length=BUCKET_NAME_MAX)


class _S3Object(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)
    key: str = Field(min_length=1)
    etag: str | None = Field(None, max_length=256)
    version_id: str | None = Field(None, alias="version-id", max_length=1024)
    size: int | None = Field(None, strict=True, ge=0)


class _S3Detail(BaseModel):
    """The fields of EventBridge's S3 "Object Created" detail that a mission reads."""

    model_config = ConfigDict(extra="ignore", frozen=True)
    bucket: _S3Bucket
    object: _S3Object


def _from_s3_event(event: Mapping[str, Any]) -> MissionRequest:
    kind = event.get("detail-type")
    if kind != "Object Created":
        shown = repr(kind)[:64]
        raise MissionInvalidInput(f"unsupported event {shown}: expected 'Object Created'")
    try:
        detail = _S3Detail.model_validate(event.get("detail"))
    except ValidationError as exc:
        raise MissionInvalidInput(describe_validation_error(exc, "detail")) from exc
    obj = detail.object
    return MissionRequest(
        source="s3-event",
        sample=SampleRef(
            bucket=detail.bucket.name,
            key=_key(obj.key, "detail.object.key"),
            etag=obj.etag,
            version_id=obj.version_id,
            size=obj.size,
        ),
    )


def _key(value: str, where: str) -> str:
    """An S3 key as S3 allows it: at most 1,024 UTF-8 bytes."""
    size = len(value.encode("utf-8", "surrogatepass"))
    if size > KEY_BYTES_MAX:
        raise MissionInvalidInput(
            f"{where} is {size} bytes long; S3 keys are at most {KEY_BYTES_MAX} bytes"
        )
    return value


def _from_manual(event: Mapping[str, Any]) -> MissionRequest:
    unknown = sorted(set(event) - _MANUAL_KEYS)
    if unknown:
        raise MissionInvalidInput(
            f"unknown top-level field(s) {', '.join(n[:64] for n in unknown[:5])}; expected "
            '{"input": {"bucket": ..., "key": ...}, "params": {...}, "profile": ..., '
            '"rerunOf": ...}'
        )
    body = event.get("input")
    if not isinstance(body, Mapping):
        raise MissionInvalidInput('"input" must be an object {"bucket": ..., "key": ...}')
    extra = sorted(set(body) - _INPUT_KEYS)
    if extra:
        shown = ", ".join(n[:64] for n in extra[:5])
        raise MissionInvalidInput(f"unknown field(s) in input: {shown}")
    params = event.get("params", {})
    if not isinstance(params, Mapping):
        raise MissionInvalidInput(f'"params" must be an object, got {type(params).__name__}')
    profile = event.get("profile")
    if profile is not None:
        profile = validate_profile_name(profile)
    version = body.get("versionId")
    rerun_of = event.get("rerunOf")
    if rerun_of is not None:
        rerun_of = _str(rerun_of, "rerunOf")
        if len(rerun_of) > MISSION_ID_MAX:
            raise MissionInvalidInput(f"rerunOf is longer than {MISSION_ID_MAX} characters")
    return MissionRequest(
        source="manual",
        sample=SampleRef(
            bucket=_str(body.get("bucket"), "input.bucket"),
            key=_key(_str(body.get("key"), "input.key"), "input.key"),
            version_id=_str(version, "input.versionId") if version is not None else None,
        ),
        params=dict(params),
        profile=profile,
        rerun_of=rerun_of,
    )


def validate_profile_name(name: Any) -> str:
    if not isinstance(name, str) or not name or len(name) > 64:
        raise MissionInvalidInput("profile must be a name of 1-64 characters")
    if not set(name) <= PROFILE_NAME_CHARS:
        raise MissionInvalidInput(f"profile {name!r} may only use letters, digits, '-', '_', '.'")
    return name


def _str(value: Any, where: str) -> str:
    if not isinstance(value, str) or not value:
        raise MissionInvalidInput(f"{where} is missing or not a non-empty string")
    return value
