"""The DynamoDB performance fixes 8, 9 and 10: same answers as moto, less work.

Each has a differential property test (the same responses with the fix reverted) and
a ``test_bug_still_present_<fix>`` canary that FAILS the day moto stops doing the work.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from botocore.exceptions import ClientError
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from localcloud import moto_compat
from tests.functional._compat_fixtures import Harness, keyed_table, open_harness


@pytest.fixture(scope="module")
def harness() -> Iterator[Harness]:
    yield from open_harness()


# ------------------------------------------------------ 8. transaction_item_snapshot


def _moto_table(harness: Harness, name: str) -> Any:
    from moto.core.models import DEFAULT_ACCOUNT_ID
    from moto.dynamodb.models import dynamodb_backends

    return dynamodb_backends[DEFAULT_ACCOUNT_ID][harness.cloud.region].tables[name]


def _key(pk: str, sk: int) -> dict[str, Any]:
    return {"pk": {"S": pk}, "sk": {"N": str(sk)}}


def _cancelled_transaction(harness: Harness, table: str) -> None:
    """Put a new item, bump an existing one, then fail a condition: all must roll back."""
    with pytest.raises(ClientError, match="TransactionCanceledException"):
        harness.client("dynamodb").transact_write_items(
            TransactItems=[
                {"Put": {"TableName": table, "Item": {**_key("new", 0), "v": {"N": "1"}}}},
                {
                    "Update": {
                        "TableName": table,
                        "Key": _key("old", 0),
                        "UpdateExpression": "ADD v :one",
                        "ExpressionAttributeValues": {":one": {"N": "1"}},
                    }
                },
                {
                    "ConditionCheck": {
                        "TableName": table,
                        "Key": _key("old", 1),
                        "ConditionExpression": "attribute_not_exists(pk)",
                    }
                },
            ]
        )


def _seed(harness: Harness, table: str) -> None:
    for sk in (0, 1):
        harness.client("dynamodb").put_item(
            TableName=table, Item={**_key("old", sk), "v": {"N": "10"}}
        )


def test_bug_still_present_transaction_item_snapshot(harness: Harness) -> None:
    """Fails once moto stops deep-copying whole tables for a transaction: drop the fix.

    Its rollback swaps in the copy it took, so every item object (touched or not) is new.
    """
    table = keyed_table(harness, "txn")
    _seed(harness, table)
    before = _moto_table(harness, table)
    untouched = before.items[_key_type("old")][_key_type(1, "N")]
    with moto_compat.TRANSACTION_ITEM_SNAPSHOT.reverted():
        _cancelled_transaction(harness, table)
    after = _moto_table(harness, table)
    assert after is not before
    assert after.items[_key_type("old")][_key_type(1, "N")] is not untouched


def _key_type(value: Any, kind: str = "S") -> Any:
    from moto.dynamodb.models.dynamo_type import DynamoType

    return DynamoType({kind: str(value)})


def test_cancelled_transaction_rolls_back_only_its_items(harness: Harness) -> None:
    table = keyed_table(harness, "txn")
    _seed(harness, table)
    before = _moto_table(harness, table)
    untouched = before.items[_key_type("old")][_key_type(1, "N")]
    _cancelled_transaction(harness, table)
    assert _moto_table(harness, table) is before  # no table copy was made or swapped in
    assert before.items[_key_type("old")][_key_type(1, "N")] is untouched
    assert "__deepcopy__" not in vars(before)
    assert _scan(harness, table) == [("old", 0, 10), ("old", 1, 10)]


def _scan(harness: Harness, table: str, prefix: str = "") -> list[tuple[str, int, int | None]]:
    items = harness.client("dynamodb").scan(TableName=table, ConsistentRead=True)["Items"]
    rows = [
        (i["pk"]["S"], int(i["sk"]["N"]), int(i["v"]["N"]) if "v" in i else None)
        for i in items
        if i["pk"]["S"].startswith(prefix)
    ]
    return sorted(rows)


_PKS = ("a", "b")
_op = st.tuples(
    st.sampled_from(["Put", "Update", "Delete", "ConditionCheck"]),
    st.sampled_from(_PKS),
    st.integers(0, 2),  # sk
    st.integers(1, 5),  # value
    st.booleans(),  # with a condition
)


def _transaction(table: str, ns: str, ops: list[tuple[str, str, int, int, bool]]) -> list[Any]:
    items: list[Any] = []
    for kind, pk, sk, value, conditional in ops:
        op: dict[str, Any] = {"TableName": table, "Key": _key(ns + pk, sk)}
        if kind == "Put":
            op = {"TableName": table, "Item": {**_key(ns + pk, sk), "v": {"N": str(value)}}}
            if conditional:
                op["ConditionExpression"] = "attribute_not_exists(pk)"
        elif kind == "Update":
            op["UpdateExpression"] = "ADD v :n"
            op["ExpressionAttributeValues"] = {":n": {"N": str(value)}}
            if conditional:
                op["ConditionExpression"] = "attribute_not_exists(v) OR v < :limit"
                op["ExpressionAttributeValues"][":limit"] = {"N": "6"}
        elif kind == "Delete" and conditional:
            op["ConditionExpression"] = "attribute_exists(pk)"
        elif kind == "ConditionCheck":
            op["ConditionExpression"] = (
                "attribute_exists(pk)" if conditional else "attribute_not_exists(pk)"
            )
        items.append({kind: op})
    return items


def _outcome(harness: Harness, transact_items: list[Any]) -> tuple[str, ...]:
    try:
        harness.client("dynamodb").transact_write_items(TransactItems=transact_items)
    except ClientError as exc:
        reasons = exc.response.get("CancellationReasons", [])
        return (exc.response["Error"]["Code"], *(str(r.get("Code")) for r in reasons))
    return ("ok",)


@pytest.fixture(scope="module")
def twin_tables(harness: Harness) -> tuple[str, str]:
    return keyed_table(harness, "txn"), keyed_table(harness, "txn")


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(transactions=st.lists(st.lists(_op, min_size=1, max_size=4), min_size=1, max_size=6))
def test_transactions_behave_as_with_moto_own_rollback(
    harness: Harness, twin_tables: tuple[str, str], transactions: list[list[Any]]
) -> None:
    """Differential: any transaction sequence leaves the same items and outcomes as moto's
    own whole-table rollback (the fix reverted) does."""
    plain, fixed = twin_tables
    ns = uuid.uuid4().hex[:8] + "-"
    for ops in transactions:
        with moto_compat.TRANSACTION_ITEM_SNAPSHOT.reverted():
            expected = _outcome(harness, _transaction(plain, ns, ops))
        assert _outcome(harness, _transaction(fixed, ns, ops)) == expected
        assert _scan(harness, fixed, ns) == _scan(harness, plain, ns)


# ------------------------------------------------------------ 9. dynamodb_wire_values


def _attribute_value() -> st.SearchStrategy[dict[str, Any]]:
    scalars = st.one_of(
        st.text(max_size=8).map(lambda s: {"S": s}),
        st.integers(-(10**12), 10**12).map(lambda n: {"N": str(n)}),
        st.booleans().map(lambda b: {"BOOL": b}),
        st.just({"NULL": True}),
        st.binary(min_size=1, max_size=8).map(lambda b: {"B": b}),
        st.sets(st.text(min_size=1, max_size=4), min_size=1, max_size=3).map(
            lambda s: {"SS": sorted(s)}
        ),
    )
    return st.recursive(
        scalars,
        lambda inner: st.one_of(
            st.lists(inner, max_size=3).map(lambda v: {"L": v}),
            st.dictionaries(st.text(min_size=1, max_size=4), inner, max_size=3).map(
                lambda v: {"M": v}
            ),
        ),
        max_leaves=6,
    )


@pytest.fixture(scope="module")
def plain_table(harness: Harness) -> str:
    return keyed_table(harness, "txn")


def _read_back(harness: Harness, table: str, pk: str) -> tuple[Any, Any]:
    ddb = harness.client("dynamodb")
    got = ddb.get_item(TableName=table, Key=_key(pk, 0), ConsistentRead=True)["Item"]
    queried = ddb.query(
        TableName=table,
        KeyConditionExpression="pk = :pk",
        ExpressionAttributeValues={":pk": {"S": pk}},
    )["Items"]
    return got, queried


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(attributes=st.dictionaries(st.sampled_from("abcdef"), _attribute_value(), max_size=4))
def test_dynamodb_responses_are_the_same_with_wire_values(
    harness: Harness, plain_table: str, attributes: dict[str, Any]
) -> None:
    """Differential: GetItem and Query return exactly what moto's own serializer returns."""
    pk = uuid.uuid4().hex
    harness.client("dynamodb").put_item(TableName=plain_table, Item={**_key(pk, 0), **attributes})
    fast = _read_back(harness, plain_table, pk)
    with moto_compat.DYNAMODB_WIRE_VALUES.reverted():
        slow = _read_back(harness, plain_table, pk)
    assert fast == slow
    assert fast[0] == {**_key(pk, 0), **attributes}


