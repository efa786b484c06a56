"""Mission parameters are strictly typed: a careless or hostile value is one named refusal."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from workflow.errors import MissionInvalidInput
from workflow.params import PARAMS, parse_params
from workflow.settings import Settings

NUMBERS = sorted(
    name
    for name, row in PARAMS.items()
    if not row.length and isinstance(row.low, int) and name != "workload"
)
NOT_NUMBERS = st.booleans() | st.text(max_size=5) | st.lists(st.integers(), max_size=2)


def _refused(params: dict[str, Any], **kw: Any) -> str:
    with pytest.raises(MissionInvalidInput) as caught:
        parse_params({"workload": "noop"}, params, **kw)
    return str(caught.value)


@settings(deadline=None)  # the param model is cheap; a loaded machine is not
@given(name=st.sampled_from(NUMBERS), value=NOT_NUMBERS)
def test_a_number_parameter_refuses_anything_but_a_number(name: str, value: Any) -> None:
    assert f"params.{name}" in _refused({name: value})


def test_shards_true_is_not_one() -> None:
    assert "must be a number, not bool" in _refused({"shards": True})


@settings(deadline=None)  # the param model is cheap; a loaded machine is not
@given(name=st.sampled_from(NUMBERS), data=st.data())
def test_a_number_parameter_accepts_exactly_its_range(name: str, data: st.DataObject) -> None:
    row = PARAMS[name]
    assert row.low is not None and row.high is not None
    value = data.draw(st.integers(row.low - 10, row.high + 10))
    params: dict[str, Any] = {name: value}
    if name == "shards":
        params["items"] = PARAMS["items"].high
    if name == "items":
        params["shards"] = 1
    if row.low <= value <= row.high:
        parse_params({"workload": "noop"}, params)
    else:
        assert f"params.{name}" in _refused(params)


@settings(deadline=None)  # the param model is cheap; a loaded machine is not
@given(floor=st.integers(1, 600), heartbeat=st.integers(1, 3600))
def test_heartbeat_below_the_deployment_floor_is_refused(floor: int, heartbeat: int) -> None:
    params = {"heartbeatSeconds": heartbeat}
    if heartbeat >= floor:
        got = parse_params({"workload": "noop"}, params, min_heartbeat_seconds=floor)
        assert got.heartbeat_seconds == heartbeat
    else:
        message = _refused(params, min_heartbeat_seconds=floor)
        assert f"params.heartbeatSeconds: must be >= {floor}" in message


def test_the_aws_floor_refuses_a_one_second_heartbeat() -> None:
    floor = Settings.from_env({}).min_heartbeat_seconds
    assert floor >= 60
    assert "heartbeatSeconds" in _refused({"heartbeatSeconds": 1}, min_heartbeat_seconds=floor)
    assert Settings.from_env({"LIGHTHPC_MIN_HEARTBEAT_SECONDS": "5"}).min_heartbeat_seconds == 5


@settings(deadline=None)  # the param model is cheap; a loaded machine is not
@given(timeout=st.integers(1, 86_400), grace=st.integers(0, 600))
def test_command_timeout_and_grace_reach_the_workload(timeout: int, grace: int) -> None:
    params = parse_params(
        {"workload": "command", "argv": ["true"]},
        {"shardTimeoutSeconds": timeout, "graceSeconds": grace},
    )
    options = params.workload_options()
    assert (options["timeoutSeconds"], options["graceSeconds"]) == (timeout, grace)


def test_a_huge_refused_value_is_not_echoed_whole() -> None:
    assert len(_refused({"shards": "9" * 200_000})) < 400
