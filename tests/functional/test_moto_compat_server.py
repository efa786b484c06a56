"""Fix 19, ``moto_server_module_list``: the moto server routes as before, without listing
its package directory on every request.

``test_bug_still_present_moto_server_module_list`` FAILS the day moto stops listing the
directory per request: then drop the fix.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from localcloud import moto_compat
from tests.functional._compat_fixtures import Harness, open_harness


@pytest.fixture(scope="module")
def harness() -> Iterator[Harness]:
    yield from open_harness()


@contextmanager
def _listings_of_moto() -> Iterator[list[str]]:
    """Every ``os.listdir`` of moto's package directory while the block runs (any thread)."""
    import moto

    package = os.path.dirname(moto.__file__)
    seen: list[str] = []
    original: Callable[..., Any] = os.listdir

    def listdir(path: Any = ".") -> list[str]:
        if os.fspath(path) == package:
            seen.append(package)
        return original(path)

    os.listdir = listdir
    try:
        yield seen
    finally:
        os.listdir = original


def _a_few_requests(harness: Harness) -> list[Any]:
    """One request of each protocol moto dispatches differently: JSON target, query, REST."""
    return [
        harness.client("dynamodb").list_tables()["TableNames"],
        harness.client("sqs").list_queues().get("QueueUrls", []),
        [b["Name"] for b in harness.client("s3").list_buckets()["Buckets"]],
        [m["name"] for m in harness.sfn.list_state_machines()["stateMachines"]],
    ]


def test_bug_still_present_moto_server_module_list(harness: Harness) -> None:
    """Fails once moto's server stops listing its package per request: drop the fix."""
    with moto_compat.MOTO_SERVER_MODULE_LIST.reverted(), _listings_of_moto() as seen:
        _a_few_requests(harness)
    assert len(seen) >= 4


def test_requests_list_the_moto_package_at_most_once(harness: Harness) -> None:
    with _listings_of_moto() as seen:
        for _ in range(5):
            _a_few_requests(harness)
    assert len(seen) <= 1


def test_requests_reach_the_same_backends_with_the_fix_reverted(harness: Harness) -> None:
    """Differential: the same answers through the cached listing and through moto's own."""
    harness.client("sqs").create_queue(QueueName=harness.unique("q"))
    cached = _a_few_requests(harness)
    with moto_compat.MOTO_SERVER_MODULE_LIST.reverted():
        listed = _a_few_requests(harness)
    assert cached == listed
    assert cached[1], "the queue just created is listed"