def _value_lookups(harness: Harness, table: str) -> int:
    """moto's generic member lookups while serialising a 20-item Query."""
    from moto.core.serialize import ResponseSerializer

    calls = 0
    original = ResponseSerializer.get_value

    def counting(self: Any, *args: Any, **kwargs: Any) -> Any:
        nonlocal calls
        calls += 1
        return original(self, *args, **kwargs)

    ResponseSerializer.get_value = counting  # type: ignore[method-assign]
    try:
        harness.client("dynamodb").query(
            TableName=table,
            KeyConditionExpression="pk = :pk",
            ExpressionAttributeValues={":pk": {"S": "many"}},
        )
    finally:
        ResponseSerializer.get_value = original  # type: ignore[method-assign]
    return calls


def test_bug_still_present_dynamodb_wire_values(harness: Harness, plain_table: str) -> None:
    """Fails once moto stops resolving every member of every AttributeValue: drop the fix."""
    _many_items(harness, plain_table)
    with moto_compat.DYNAMODB_WIRE_VALUES.reverted():
        assert _value_lookups(harness, plain_table) >= 20 * 3 * 10  # 3 attributes, 10 members


def test_wire_values_skip_the_member_walk(harness: Harness, plain_table: str) -> None:
    _many_items(harness, plain_table)
    assert _value_lookups(harness, plain_table) < 20


