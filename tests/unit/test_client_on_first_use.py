"""Clients a host may never call are made at their first use, once, whatever the threads."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

from workflow.aws.services import ClientOnFirstUse, make_services
from workflow.settings import Settings

pytestmark = pytest.mark.unit


class _Client:
    def describe(self, **kwargs: Any) -> dict[str, Any]:
        return dict(kwargs)


def test_nothing_is_made_before_the_first_use_and_once_after() -> None:
    made: list[_Client] = []

    def make() -> _Client:
        made.append(_Client())
        return made[-1]

    lazy: Any = ClientOnFirstUse(make)
    assert made == []
    assert lazy.describe(InstanceIds=["i-1"]) == {"InstanceIds": ["i-1"]}
    assert lazy.describe() == {}
    assert len(made) == 1


def test_threads_racing_to_the_first_use_share_one_client() -> None:
    made: list[_Client] = []
    gate = threading.Barrier(8)

    def make() -> _Client:
        time.sleep(0.02)  # a client takes a while to make: the racers all arrive meanwhile
        made.append(_Client())
        return made[-1]

    lazy: Any = ClientOnFirstUse(make)
    seen: list[Any] = []

    def use() -> None:
        gate.wait()
        seen.append(lazy.describe)

    threads = [threading.Thread(target=use) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(made) == 1
    assert {m.__self__ for m in seen} == {made[0]}


def test_services_make_ec2_and_eventbridge_only_when_called(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AWS_DEFAULT_REGION", "xx-local-1")
    svc = make_services(Settings(), endpoint_url="http://127.0.0.1:9")
    for lazy in (svc.ec2, svc.events):
        assert isinstance(lazy, ClientOnFirstUse)
        assert lazy._client is None
    assert svc.ec2.meta.service_model.service_name == "ec2"
    assert svc.ec2._client is not None
    assert svc.events._client is None
