"""Fix 18, ``dynamodb_update_fast_path``: a plain SET decides and writes as moto's own path.

The differential property runs the same UpdateItem and TransactWriteItems requests with the
fix and with it reverted, over plain SETs (the fast path) and near misses (moto's path):
key and index-key targets, undefined and repeated placeholders, literal names, other
clauses, conditions that refuse, items that do not exist, and values big enough to pass
the 400 KB item limit. Outcome, error, returned attributes, stored item and stream record
must all be the same. The canary fails the day moto's update path stops walking its tree.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from botocore.exceptions import ClientError
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from localcloud import moto_compat
from tests.functional._compat_fixtures import Harness, open_harness

FIX = moto_compat.FIXES_BY_NAME["dynamodb_update_fast_path"]
# Attributes an update may target: plain ones, the table's keys, and an index's key.
TARGETS = ("a", "b", "c", "pk", "sk", "g")
BIG = {"S": "<150 KB>"}  # three of these pass the 400 KB item limit (made in _wire)


@pytest.fixture(scope="module")
def harness() -> Iterator[Harness]:
    yield from open_harness()


@pytest.fixture(scope="module")
def table(harness: Harness) -> str:
    """Keyed like tblTrans, plus a GSI (``g``) and a stream: every check a SET can meet."""
    name = harness.unique("fastset")
    harness.client("dynamodb").create_table(
        TableName=name,
        KeySchema=[
            {"AttributeName": "pk", "KeyType": "HASH"},
            {"AttributeName": "sk", "KeyType": "RANGE"},
        ],
        AttributeDefinitions=[
            {"AttributeName": "pk", "AttributeType": "S"},
            {"AttributeName": "sk", "AttributeType": "N"},
            {"AttributeName": "g", "AttributeType": "S"},
        ],
        GlobalSecondaryIndexes=[
            {
                "IndexName": "byG",
                "KeySchema": [{"AttributeName": "g", "KeyType": "HASH"}],
                "Projection": {"ProjectionType": "ALL"},
            }
        ],
        StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"},
        BillingMode="PAY_PER_REQUEST",
    )
    return name


def _moto_table(harness: Harness, name: str) -> Any:
    from moto.core.models import DEFAULT_ACCOUNT_ID
    from moto.dynamodb.models import dynamodb_backends

    return dynamodb_backends[DEFAULT_ACCOUNT_ID][harness.cloud.region].tables[name]


_values = st.one_of(
    st.text(max_size=4).map(lambda s: {"S": s}),  # "" included: refused on index keys
    st.integers(-99, 99).map(lambda n: {"N": str(n)}),
    st.booleans().map(lambda b: {"BOOL": b}),
    st.just({"NULL": True}),
    st.just(BIG),
    st.dictionaries(
        st.sampled_from("xyz"), st.integers(0, 9).map(lambda n: {"N": str(n)}), max_size=2
    ).map(lambda m: {"M": m}),
    st.lists(st.text(max_size=2).map(lambda s: {"S": s}), max_size=2).map(lambda v: {"L": v}),
    st.sets(st.text(min_size=1, max_size=2), min_size=1, max_size=2).map(
        lambda s: {"SS": sorted(s)}
    ),
)
# Expression shapes: the first three are plain SETs; the rest must take moto's path.
_SHAPES = ("plain", "lower", "spaced", "literal", "remove", "arith", "two_sets")
_CONDITIONS = (None, "attribute_exists(pk)", "#c = :c", "attribute_not_exists(#c)")


@st.composite
def _updates(draw: st.DrawFn) -> dict[str, Any]:
    pairs = draw(st.lists(st.tuples(st.sampled_from(TARGETS), _values), min_size=1, max_size=4))
    shape = draw(st.sampled_from(_SHAPES))
    clauses = [f"#n{i} = :v{i}" for i in range(len(pairs))]
    names = {f"#n{i}": target for i, (target, _) in enumerate(pairs)}
    values = {f":v{i}": value for i, (_, value) in enumerate(pairs)}
    if shape == "literal":
        clauses[0] = f"{pairs[0][0]} = :v0"
        del names["#n0"]
    if draw(st.booleans()):  # a placeholder the request does not define
        victim = draw(st.integers(0, len(pairs) - 1))
        values.pop(f":v{victim}", None) if draw(st.booleans()) else names.pop(f"#n{victim}", None)
    text = {
        "plain": "SET " + ", ".join(clauses),
        "lower": "set " + ",".join(clauses),
        "spaced": "  SET   " + " ,  ".join(c.replace(" = ", "=") for c in clauses) + " ",
        "literal": "SET " + ", ".join(clauses),
        "remove": "SET " + ", ".join(clauses) + " REMOVE #r",
        "arith": "SET " + ", ".join(clauses) + ", #q = #q + :one",
        "two_sets": "SET " + clauses[0] + " SET " + ", ".join(clauses[1:] or ["#z = :v0"]),
    }[shape]
    extra_names = {"remove": {"#r": "c"}, "arith": {"#q": "a"}, "two_sets": {"#z": "z"}}
    names.update(extra_names.get(shape, {}))
    if shape == "arith":
        values[":one"] = {"N": "1"}
    condition = draw(st.sampled_from(_CONDITIONS))
    request: dict[str, Any] = {"UpdateExpression": text}
    if condition is not None:
        request["ConditionExpression"] = condition
        if "#c" in condition:
            names["#c"] = "a"
        if ":c" in condition:
            values[":c"] = draw(st.sampled_from([{"N": "1"}, {"S": "on"}]))
    if names:
        request["ExpressionAttributeNames"] = names
    if values:
        request["ExpressionAttributeValues"] = values
    return request


_items = st.one_of(
    st.none(),  # no item: UpdateItem creates it
    st.dictionaries(st.sampled_from(["a", "b", "c", "g"]), _values, max_size=3).filter(
        lambda item: "g" not in item or (item["g"] not in ({"S": ""}, BIG) and "S" in item["g"])
    ),  # a stored item's index key is a valid one
)


def _wire(value: Any) -> Any:
    """The drawn request as sent: BIG becomes 150 KB here, not in hypothesis' reports."""
    if value == BIG:
        return {"S": "x" * 150_000}
    if isinstance(value, dict):
        return {k: _wire(v) for k, v in value.items()}
    return value