def _many_items(harness: Harness, table: str) -> None:
    for sk in range(20):
        harness.client("dynamodb").put_item(
            TableName=table, Item={**_key("many", sk), "v": {"N": str(sk)}}
        )


# --------------------------------------------------------- 10. dynamodb_query_partition

_CONDITIONS = {
    "none": ("pk = :pk", {}),
    "eq": ("pk = :pk AND sk = :a", {":a"}),
    "lt": ("pk = :pk AND sk < :a", {":a"}),
    "le": ("pk = :pk AND sk <= :a", {":a"}),
    "gt": ("pk = :pk AND sk > :a", {":a"}),
    "ge": ("pk = :pk AND sk >= :a", {":a"}),
    "between": ("pk = :pk AND sk BETWEEN :a AND :b", {":a", ":b"}),
}


def _query_all(harness: Harness, table: str, pk: str, how: tuple[str, int, int, bool, int]) -> Any:
    """Every page of one Query: (keys per page, last keys) as the client sees them."""
    condition, low, high, forward, limit = how
    expression, names = _CONDITIONS[condition]
    values: dict[str, Any] = {":pk": {"S": pk}, ":a": {"N": str(low)}, ":b": {"N": str(high)}}
    kwargs: dict[str, Any] = {
        "TableName": table,
        "KeyConditionExpression": expression,
        "ExpressionAttributeValues": {k: v for k, v in values.items() if k == ":pk" or k in names},
        "ScanIndexForward": forward,
        "Limit": limit,
        "ConsistentRead": True,
    }
    pages = []
    while True:
        page = harness.client("dynamodb").query(**kwargs)
        pages.append(([i["sk"]["N"] for i in page["Items"]], page.get("LastEvaluatedKey")))
        if "LastEvaluatedKey" not in page:
            return pages
        kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    sks=st.sets(st.integers(0, 30), max_size=12),
    others=st.sets(st.integers(0, 30), max_size=6),
    how=st.tuples(
        st.sampled_from(sorted(_CONDITIONS)),
        st.integers(-1, 31),
        st.integers(-1, 31),
        st.booleans(),
        st.integers(1, 5),
    ),
)
def test_queries_return_what_moto_returns_without_the_fix(
    harness: Harness,
    plain_table: str,
    sks: set[int],
    others: set[int],
    how: tuple[str, int, int, bool, int],
) -> None:
    """Differential: conditions, direction, limits and paging give the same pages."""
    ns = uuid.uuid4().hex
    for pk, keys in ((ns, sks), (ns + "-other", others)):
        for sk in keys:
            harness.client("dynamodb").put_item(TableName=plain_table, Item=_key(pk, sk))
    fast = _query_all(harness, plain_table, ns, how)
    with moto_compat.DYNAMODB_QUERY_PARTITION.reverted():
        assert fast == _query_all(harness, plain_table, ns, how)


