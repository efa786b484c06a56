"""Fix 24, ``dynamodb_item_size_once``: a new item is sized once, and refused over 400 KB
exactly as moto refuses it attribute by attribute.

``test_bug_still_present_dynamodb_item_size_once`` FAILS the day moto stops re-sizing every
attribute at each insertion: then drop the fix.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from botocore.exceptions import ClientError
from hypothesis import event, given, settings
from hypothesis import strategies as st

from localcloud import moto_compat
from localcloud.moto_compat.performance_item_size import ITEM_SIZE_LIMIT
from tests.functional._compat_fixtures import Harness, keyed_table, open_harness

FIX = moto_compat.DYNAMODB_ITEM_SIZE_ONCE


@pytest.fixture(scope="module")
def harness() -> Iterator[Harness]:
    yield from open_harness()


def _item(attrs: dict[str, Any]) -> Any:
    """moto's Item built from wire attributes: its attrs, or the exception it raised."""
    from moto.dynamodb.models.dynamo_type import DynamoType, Item

    try:
        return dict(Item(DynamoType({"S": "h"}), DynamoType({"N": "1"}), attrs).attrs)
    except Exception as exc:  # noqa: BLE001 - the differential compares what was raised
        return type(exc)


def test_bug_still_present_dynamodb_item_size_once(harness: Harness) -> None:
    """moto sizes every attribute already in the item at each insertion: n²/2 sizings."""
    del harness  # the fixes are applied by the running cloud
    from moto.dynamodb.models.dynamo_type import DynamoType

    sized: list[int] = []
    original = DynamoType.size

    def size(self: Any) -> int:
        sized.append(1)
        return original(self)

    attrs = {f"a{i}": {"S": "x" * 10} for i in range(40)}
    DynamoType.size = size  # type: ignore[method-assign]
    try:
        with FIX.reverted():
            _item(attrs)
        unfixed = len(sized)
        sized.clear()
        _item(attrs)
    finally:
        DynamoType.size = original  # type: ignore[method-assign]
    assert unfixed >= 40 * 39 // 2
    assert len(sized) == 40


_NAMES = st.text(alphabet="abcdé", min_size=1, max_size=6)
_SCALARS = st.one_of(
    # small strings, and big ones: two or three of those cross the limit
    st.builds(lambda n: {"S": "s" * n}, st.integers(0, 64) | st.integers(100_000, 210_000)),
    st.builds(lambda n: {"N": str(n)}, st.integers(-(10**30), 10**30)),
    st.builds(lambda b: {"BOOL": b}, st.booleans()),
    st.just({"NULL": True}),
    st.builds(lambda n: {"SS": [f"v{i}" for i in range(n)]}, st.integers(1, 5)),
)
_VALUES = st.recursive(
    _SCALARS,
    lambda inner: st.one_of(
        st.builds(lambda xs: {"L": xs}, st.lists(inner, max_size=3)),
        st.builds(lambda m: {"M": m}, st.dictionaries(_NAMES, inner, max_size=3)),
    ),
    max_leaves=6,
)


@settings(max_examples=150, deadline=None)
@given(attrs=st.dictionaries(_NAMES, _VALUES, min_size=1, max_size=12))
def test_items_are_built_and_refused_as_moto_builds_and_refuses_them(
    harness: Harness, attrs: dict[str, Any]
) -> None:
    """Differential (items from a few bytes to well over the limit, nested ones too): the
    same attributes, of the same types, or the same error."""
    del harness
    ours = _item(attrs)
    with FIX.reverted():
        motos = _item(attrs)
    event("refused" if isinstance(motos, type) else "written")
    assert ours == motos
    if isinstance(ours, dict):
        assert [type(v) for v in ours.values()] == [type(v) for v in motos.values()]


def test_an_item_over_the_limit_is_refused_and_one_under_it_is_written(
    harness: Harness,
) -> None:
    table = keyed_table(harness, "size")
    ddb = harness.client("dynamodb")
    key = {"pk": {"S": "p"}, "sk": {"N": "1"}}
    ddb.put_item(TableName=table, Item={**key, "blob": {"S": "x" * (ITEM_SIZE_LIMIT - 64)}})
    with pytest.raises(ClientError) as refused:
        ddb.put_item(TableName=table, Item={**key, "blob": {"S": "x" * ITEM_SIZE_LIMIT}})
    assert refused.value.response["Error"]["Code"] == "ValidationException"
    assert "maximum allowed size" in refused.value.response["Error"]["Message"]
