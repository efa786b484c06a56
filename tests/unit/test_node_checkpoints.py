"""Checkpoint selection (newest by position across attempts) and upload ordering."""

from __future__ import annotations

from typing import Any

import boto3
from hypothesis import given
from hypothesis import strategies as st
from moto import mock_aws

from localcloud.emulator import LOCAL_REGION
from node_agent.checkpoints import (
    CheckpointRef,
    CheckpointStore,
    CheckpointUploader,
    attempt_of,
    parse_position,
    pick_newest,
)
from workflow.keys import checkpoint_key


def ref(attempt: int, position: int) -> CheckpointRef:
    return CheckpointRef(checkpoint_key("m", "s000001", attempt), position, attempt)


def test_highest_position_wins_even_from_a_superseded_attempt() -> None:
    # Attempt 1 was superseded but uploaded its checkpoint late, further than attempt 2 got.
    refs = [ref(1, 180), ref(2, 120), ref(3, 40)]
    assert pick_newest(refs, 100, 200) == ref(1, 180)


def test_ties_go_to_the_later_attempt_and_out_of_range_is_ignored() -> None:
    assert pick_newest([ref(1, 150), ref(2, 150)], 100, 200) == ref(2, 150)
    assert pick_newest([ref(1, 250), ref(2, 50)], 100, 200) is None
    assert pick_newest([], 0, 10) is None


@given(st.lists(st.tuples(st.integers(1, 20), st.integers(0, 1000)), max_size=30))
def test_pick_newest_is_the_max_usable_position(pairs: list[tuple[int, int]]) -> None:
    refs = [ref(a, p) for a, p in pairs]
    chosen = pick_newest(refs, 100, 900)
    usable = [r.position for r in refs if 100 <= r.position <= 900]
    assert (chosen.position if chosen else None) == (max(usable) if usable else None)


def test_metadata_and_key_parsing() -> None:
    assert parse_position({"position": "120"}) == 120
    assert parse_position({"position": "-1"}) is None
    assert parse_position({"position": "x"}) is None
    assert parse_position({}) is None
    assert attempt_of(checkpoint_key("m", "s1", 7)) == 7
    assert attempt_of("elsewhere/file.bin") == 0


class FakeS3:
    def __init__(self) -> None:
        self.objects: dict[str, tuple[bytes, dict[str, str]]] = {}

    def put_object(self, **kwargs: Any) -> None:  # boto3 keyword names
        self.objects[kwargs["Key"]] = (kwargs["Body"], kwargs["Metadata"])


def test_uploader_never_replaces_a_newer_checkpoint_with_an_older_one() -> None:
    s3 = FakeS3()
    uploader = CheckpointUploader(CheckpointStore(s3, "bucket", "m"), attempt=2)
    key = uploader.offer("s1", b"at-30", 30)
    assert uploader.offer("s1", b"at-20", 20) == key  # arrived late through the queue
    assert uploader.offer("s1", b"", 40) == key  # an empty payload is no checkpoint
    assert key == checkpoint_key("m", "s1", 2)
    assert s3.objects[key] == (b"at-30", {"position": "30"})
    assert uploader.latest("s1") == (key, 30)
    assert uploader.latest("s2") == (None, -1)
    assert uploader.uploads == 1 and uploader.bytes_uploaded == 5


def test_resume_point_asks_s3_only_for_shards_claimed_before() -> None:
    with mock_aws():
        s3 = boto3.client("s3", region_name=LOCAL_REGION)
        s3.create_bucket(Bucket="bucket")
        calls: list[str] = []
        s3.meta.events.register("before-call.s3.*", lambda model, **_: calls.append(model.name))
        store = CheckpointStore(s3, "bucket", "m")
        assert store.resume_point("s1", 0, 100, claimed_before=False) == (None, None)
        assert calls == []
        assert store.resume_point("s1", 0, 100, claimed_before=True) == (None, None)
        assert calls == ["ListObjectsV2"]
        key = CheckpointUploader(store, attempt=1).offer("s1", b"at-40", 40)
        calls.clear()
        assert store.resume_point("s1", 0, 100, claimed_before=True) == (
            CheckpointRef(str(key), 40, 1),
            b"at-40",
        )
        assert calls == ["ListObjectsV2", "HeadObject", "GetObject"]
