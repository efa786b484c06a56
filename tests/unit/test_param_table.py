"""``workflow.params.PARAMS`` is the one table of defaults and bounds: the model reads it,
and no host writes a parameter's value as a literal of its own."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from localcloud.session import LOCAL_DEFAULTS
from localcloud.stack import DEFAULT_LOCAL_PROFILE
from workflow.errors import MissionInvalidInput
from workflow.params import (
    LOCAL_HEARTBEAT_SECONDS,
    LOCAL_RUN_HEARTBEAT_SECONDS,
    PARAMS,
    MissionParams,
    known_param_names,
    parse_params,
)

ROOT = Path(__file__).resolve().parents[2]
HOSTS = ("workflow", "localcloud", "cli", "node_agent", "lambdas", "infra/lighthpc_infra")
# Params another one constrains: give them a partner that lets the bound itself be tested.
PARTNERS: dict[str, dict[str, Any]] = {"items": {"shards": 1}}
NUMERIC = sorted(n for n, b in PARAMS.items() if not b.length and b.low is not None)


def test_the_table_names_every_parameter_and_nothing_else() -> None:
    assert sorted(PARAMS) == known_param_names()


def test_defaults_come_from_the_table() -> None:
    defaults = MissionParams()
    for name, field in MissionParams.model_fields.items():
        assert getattr(defaults, name) == PARAMS[field.alias or name].default, name


@pytest.mark.parametrize("name", NUMERIC)
def test_each_numeric_bound_is_the_edge_of_what_validates(name: str) -> None:
    row = PARAMS[name]
    assert row.low is not None and row.high is not None
    partner = PARTNERS.get(name, {})
    for inside in (row.low, row.high):
        assert getattr(parse_params(partner, {name: inside}), _attr(name)) == inside
    for outside in (row.low - 1, row.high + 1):
        with pytest.raises(MissionInvalidInput, match=rf"params\.{name}:"):
            parse_params(partner, {name: outside})


@given(st.data())
def test_any_value_within_the_bounds_validates(data: st.DataObject) -> None:
    name = data.draw(st.sampled_from(NUMERIC))
    row = PARAMS[name]
    value = data.draw(st.integers(row.low, row.high))
    assert getattr(parse_params(PARTNERS.get(name, {}), {name: value}), _attr(name)) == value


def test_the_local_profiles_name_their_departures() -> None:
    """The local mode's heartbeats are the named constants, everything else the table's."""
    assert dict(DEFAULT_LOCAL_PROFILE) == {"heartbeatSeconds": LOCAL_HEARTBEAT_SECONDS}
    assert dict(LOCAL_DEFAULTS) == {"heartbeatSeconds": LOCAL_RUN_HEARTBEAT_SECONDS}
    for profile in (DEFAULT_LOCAL_PROFILE, LOCAL_DEFAULTS):
        parse_params(profile)  # each is a valid profile


def test_no_host_repeats_a_parameter_value_as_a_literal() -> None:
    """``"heartbeatSeconds": 60`` in a host is a second copy of a rule: import it instead."""
    literal = re.compile(rf'"({"|".join(PARAMS)})"\s*:\s*[-\d(\["]')
    found = [
        f"{path.relative_to(ROOT)}:{number}: {line.strip()}"
        for host in HOSTS
        for path in sorted((ROOT / host).rglob("*.py"))
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if literal.search(line)
    ]
    assert found == []


def _attr(name: str) -> str:
    """The model attribute behind the wire name ``name``."""
    return next(a for a, f in MissionParams.model_fields.items() if (f.alias or a) == name)
