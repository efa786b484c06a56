"""``validate_start``: the start-time checks, and the two callers that must agree on them
(PlanMission on the execution input, ``lighthpc start`` before StartExecution)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest
from botocore.exceptions import ClientError
from hypothesis import given
from hypothesis import strategies as st

from cli.remote import RemoteStack, RemoteUnavailable, start_mission
from workflow.aws.s3 import S3ObjectStore
from workflow.aws.services import Services
from workflow.errors import MissionInvalidInput, ObjectUnavailable
from workflow.planning import plan_mission
from workflow.ports import ObjectHead
from workflow.records import ProfileRecord
from workflow.request import MissionRequest, SampleRef
from workflow.settings import Settings
from workflow.start_checks import (
    MAX_SAMPLE_BYTES,
    check_location,
    object_head,
    validate_start,
)

SETTINGS = Settings(source_bucket="src", source_prefix="incoming/", default_profile="default")
PROFILES: dict[str, dict[str, Any]] = {
    "default": {"workload": "noop", "shards": 2},
    "few-items": {"workload": "noop", "items": 3},
}


def _error(status: int, code: str | None = None) -> ClientError:
    return ClientError(
        {"Error": {"Code": code or str(status)}, "ResponseMetadata": {"HTTPStatusCode": status}},
        "HeadObject",
    )


# key -> (size, etag, version) or the ClientError a HEAD of it raises
OBJECTS: dict[str, tuple[int, str, str | None] | ClientError] = {
    "incoming/ok.txt": (6, '"e-tag"', "v-7"),
    "incoming/empty.txt": (0, '"e0"', None),
    "incoming/huge.txt": (MAX_SAMPLE_BYTES + 1, '"eh"', None),
    "incoming/forbidden.txt": _error(403),
    "incoming/bad-request.txt": _error(400),
    "incoming/slow.txt": _error(503, "SlowDown"),
}


class FakeS3:
    def head_object(self, **kwargs: Any) -> dict[str, Any]:
        found = OBJECTS.get(kwargs["Key"], _error(404))
        if isinstance(found, ClientError):
            raise found
        size, etag, version = found
        return {"ContentLength": size, "ETag": etag, **({"VersionId": version} if version else {})}


class FakeStore:
    def get_profile(self, name: str) -> ProfileRecord | None:
        params = PROFILES.get(name)
        return None if params is None else ProfileRecord(name, params)


class FakeSfn:
    def __init__(self) -> None:
        self.started: list[dict[str, Any]] = []

    def start_execution(self, **kwargs: Any) -> dict[str, Any]:
        self.started.append(kwargs)
        return {"executionArn": "arn:aws:states:::execution:m:x"}


def services() -> Services:
    store: Any = FakeStore()
    none: Any = None
    return Services(
        SETTINGS, FakeS3(), None, FakeSfn(), None, None, store, S3ObjectStore(FakeS3()), none, none
    )


def check(
    key: str = "incoming/ok.txt",
    params: Mapping[str, Any] | None = None,
    profile: str | None = None,
    bucket: str = "src",
) -> Any:
    request = MissionRequest("manual", SampleRef(bucket, key), dict(params or {}), profile)
    return validate_start(
        request,
        settings=SETTINGS,
        profile_params=PROFILES.get,
        head_sample=object_head(S3ObjectStore(FakeS3())),
    )


def test_params_merge_request_over_profile_over_defaults() -> None:
    start = check(params={"shards": 1})
    assert (start.params.workload, start.params.shards) == ("noop", 1)
    assert start.params.max_nodes == 4  # the table's default


def test_the_sample_is_pinned_to_the_version_head_saw() -> None:
    start = check()
    assert start.sample == SampleRef("src", "incoming/ok.txt", "e-tag", "v-7", 6)


def test_a_missing_default_profile_is_no_error_but_a_missing_named_one_is() -> None:
    request = MissionRequest("manual", SampleRef("src", "incoming/ok.txt"))
    start = validate_start(
        request,
        settings=SETTINGS,
        profile_params=lambda name: None,
        head_sample=lambda sample: ObjectHead(size=1, etag="e", version_id=None),
    )
    assert start.params.shards == 8
    with pytest.raises(MissionInvalidInput, match="unknown MissionCfg profile 'nope'"):
        check(profile="nope")


def test_a_service_failure_is_not_an_invalid_input() -> None:
    with pytest.raises(ClientError, match="SlowDown"):
        check("incoming/slow.txt")


def test_an_input_fault_is_unreadable_whatever_its_4xx() -> None:
    for key, code in (("incoming/forbidden.txt", "403"), ("incoming/bad-request.txt", "400")):
        with pytest.raises(ObjectUnavailable) as info:
            object_head(S3ObjectStore(FakeS3()))(SampleRef("src", key))
        assert info.value.code == code


@given(st.sampled_from(["src", "other"]), st.text(max_size=20))
def test_only_the_watched_bucket_and_prefix_start_missions(bucket: str, key: str) -> None:
    sample = SampleRef(bucket, key)
    allowed = bucket == "src" and key.startswith("incoming/")
    try:
        check_location(sample, SETTINGS)
    except MissionInvalidInput:
        assert not allowed
    else:
        assert allowed


# (what, sample key, params, profile, the words of the refusal), bucket "src" unless the
# key says otherwise.
REFUSED: list[tuple[str, str, dict[str, Any], str | None, str]] = [
    ("another bucket", "s3://other/incoming/ok.txt", {}, None, "not the mission source bucket"),
    ("outside the prefix", "elsewhere/ok.txt", {}, None, "outside the watched prefix"),
    ("unknown profile", "incoming/ok.txt", {}, "nope", "unknown MissionCfg profile 'nope'"),
    ("bad profile name", "incoming/ok.txt", {}, "no spaces", "may only use letters"),
    ("bad params", "incoming/ok.txt", {"shards": 0}, None, "params.shards"),
    ("bad once merged", "incoming/ok.txt", {"shards": 5}, "few-items", "cannot exceed items"),
    ("missing sample", "incoming/none.txt", {}, None, "cannot be read (404)"),
    ("forbidden sample", "incoming/forbidden.txt", {}, None, "cannot be read (403)"),
    ("bad request", "incoming/bad-request.txt", {}, None, "cannot be read (400)"),  # drifted
    ("empty sample", "incoming/empty.txt", {}, None, "is empty"),
    ("sample too large", "incoming/huge.txt", {}, None, f"limit {MAX_SAMPLE_BYTES}"),  # drifted
]


def _uri(key: str) -> str:
    return key if key.startswith("s3://") else f"s3://src/{key}"


def _event(key: str, params: dict[str, Any], profile: str | None) -> dict[str, Any]:
    bucket, _, path = _uri(key).removeprefix("s3://").partition("/")
    event: dict[str, Any] = {"input": {"bucket": bucket, "key": path}, "params": params}
    return event if profile is None else {**event, "profile": profile}


@pytest.mark.parametrize(
    ("what", "key", "params", "profile", "says"), REFUSED, ids=[r[0] for r in REFUSED]
)
def test_plan_mission_and_lighthpc_start_refuse_alike(
    what: str, key: str, params: dict[str, Any], profile: str | None, says: str
) -> None:
    """Same input, same ``Mission.InvalidInput`` words, from both callers; the CLI sends
    nothing. (Before one validate_start, the CLI started a too-large sample and called a
    400 a remote failure.)"""
    with pytest.raises(MissionInvalidInput) as planned:
        plan_mission(_event(key, params, profile), "arn:execution", services().ports)
    svc = services()
    stack = RemoteStack("s", SETTINGS, "arn:aws:states:::stateMachine:m")
    with pytest.raises(MissionInvalidInput) as started:
        start_mission(stack, svc, _uri(key), params, profile=profile)
    assert str(planned.value) == str(started.value), what
    assert says in str(started.value)
    assert svc.sfn.started == []


def test_both_callers_pass_a_service_failure_through_as_one() -> None:
    with pytest.raises(ClientError):
        plan_mission(_event("incoming/slow.txt", {}, None), "arn:execution", services().ports)
    stack = RemoteStack("s", SETTINGS, "arn:aws:states:::stateMachine:m")
    with pytest.raises(RemoteUnavailable, match="SlowDown"):
        start_mission(stack, services(), "s3://src/incoming/slow.txt", {})