def _outcome(call: Any) -> Any:
    try:
        return ("ok", call())
    except ClientError as exc:
        error = exc.response["Error"]
        return ("refused", error["Code"], error["Message"], exc.response.get("Item"))


def _run(harness: Harness, table: str, cases: list[tuple[Any, Any]], tag: str) -> list[Any]:
    """Each case on a fresh item twice (UpdateItem, then a transaction): every outcome,
    the stored item after each, and the stream records each write added."""
    ddb = harness.client("dynamodb")
    stream = _moto_table(harness, table).stream_shard
    seen = []
    for i, (item, request) in enumerate(cases):
        for way in ("update", "transact"):
            key = {"pk": {"S": f"{tag}-{i}-{way}"}, "sk": {"N": "0"}}
            ddb.delete_item(TableName=table, Key=key)  # the other run's, if any
            if item is not None:
                ddb.put_item(TableName=table, Item={**key, **_wire(item)})
            before = len(stream.items)
            write = {"TableName": table, "Key": key, **_wire(request)}
            if way == "update":
                got = _outcome(
                    lambda w=write: ddb.update_item(
                        **w, ReturnValues="ALL_NEW", ReturnValuesOnConditionCheckFailure="ALL_OLD"
                    ).get("Attributes")
                )
            else:
                got = _outcome(
                    lambda w=write: (
                        ddb.transact_write_items(
                            TransactItems=[
                                {"Update": {**w, "ReturnValuesOnConditionCheckFailure": "ALL_OLD"}}
                            ]
                        )
                        and None
                    )
                )
            stored = ddb.get_item(TableName=table, Key=key, ConsistentRead=True).get("Item")
            records = [_record(r) for r in stream.items[before:]]
            seen.append((way, got, stored, records))
    return seen


def _record(record: Any) -> Any:
    body = record.to_json()["dynamodb"]
    return body.get("OldImage"), body.get("NewImage"), record.to_json()["eventName"]


_PAST_400_KB = (
    {"a": BIG, "b": BIG},
    {
        "UpdateExpression": "SET #n0 = :v0",
        "ExpressionAttributeNames": {"#n0": "c"},
        "ExpressionAttributeValues": {":v0": BIG},
    },
)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(_items, _updates()), min_size=1, max_size=4))
@example([_PAST_400_KB])  # a plain SET the item size limit refuses
def test_updates_decide_and_write_as_moto_does_without_the_fix(
    harness: Harness, table: str, cases: list[tuple[Any, Any]]
) -> None:
    tag = harness.unique("u")
    fast = _run(harness, table, cases, tag)
    with FIX.reverted():
        slow = _run(harness, table, cases, tag)
    assert fast == slow


def _walks_per_update(harness: Harness, table: str) -> float:
    """Tree walks moto's validators make per transactional plain-SET item."""
    from moto.dynamodb.parsing.ast_nodes import DepthFirstTraverser

    walks = 0
    original = DepthFirstTraverser.traverse

    def counting(self: Any, *args: Any, **kwargs: Any) -> Any:
        nonlocal walks
        walks += 1
        return original(self, *args, **kwargs)

    ddb = harness.client("dynamodb")
    keys = [{"pk": {"S": harness.unique("walk")}, "sk": {"N": str(n)}} for n in range(4)]
    for key in keys:
        ddb.put_item(TableName=table, Item={**key, "a": {"S": "QUEUED"}})
    claim = {
        "TableName": table,
        "UpdateExpression": "SET #a = :r, #b = :t",
        "ConditionExpression": "#a = :q",
        "ExpressionAttributeNames": {"#a": "a", "#b": "b"},
        "ExpressionAttributeValues": {
            ":q": {"S": "QUEUED"},
            ":r": {"S": "RUNNING"},
            ":t": {"N": "1"},
        },
    }
    DepthFirstTraverser.traverse = counting  # type: ignore[method-assign]
    try:
        ddb.transact_write_items(TransactItems=[{"Update": {**claim, "Key": k}} for k in keys])
    finally:
        DepthFirstTraverser.traverse = original  # type: ignore[method-assign]
    return walks / len(keys)


def test_bug_still_present_dynamodb_update_fast_path(harness: Harness, table: str) -> None:
    """Fails once moto stops walking a plain SET's tree many times: re-measure, maybe drop
    the fix."""
    with FIX.reverted():
        assert _walks_per_update(harness, table) >= 8


def test_a_plain_set_walks_no_tree(harness: Harness, table: str) -> None:
    assert _walks_per_update(harness, table) == 0
