"""Items read from DynamoDB become the same plain Python by the fast path as by boto3's
deserializer (whole numbers ``int``, other numbers ``float``, sets sorted lists)."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pytest
from boto3.dynamodb.types import TypeDeserializer, TypeSerializer
from hypothesis import given
from hypothesis import strategies as st

from workflow.aws.dynamodb import _from_ddb, _plain

pytestmark = pytest.mark.unit

_DE, _SER = TypeDeserializer(), TypeSerializer()

NUMBER_TEXT = st.one_of(
    st.integers(-(10**30), 10**30).map(str),
    st.sampled_from(["0", "-0", "007", "1.0", "1.50", "-2.25", "1E+3", "1e-3", "12.000"]),
    st.decimals(allow_nan=False, allow_infinity=False, places=6).map(str),
)
SCALAR = st.one_of(
    st.text(max_size=20).map(lambda t: {"S": t}),
    NUMBER_TEXT.map(lambda n: {"N": n}),
    st.booleans().map(lambda b: {"BOOL": b}),
    st.just({"NULL": True}),
    st.binary(max_size=8).map(lambda b: {"B": b}),
    st.sets(st.text(min_size=1, max_size=5), min_size=1, max_size=3).map(
        lambda s: {"SS": sorted(s)}
    ),
    st.sets(st.integers(-99, 99), min_size=1, max_size=3).map(
        lambda s: {"NS": [str(n) for n in s]}
    ),
)
VALUE = st.recursive(
    SCALAR,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3).map(lambda v: {"L": v}),
        st.dictionaries(st.text(max_size=5), inner, max_size=3).map(lambda v: {"M": v}),
    ),
    max_leaves=8,
)


def _by_boto3(item: dict[str, Any]) -> dict[str, Any]:
    return {k: _plain(_DE.deserialize(v)) for k, v in item.items()}


def _read(reader: Callable[[dict[str, Any]], Any], item: dict[str, Any]) -> Any:
    """What ``reader`` makes of ``item``, or the type of what it raised (boto3 refuses a
    number of more than 38 significant digits, as DynamoDB does: the fast path must too)."""
    try:
        return reader(item)
    except Exception as exc:  # noqa: BLE001 - the differential compares what was raised
        return type(exc)


@given(st.dictionaries(st.text(max_size=8), VALUE, max_size=6))
def test_the_fast_path_reads_every_attribute_as_boto3_does(item: dict[str, Any]) -> None:
    fast, slow = _read(_from_ddb, item), _read(_by_boto3, item)
    assert fast == slow
    assert _types(fast) == _types(slow)  # 1 and 1.0 are equal; an int must stay an int


def test_whole_numbers_are_ints_and_the_rest_floats() -> None:
    item = _SER.serialize({"a": Decimal("12"), "b": Decimal("1764000000.125")})["M"]
    assert _from_ddb(item) == {"a": 12, "b": 1764000000.125}
    assert type(_from_ddb(item)["a"]) is int


def _types(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _types(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_types(v) for v in value]
    return type(value).__name__