def _items_moto_considers(harness: Harness, table: str) -> int:
    """How many items moto's Query walks for a 2-item key range (3..4) of a 20-item partition."""
    from moto.dynamodb.models.table import Table

    seen = 0
    original = Table.all_items

    def counting(self: Any) -> Any:
        nonlocal seen
        items = original(self)
        seen += len(items)
        return items

    Table.all_items = counting  # type: ignore[method-assign]
    try:
        harness.client("dynamodb").query(
            TableName=table,
            KeyConditionExpression="pk = :pk AND sk BETWEEN :a AND :b",
            ExpressionAttributeValues={":pk": {"S": "many"}, ":a": {"N": "3"}, ":b": {"N": "4"}},
        )
    finally:
        Table.all_items = original  # type: ignore[method-assign]
    return seen


def test_bug_still_present_dynamodb_query_partition(harness: Harness, plain_table: str) -> None:
    """Fails once moto's Query stops walking the whole table: drop the fix."""
    _many_items(harness, plain_table)
    for sk in range(5):  # another partition, which moto walks too
        harness.client("dynamodb").put_item(TableName=plain_table, Item=_key("elsewhere", sk))
    with moto_compat.DYNAMODB_QUERY_PARTITION.reverted():
        assert _items_moto_considers(harness, plain_table) >= 25


def test_query_walks_only_its_key_range(harness: Harness, plain_table: str) -> None:
    _many_items(harness, plain_table)
    assert _items_moto_considers(harness, plain_table) == 4  # sk 3, 4 and neighbours 2, 5


# ---------------------------------------------------- 17. dynamodb_condition_parse_cache

_CONDITION_TEXTS = (
    "#s IN (:a, :b) AND #n = :x",
    "#n < :x OR attribute_not_exists(#s)",
    "attribute_exists(pk) AND #n = :x",
    "begins_with(#s, :a) AND NOT #n = :y",
    "#n BETWEEN :x AND :y",
    "#s IN (:a, :b AND",  # refused: the same error with and without the cache
    "#n = :missing",  # an unbound placeholder: refused
)


