"""Execution input normalisation and params validation: named errors, readable causes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from workflow.errors import MissionInvalidInput
from workflow.params import known_param_names, parse_params
from workflow.request import SampleRef, parse_execution_input

EVENTS = Path(__file__).parents[1] / "events"


def load(name: str) -> Any:
    return json.loads((EVENTS / name).read_text())


def test_s3_event_form() -> None:
    req = parse_execution_input(load("s3_object_created.json"))
    assert req.source == "s3-event"
    assert req.sample.bucket == "lighthpc-source"
    assert req.sample.key == "incoming/queries.smi"
    assert req.sample.etag == "d41d8cd98f00b204e9800998ecf8427e"
    assert req.params == {}


def test_manual_form_with_params() -> None:
    req = parse_execution_input(
        {"input": {"bucket": "b", "key": "incoming/x"}, "params": {"shards": 3}, "profile": "p1"}
    )
    assert (req.source, req.sample.key, req.params, req.profile) == (
        "manual",
        "incoming/x",
        {"shards": 3},
        "p1",
    )


@pytest.mark.parametrize(
    ("event", "needle"),
    [
        ([1, 2], "must be a JSON object"),
        ({"input": {"key": "k"}}, "input.bucket"),
        ({"input": {"bucket": "b"}}, "input.key"),
        ({"input": {"bucket": "b", "key": "k"}, "params": [1]}, '"params" must be an object'),
        ({"input": {"bucket": "b", "key": "k"}, "surprise": 1}, "unknown top-level"),
        ({"input": {"bucket": "b", "key": "k", "size": 3}}, "unknown field"),
        ({"source": "aws.s3", "detail-type": "Object Deleted", "detail": {}}, "Object Created"),
        ({"input": {"bucket": "b", "key": "k"}, "profile": "bad name!"}, "profile"),
    ],
)
def test_bad_inputs_are_named(event: Any, needle: str) -> None:
    with pytest.raises(MissionInvalidInput, match=needle) as info:
        parse_execution_input(event)
    assert type(info.value).__name__ == "Mission.InvalidInput"


def test_dedupe_key_depends_on_version_and_overrides() -> None:
    req = parse_execution_input({"input": {"bucket": "b", "key": "k"}})
    a = SampleRef("b", "k", etag="e1", version_id="v1")
    b = SampleRef("b", "k", etag="e1", version_id="v2")
    assert req.dedupe_key(a) == req.dedupe_key(a)
    assert req.dedupe_key(a) != req.dedupe_key(b)
    other = parse_execution_input({"input": {"bucket": "b", "key": "k"}, "params": {"shards": 2}})
    assert other.dedupe_key(a) != req.dedupe_key(a)


def test_layers_merge_left_to_right() -> None:
    params = parse_params({"shards": 4, "topK": 3}, {"shards": 9})
    assert (params.shards, params.top_k) == (9, 3)


@pytest.mark.parametrize(
    ("override", "needle"),
    [
        ({"shards": 0}, "params.shards"),
        ({"shards": 10**9}, "params.shards"),
        ({"heartbeatSeconds": -5}, "params.heartbeatSeconds"),
        ({"instanceTypes": ["c6i.large", "zz9.mega"]}, "zz9.mega"),
        ({"workload": "nope"}, "unknown workload"),
        ({"colour": "blue"}, "params.colour: unknown parameter"),
        ({"maxFailedShardPercent": 101}, "maxFailedShardPercent"),
        ({"library": "/etc/passwd"}, "s3://"),
    ],
)
def test_bad_params_say_which_and_why(override: dict[str, Any], needle: str) -> None:
    with pytest.raises(MissionInvalidInput, match=needle):
        parse_params(override)


def test_known_names_are_the_camel_case_ones() -> None:
    names = known_param_names()
    assert {"shards", "maxNodes", "heartbeatSeconds", "topK", "spotAttempts"} <= set(names)
    assert "max_nodes" not in names
