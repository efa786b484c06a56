"""Fix 21, ``dynamodb_query_filter_before_copy``: a filtered Query copies only the items its
filter keeps, and answers as moto answers (items, paging, projection, counts).

``test_bug_still_present_dynamodb_query_filter_before_copy`` FAILS the day moto filters
before it copies: then drop the fix.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from localcloud import moto_compat
from tests.functional._compat_fixtures import Harness, keyed_table, open_harness

STATUSES = ("QUEUED", "RUNNING", "DONE", "FAILED")


@pytest.fixture(scope="module")
def harness() -> Iterator[Harness]:
    yield from open_harness()


@pytest.fixture(scope="module")
def table(harness: Harness) -> str:
    return keyed_table(harness, "qcopy")


def _put(harness: Harness, table: str, statuses: list[str]) -> str:
    pk = harness.unique("p")
    ddb = harness.client("dynamodb")
    for sk, status in enumerate(statuses):
        item = {"pk": {"S": pk}, "sk": {"N": str(sk)}, "st": {"S": status}, "n": {"N": str(sk)}}
        if sk % 3 == 0:
            item["note"] = {"M": {"why": {"S": f"shard {sk}"}}}
        ddb.put_item(TableName=table, Item=item)
    return pk


def _pages(harness: Harness, table: str, pk: str, request: dict[str, Any]) -> list[Any]:
    """Every page's items, Count, ScannedCount and LastEvaluatedKey."""
    ddb = harness.client("dynamodb")
    values = {":p": {"S": pk}, **request.get("values", {})}
    rest = {k: v for k, v in request.items() if k != "values"}
    out: list[Any] = []
    start: dict[str, Any] | None = None
    while True:
        kwargs = {"ExclusiveStartKey": start} if start else {}
        page = ddb.query(
            TableName=table,
            KeyConditionExpression="pk = :p",
            ExpressionAttributeValues=values,
            **rest,
            **kwargs,
        )
        out.append(
            (page.get("Items"), page["Count"], page["ScannedCount"], page.get("LastEvaluatedKey"))
        )
        start = page.get("LastEvaluatedKey")
        if not start:
            return out


def _request(keep: list[str], limit: int | None, projected: bool, count: bool) -> dict[str, Any]:
    names = {"#st": "st"}
    condition = " OR ".join(f"#st = :s{i}" for i in range(len(keep)))
    request: dict[str, Any] = {
        "FilterExpression": condition,
        "ExpressionAttributeNames": names,
        "values": {f":s{i}": {"S": s} for i, s in enumerate(keep)},
    }
    if limit:
        request["Limit"] = limit
    if count:
        request["Select"] = "COUNT"
    elif projected:
        request["ProjectionExpression"] = "sk, note.why"
    return request


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    statuses=st.lists(st.sampled_from(STATUSES), min_size=0, max_size=12),
    keep=st.lists(st.sampled_from(STATUSES), min_size=1, max_size=2, unique=True),
    shape=st.tuples(st.none() | st.integers(1, 5), st.booleans(), st.booleans()),
)
def test_a_filtered_query_answers_as_moto_answers_without_the_fix(
    harness: Harness,
    table: str,
    statuses: list[str],
    keep: list[str],
    shape: tuple[int | None, bool, bool],
) -> None:
    """Differential: items, Count, ScannedCount and LastEvaluatedKey of every page, with a
    Limit (paging before the filter), a projection of a nested attribute, or Select=COUNT."""
    pk = _put(harness, table, statuses)
    fast = _pages(harness, table, pk, _request(keep, *shape))
    with moto_compat.DYNAMODB_QUERY_FILTER_BEFORE_COPY.reverted():
        slow = _pages(harness, table, pk, _request(keep, *shape))
    assert fast == slow
    assert sum(page[1] for page in fast) == sum(s in keep for s in statuses)


@contextmanager
def _item_copies() -> Iterator[list[int]]:
    """How many items moto deep-copies (``Item.__deepcopy__``'s own copy of the hash key)."""
    from moto.dynamodb.models.dynamo_type import DynamoType

    original = DynamoType.__deepcopy__
    copies = [0]

    def counting(self: Any, memo: dict[int, Any]) -> Any:
        copies[0] += 1
        return original(self, memo)

    DynamoType.__deepcopy__ = counting  # type: ignore[method-assign]
    try:
        yield copies
    finally:
        DynamoType.__deepcopy__ = original  # type: ignore[method-assign]


def _query_keeping_none(harness: Harness, table: str, pk: str) -> list[Any]:
    return _pages(harness, table, pk, _request(["FAILED"], None, False, False))


def test_bug_still_present_dynamodb_query_filter_before_copy(harness: Harness, table: str) -> None:
    """Fails once moto filters before it copies: drop the fix."""
    pk = _put(harness, table, ["DONE"] * 30)
    with moto_compat.DYNAMODB_QUERY_FILTER_BEFORE_COPY.reverted(), _item_copies() as copies:
        assert _query_keeping_none(harness, table, pk)[0][1] == 0
    assert copies[0] >= 30 * 4  # every item, each of its attributes and keys


def test_a_query_whose_filter_keeps_nothing_copies_nothing(harness: Harness, table: str) -> None:
    pk = _put(harness, table, ["DONE"] * 30 + ["FAILED"])
    with _item_copies() as copies:
        pages = _query_keeping_none(harness, table, pk)
    assert [page[1] for page in pages] == [1]
    assert 0 < copies[0] <= 10  # the one kept item's attributes, not 31 items'