def _conditional_update(harness: Harness, table: str, sk: int, how: tuple[Any, ...]) -> Any:
    """One UpdateItem and one TransactWriteItems under the same condition: each outcome."""
    text, status, count, x, y, extra = how
    ddb = harness.client("dynamodb")
    ddb.put_item(
        TableName=table, Item={**_key("c", sk), "s": {"S": status}, "n": {"N": str(count)}}
    )
    write = {
        "TableName": table,
        "Key": _key("c", sk),
        "UpdateExpression": "SET #n = :x, v = :e",
        "ConditionExpression": text,
        "ExpressionAttributeNames": {"#s": "s", "#n": "n"},
        "ExpressionAttributeValues": {
            ":a": {"S": "QUEUED"},
            ":b": {"S": "RUNNING"},
            ":x": {"N": str(x)},
            ":y": {"N": str(y)},
            ":e": {"N": str(extra)},  # in the update only: must not split or join cache entries
        },
    }
    used = {":x", ":e", *(t for t in (":a", ":b", ":y") if t in text)}
    write["ExpressionAttributeValues"] = {
        k: v for k, v in write["ExpressionAttributeValues"].items() if k in used
    }
    if "#s" not in text:
        write["ExpressionAttributeNames"] = {"#n": "n"}
    outcomes = []
    for call in (
        lambda: ddb.update_item(**write),
        lambda: ddb.transact_write_items(TransactItems=[{"Update": write}]),
    ):
        try:
            call()
            outcomes.append("ok")
        except ClientError as exc:
            outcomes.append(f"{exc.response['Error']['Code']}: {exc.response['Error']['Message']}")
        outcomes.append(
            ddb.get_item(TableName=table, Key=_key("c", sk), ConsistentRead=True)["Item"]
        )
    return outcomes


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(
        st.tuples(
            st.sampled_from(_CONDITION_TEXTS),
            st.sampled_from(["QUEUED", "RUNNING", "DONE"]),
            st.integers(0, 3),
            st.integers(0, 3),
            st.integers(0, 3),
            st.integers(0, 9),
        ),
        min_size=1,
        max_size=6,
    )
)
def test_conditional_writes_decide_as_moto_decides_without_the_cache(
    harness: Harness, plain_table: str, writes: list[tuple[Any, ...]]
) -> None:
    """Differential: repeated texts with changing bindings (the cache's hits and misses) give
    the outcome, error and item moto gives parsing every time."""
    cached = [_conditional_update(harness, plain_table, i, how) for i, how in enumerate(writes)]
    with moto_compat.DYNAMODB_CONDITION_PARSE_CACHE.reverted():
        plain = [_conditional_update(harness, plain_table, i, how) for i, how in enumerate(writes)]
    assert cached == plain


def _lexes_of_a_two_item_transaction(harness: Harness, table: str) -> int:
    from moto.dynamodb.comparisons import ConditionExpressionParser

    lexes = 0
    original = ConditionExpressionParser._lex_condition_expression

    def counting(self: Any) -> Any:
        nonlocal lexes
        lexes += 1
        return original(self)

    claim = {
        "TableName": table,
        "UpdateExpression": "SET #s = :r",
        "ConditionExpression": "#s = :q",
        "ExpressionAttributeNames": {"#s": "s"},
        "ExpressionAttributeValues": {":q": {"S": "QUEUED"}, ":r": {"S": "RUNNING"}},
    }
    ddb = harness.client("dynamodb")
    for sk in (0, 1):
        ddb.put_item(TableName=table, Item={**_key("lex", sk), "s": {"S": "QUEUED"}})
    ConditionExpressionParser._lex_condition_expression = counting  # type: ignore[method-assign]
    try:
        ddb.transact_write_items(
            TransactItems=[{"Update": {**claim, "Key": _key("lex", sk)}} for sk in (0, 1)]
        )
    finally:
        ConditionExpressionParser._lex_condition_expression = original  # type: ignore[method-assign]
    return lexes


def test_bug_still_present_dynamodb_condition_parse_cache(
    harness: Harness, plain_table: str
) -> None:
    """Fails once moto parses a transactional item's condition only once: drop the fix."""
    with moto_compat.DYNAMODB_CONDITION_PARSE_CACHE.reverted():
        assert _lexes_of_a_two_item_transaction(harness, plain_table) >= 4


def test_a_batch_of_claims_parses_their_condition_once(harness: Harness) -> None:
    assert _lexes_of_a_two_item_transaction(harness, keyed_table(harness, "txn")) <= 1


def test_pages_cut_at_one_megabyte_as_moto_cuts_them(harness: Harness, plain_table: str) -> None:
    """Differential: the 1 MB page limit (not only Limit) ends a page where moto ends it."""
    ns = uuid.uuid4().hex
    for sk in range(9):
        harness.client("dynamodb").put_item(
            TableName=plain_table, Item={**_key(ns, sk), "blob": {"S": "x" * 300_000}}
        )
    how = ("ge", 1, 0, True, 100)
    fast = _query_all(harness, plain_table, ns, how)
    assert len(fast) > 2  # the size limit cut it into pages
    with moto_compat.DYNAMODB_QUERY_PARTITION.reverted():
        assert fast == _query_all(harness, plain_table, ns, how)
