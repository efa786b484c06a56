"""Hostile events at every handler: a named error or a clean answer.

The handlers are reached by API Gateway (anyone holding an IAM identity allowed to invoke)
and by EventBridge (any account's events on the bus). Whatever arrives, the answer is a
result or one of our named errors: never ``AttributeError``/``KeyError`` from deep inside.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lambdas import light_scheduler, mission_cfg, node_watch, rslt_proc
from localcloud.stack import LocalStack
from tests.functional.test_handlers import Ctx
from workflow.errors import LightHpcError, MissionInvalidInput, ProfileInvalid, WatchInvalidEvent
from workflow.watch import EXECUTION_CHANGE, SPOT_WARNING, STATE_CHANGE

pytestmark = pytest.mark.functional

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=8,
)
KINDS = st.sampled_from([SPOT_WARNING, STATE_CHANGE, EXECUTION_CHANGE, "Other", None, 3])


@pytest.mark.parametrize(
    "event",
    [
        [1, 2, 3],
        "x",
        None,
        {"detail-type": SPOT_WARNING},
        {"detail-type": SPOT_WARNING, "detail": {"instance-id": 7}},
        {"detail-type": SPOT_WARNING, "detail": {"instance-id": "i-1; rm -rf /"}},
        {"detail-type": STATE_CHANGE, "detail": ["terminated"]},
        {"detail-type": EXECUTION_CHANGE, "detail": {"status": "ABORTED"}},
        {"detail-type": EXECUTION_CHANGE, "detail": {"executionArn": "", "status": "FAILED"}},
    ],
)
def test_malformed_node_watch_events_are_named(stack: LocalStack, event: Any) -> None:
    with pytest.raises(WatchInvalidEvent) as caught:
        node_watch.handler(event, Ctx())
    assert type(caught.value).__name__ == "Watch.InvalidEvent"


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(kind=KINDS, detail=JSON, extra=JSON)
def test_any_node_watch_event_gives_a_result_or_a_named_error(
    stack: LocalStack, kind: Any, detail: Any, extra: Any
) -> None:
    event = {"detail-type": kind, "detail": detail, "extra": extra}
    try:
        result = node_watch.handler(event, Ctx())
    except LightHpcError:
        return
    assert result["action"] in {"ignored", "failed-token", "terminated"}


@pytest.mark.parametrize(
    ("event", "error"),
    [
        ([1], "Profile.Invalid"),
        ("GET", "Profile.Invalid"),
        ({"op": "get", "name": ["default"]}, "Profile.Invalid"),
        ({"op": "explode"}, "Profile.Invalid"),
        ({"op": "put", "name": "p", "params": "shards=3"}, "Profile.Invalid"),
    ],
)
def test_malformed_direct_profile_calls_are_named(
    stack: LocalStack, event: Any, error: str
) -> None:
    with pytest.raises(ProfileInvalid) as caught:
        mission_cfg.handler(event, Ctx())
    assert type(caught.value).__name__ == error


@pytest.mark.parametrize(
    "event",
    [
        {"httpMethod": 5},
        {"httpMethod": "GET", "pathParameters": ["name"]},
        {"httpMethod": "PUT", "pathParameters": {"name": "p"}, "body": {"params": {}}},
        {"httpMethod": "PUT", "pathParameters": {"name": "p"}, "body": "[" * 100_000},
        {"httpMethod": "PUT", "pathParameters": {"name": "p"}, "body": "{not json"},
        {"httpMethod": "PATCH", "pathParameters": {"name": "p"}},
        {"httpMethod": "GET", "pathParameters": {"name": "x" * 10_000}},
    ],
)
def test_malformed_http_profile_requests_get_a_400(stack: LocalStack, event: Any) -> None:
    resp = mission_cfg.handler(event, Ctx())
    body = json.loads(resp["body"])
    assert (resp["statusCode"], body["error"]) == (400, "Profile.Invalid"), body


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    method=st.sampled_from(["GET", "PUT", "DELETE", "POST", "get"]) | JSON,
    path=JSON,
    body=st.none() | st.text(max_size=20) | JSON.map(json.dumps),
)
def test_any_http_profile_request_gets_a_status_code(
    stack: LocalStack, method: Any, path: Any, body: Any
) -> None:
    event = {"httpMethod": method, "pathParameters": path, "body": body}
    resp = mission_cfg.handler(event, Ctx())
    assert resp["statusCode"] in {200, 400, 404}
    assert "error" in json.loads(resp["body"]) or resp["statusCode"] == 200


@pytest.mark.parametrize(
    ("event", "error"),
    [
        ([1, 2, 3], "Scheduler.InvalidEvent"),
        (None, "Scheduler.InvalidEvent"),
        ({"action": "explode"}, "Scheduler.InvalidEvent"),
        ({"action": ["plan"]}, "Scheduler.InvalidEvent"),
        ({"action": "unitFailed"}, "Scheduler.InvalidEvent"),
        ({"action": "unitFailed", "missionId": 3, "unitId": "u0001"}, "Scheduler.InvalidEvent"),
        ({"action": "unitFailed", "missionId": "m-1", "unitId": "../u"}, "Scheduler.InvalidEvent"),
        (
            {"action": "unitFailed", "missionId": "m-1", "unitId": "u1", "error": "x"},
            "Scheduler.InvalidEvent",
        ),
        ({"action": "unitFailed", "missionId": "m-1", "unitId": "u0001"}, "Mission.NotFound"),
        ({"action": "plan", "executionArn": ["a"], "event": {}}, "Scheduler.InvalidEvent"),
        ({"action": "plan", "event": [1, 2, 3]}, "Mission.InvalidInput"),
        ({"action": "plan", "event": "x"}, "Mission.InvalidInput"),
        ({"action": "plan"}, "Mission.InvalidInput"),
        ({"action": "launch", "missionId": "m-1"}, "Mission.InvalidInput"),
        ({"action": "verify"}, "Scheduler.InvalidEvent"),
        ({"action": "verify", "missionId": "m-1", "unitId": 7}, "Scheduler.InvalidEvent"),
        (
            {"action": "verify", "missionId": "m-1", "unitId": "u1", "earlySuccesses": "2"},
            "Scheduler.InvalidEvent",
        ),
        (
            {"action": "verify", "missionId": "m-1", "unitId": "u1", "earlySuccesses": -1},
            "Scheduler.InvalidEvent",
        ),
        ({"action": "verify", "missionId": "m-1", "unitId": "u0001"}, "Mission.NotFound"),
    ],
)
def test_malformed_light_scheduler_events_are_named(
    stack: LocalStack, event: Any, error: str
) -> None:
    with pytest.raises(LightHpcError) as caught:
        light_scheduler.handler(event, Ctx())
    assert type(caught.value).__name__ == error


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    action=st.sampled_from(["plan", "verify", "unitFailed", "other"]) | JSON,
    ids=st.dictionaries(st.sampled_from(["missionId", "unitId", "error", "event"]), JSON),
)
def test_any_light_scheduler_event_gives_a_named_error(
    stack: LocalStack, action: Any, ids: dict[str, Any]
) -> None:
    """No valid mission exists in a fresh stack, so every such event is refused by name."""
    with pytest.raises(LightHpcError):
        light_scheduler.handler({"action": action, **ids}, Ctx())


@pytest.mark.parametrize(
    "event",
    [
        [1],
        None,
        {},
        {"missionId": 3},
        {"missionId": "CONFIG#default"},
        {"missionId": "m" * 10_000},
        {"missionId": "m-1", "executionStartTime": 5},
    ],
)
def test_malformed_rslt_proc_events_are_named(stack: LocalStack, event: Any) -> None:
    with pytest.raises(MissionInvalidInput) as caught:
        rslt_proc.handler(event, Ctx())
    assert type(caught.value).__name__ == "Mission.InvalidInput"
    assert len(str(caught.value)) < 1_000
