"""Fix 20, ``dynamodb_result_conversion``: DynamoDB results reach wire JSON by type, the same
output as moto's generic recursion.

``test_bug_still_present_dynamodb_result_conversion`` FAILS the day moto stops recursing
through every value: then drop the fix.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from localcloud import moto_compat
from tests.functional._compat_fixtures import Harness, keyed_table, open_harness

NAMES = st.text("abcdefgh", min_size=1, max_size=4)
NUMBERS = st.integers(-(10**6), 10**6).map(str)
SCALARS = st.one_of(
    st.builds(lambda s: {"S": s}, st.text(max_size=8)),
    st.builds(lambda n: {"N": n}, NUMBERS),
    st.builds(lambda b: {"BOOL": b}, st.booleans()),
    st.just({"NULL": True}),
    st.builds(lambda b: {"B": base64.b64encode(b).decode()}, st.binary(min_size=1, max_size=6)),
    st.builds(lambda s: {"SS": sorted(s)}, st.sets(st.text(min_size=1, max_size=4), min_size=1)),
    st.builds(lambda s: {"NS": sorted(s)}, st.sets(NUMBERS, min_size=1, max_size=4)),
)
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.one_of(
        st.builds(lambda m: {"M": m}, st.dictionaries(NAMES, inner, max_size=3)),
        st.builds(lambda items: {"L": items}, st.lists(inner, max_size=3)),
    ),
    max_leaves=8,
)
ITEMS = st.dictionaries(NAMES, VALUES, max_size=5)


@pytest.fixture(scope="module")
def harness() -> Iterator[Harness]:
    yield from open_harness()


@pytest.fixture(scope="module")
def table(harness: Harness) -> str:
    return keyed_table(harness, "conv")


def _reads(harness: Harness, table: str, pk: str) -> list[Any]:
    ddb = harness.client("dynamodb")
    key = {"pk": {"S": pk}, "sk": {"N": "0"}}
    return [
        ddb.get_item(TableName=table, Key=key, ConsistentRead=True).get("Item"),
        ddb.query(
            TableName=table,
            KeyConditionExpression="pk = :p",
            ExpressionAttributeValues={":p": {"S": pk}},
        )["Items"],
        ddb.batch_get_item(RequestItems={table: {"Keys": [key]}})["Responses"][table],
    ]


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(attributes=st.lists(ITEMS, min_size=1, max_size=3))
def test_reads_answer_as_moto_answers_without_the_fix(
    harness: Harness, table: str, attributes: list[dict[str, Any]]
) -> None:
    """Differential: GetItem, Query and BatchGetItem of random items (every type, nested)."""
    pk = harness.unique("p")
    for sk, attrs in enumerate(attributes):
        item = {**attrs, "pk": {"S": pk}, "sk": {"N": str(sk)}}
        harness.client("dynamodb").put_item(TableName=table, Item=item)
    fast = _reads(harness, table, pk)
    with moto_compat.DYNAMODB_RESULT_CONVERSION.reverted():
        slow = _reads(harness, table, pk)
    assert fast == slow
    assert len(fast[1]) == len(attributes)


@contextmanager
def _calls_of_moto_conversion() -> Iterator[list[int]]:
    """How many times moto's own ``dynamo_to_dict`` runs (its recursion included)."""
    from moto.dynamodb.models import utilities

    original = utilities.dynamo_to_dict
    calls = [0]

    def counting(obj: Any) -> Any:
        calls[0] += 1
        return original(obj)

    utilities.dynamo_to_dict = counting
    try:
        yield calls
    finally:
        utilities.dynamo_to_dict = original


def _query_of_a_wide_item(harness: Harness, table: str) -> None:
    pk = harness.unique("w")
    item = {f"a{i}": {"S": str(i)} for i in range(20)}
    harness.client("dynamodb").put_item(
        TableName=table, Item={**item, "pk": {"S": pk}, "sk": {"N": "0"}}
    )
    _reads(harness, table, pk)


def test_bug_still_present_dynamodb_result_conversion(harness: Harness, table: str) -> None:
    """Fails once moto converts a result without recursing through each value: drop the fix."""
    with moto_compat.DYNAMODB_RESULT_CONVERSION.reverted(), _calls_of_moto_conversion() as calls:
        _query_of_a_wide_item(harness, table)
    assert calls[0] >= 40


def test_a_read_of_plain_attributes_skips_moto_conversion(harness: Harness, table: str) -> None:
    with _calls_of_moto_conversion() as calls:
        _query_of_a_wide_item(harness, table)
    assert calls[0] == 0
