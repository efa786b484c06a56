"""The emulator's EC2 tells the local pool of instance changes (``localcloud.instance_events``):
the pool notices a launch at once and lists instances only when told, or every
``LISTING_SECONDS``, not every poll."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest

from localcloud import instance_events, pool
from localcloud.emulator import EmbeddedCloud
from localcloud.pool import LocalNodePool
from localcloud.stack import LocalStack
from tests.waiting import wait_for
from workflow.aws.ec2 import TAG_MISSION

NEVER_BOOTS = 600.0  # no node process starts in these tests: the instances only exist


def _launch(cloud: EmbeddedCloud, tags: dict[str, str] | None = None) -> str:
    ec2 = cloud.client("ec2")
    image = ec2.describe_images()["Images"][0]["ImageId"]
    extra: dict[str, Any] = {}
    if tags:
        pairs = [{"Key": k, "Value": v} for k, v in tags.items()]
        extra["TagSpecifications"] = [{"ResourceType": "instance", "Tags": pairs}]
    reservation = ec2.run_instances(ImageId=image, MinCount=1, MaxCount=1, **extra)
    return str(reservation["Instances"][0]["InstanceId"])


def test_subscribers_are_told_of_launches_and_terminations(cloud: EmbeddedCloud) -> None:
    told = threading.Event()
    assert instance_events.subscribe(told)
    try:
        iid = _launch(cloud)
        assert told.is_set()
        told.clear()
        cloud.client("ec2").terminate_instances(InstanceIds=[iid])
        assert told.is_set()
    finally:
        instance_events.unsubscribe(told)


def test_without_the_emulator_reporting_a_subscriber_is_refused(cloud: EmbeddedCloud) -> None:
    """The pool then lists every poll, as it must against any other endpoint."""
    told = threading.Event()
    with instance_events.INSTANCE_CHANGES.reverted():
        assert not instance_events.subscribe(told)
        _launch(cloud)
    assert not told.is_set()


@pytest.fixture
def counted_pool(
    cloud: EmbeddedCloud, stack: LocalStack, monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> Iterator[tuple[LocalNodePool, list[float]]]:
    """A pool that polls every 20 ms and would list instances only hourly unless told."""
    monkeypatch.setattr(pool, "LISTING_SECONDS", 3600.0)
    nodes = LocalNodePool(
        cloud, stack.settings, poll_seconds=0.02, boot_seconds=NEVER_BOOTS, log_dir=tmp_path
    )
    listings: list[float] = []
    discover = nodes._discover

    def counted() -> set[str]:
        listings.append(1.0)
        return discover()

    monkeypatch.setattr(nodes, "_discover", counted)
    with nodes:
        yield nodes, listings


def _polls(nodes: LocalNodePool, monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """One entry per turn of the pool's watcher from now on."""
    turns: list[float] = []
    reap = nodes._reap_finished

    def counted() -> None:
        turns.append(1.0)
        reap()

    monkeypatch.setattr(nodes, "_reap_finished", counted)
    return turns


def test_the_pool_notices_a_launch_at_once_and_lists_only_when_told(
    counted_pool: tuple[LocalNodePool, list[float]],
    cloud: EmbeddedCloud,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    nodes, listings = counted_pool
    wait_for(lambda: listings or None, 5.0, "the pool's first listing")
    turns = _polls(nodes, monkeypatch)
    wait_for(lambda: len(turns) >= 25 or None, 10.0, "25 turns of the pool's watcher")
    assert len(listings) == 1
    iid = _launch(cloud, {TAG_MISSION: "m-events"})
    wait_for(lambda: iid in nodes._waiting or None, 5.0, "the pool to see the launch")
    assert len(listings) <= 3  # the launch, and at most the pool's own reads of it
