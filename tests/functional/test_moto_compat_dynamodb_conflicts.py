"""Fixes 11 and 12: the local DynamoDB refuses what AWS refuses (conflicts, throttling).

``test_bug_still_present_*`` revert a fix and show moto accepts the write AWS would refuse;
the others show each refusal with AWS's shape and botocore's retries
(``test_store_conflicts.py`` shows the store reading them right).
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from localcloud import moto_compat
from localcloud.moto_compat import FAULTS
from tests.functional._compat_fixtures import Harness, open_harness
from tests.waiting import wait_for


@pytest.fixture(scope="module")
def harness() -> Iterator[Harness]:
    yield from open_harness()


@pytest.fixture(autouse=True)
def faults() -> Iterator[None]:
    FAULTS.reset()
    yield
    FAULTS.reset()


def _table(harness: Harness) -> str:
    table = harness.unique("items")
    harness.client("dynamodb").create_table(
        TableName=table,
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    for pk in ("a", "b"):
        harness.client("dynamodb").put_item(
            TableName=table, Item={"pk": {"S": pk}, "n": {"N": "0"}}
        )
    return table


def _key(pk: str) -> dict[str, Any]:
    return {"pk": {"S": pk}}


def _bump(table: str, pk: str, condition: str | None = None) -> dict[str, Any]:
    update: dict[str, Any] = {
        "TableName": table,
        "Key": _key(pk),
        "UpdateExpression": "ADD n :one",
        "ExpressionAttributeValues": {":one": {"N": "1"}},
    }
    if condition:
        update["ConditionExpression"] = condition
    return {"Update": update}


def _error(exc: pytest.ExceptionInfo[ClientError]) -> str:
    return str(exc.value.response["Error"]["Code"])


def _n(harness: Harness, table: str, pk: str) -> int | None:
    item = harness.client("dynamodb").get_item(TableName=table, Key=_key(pk)).get("Item")
    return None if item is None else int(item["n"]["N"])


# ------------------------------------------------------- 11. transaction conflicts


def test_bug_still_present_dynamodb_transaction_conflicts(harness: Harness) -> None:
    """Fails once moto models in-flight transactions: then check whether to drop fix 11."""
    exceptions = importlib.import_module("moto.dynamodb.exceptions")
    models = importlib.import_module("moto.dynamodb.models")
    assert not hasattr(exceptions, "TransactionConflictException")
    assert "TransactionConflict" not in inspect.getsource(models)
    table = _table(harness)
    ddb = harness.client("dynamodb")
    with moto_compat.DYNAMODB_TRANSACTION_CONFLICTS.reverted(), FAULTS.hold(table, _key("a")):
        ddb.transact_write_items(TransactItems=[_bump(table, "a")])
        ddb.update_item(**_bump(table, "a")["Update"])
    assert _n(harness, table, "a") == 2  # both accepted while "a" was in a transaction


def test_a_transaction_on_a_held_item_is_cancelled_with_aws_reasons(harness: Harness) -> None:
    table = _table(harness)
    put_c = {"Put": {"TableName": table, "Item": {"pk": {"S": "c"}, "n": {"N": "9"}}}}
    with FAULTS.hold(table, _key("a")), pytest.raises(ClientError) as exc:
        harness.client("dynamodb").transact_write_items(
            TransactItems=[_bump(table, "a"), _bump(table, "b", "n > :one"), put_c]
        )
    assert _error(exc) == "TransactionCanceledException"
    reasons = exc.value.response["CancellationReasons"]
    assert [r["Code"] for r in reasons] == ["TransactionConflict", "ConditionalCheckFailed", "None"]
    assert reasons[0]["Message"] == "Transaction is ongoing for the item"
    assert (_n(harness, table, "a"), _n(harness, table, "b"), _n(harness, table, "c")) == (
        0,
        0,
        None,
    )


def test_writes_meeting_a_real_transaction_in_flight_are_refused(harness: Harness) -> None:
    """A transaction held open (``hold_seconds``): a plain write on its item raises
    ``TransactionConflictException``, a second transaction is cancelled, other items pass."""
    table = _table(harness)
    ddb = harness.client("dynamodb")
    other = harness.cloud.client("dynamodb")
    FAULTS.configure(hold_seconds=3.0)  # ample: the writes below must land inside it
    with ThreadPoolExecutor(1) as pool:
        first = pool.submit(ddb.transact_write_items, TransactItems=[_bump(table, "a")])
        wait_for(lambda: FAULTS.held() > 0, 5, "the transaction to be in flight")
        with pytest.raises(ClientError) as plain:
            other.update_item(**_bump(table, "a")["Update"])
        with pytest.raises(ClientError) as second:
            other.transact_write_items(TransactItems=[_bump(table, "b"), _bump(table, "a")])
        other.update_item(**_bump(table, "b")["Update"])
        first.result(timeout=10)
    assert _error(plain) == "TransactionConflictException"
    codes = [r["Code"] for r in second.value.response["CancellationReasons"]]
    assert codes == ["None", "TransactionConflict"]
    assert (_n(harness, table, "a"), _n(harness, table, "b")) == (1, 1)
    assert FAULTS.held() == 0


def test_the_conflict_rate_refuses_transactions_and_plain_writes(harness: Harness) -> None:
    table = _table(harness)
    ddb = harness.client("dynamodb")
    FAULTS.configure(conflict=1.0, seed=3)
    with pytest.raises(ClientError) as tx:
        ddb.transact_write_items(TransactItems=[_bump(table, "a"), _bump(table, "b")])
    with pytest.raises(ClientError) as plain:
        ddb.put_item(TableName=table, Item={"pk": {"S": "a"}, "n": {"N": "5"}})
    codes = [r["Code"] for r in tx.value.response["CancellationReasons"]]
    assert sorted(codes) == ["None", "TransactionConflict"]
    assert _error(plain) == "TransactionConflictException"
    assert FAULTS.injected["conflict"] == 2  # botocore retries neither
    assert (_n(harness, table, "a"), _n(harness, table, "b")) == (0, 0)


# ------------------------------------------------------------------ 12. throttling


def test_bug_still_present_dynamodb_throttling(harness: Harness) -> None:
    """Fails once moto throttles on its own: then check whether to drop fix 12."""
    exceptions = importlib.import_module("moto.dynamodb.exceptions")
    assert not hasattr(exceptions, "ProvisionedThroughputExceededException")
    table = _table(harness)
    FAULTS.configure(throttle=1.0)
    with moto_compat.DYNAMODB_THROTTLING.reverted():
        harness.client("dynamodb").update_item(**_bump(table, "a")["Update"])
    assert _n(harness, table, "a") == 1 and FAULTS.injected["throttle"] == 0


def test_throttled_writes_are_retried_by_botocore_until_its_attempts_run_out(
    harness: Harness,
) -> None:
    table = _table(harness)
    attempts = 3
    ddb = harness.cloud.client(
        "dynamodb", Config(retries={"mode": "standard", "total_max_attempts": attempts})
    )
    FAULTS.configure(throttle=1.0, seed=1)
    with pytest.raises(ClientError) as exc:
        ddb.update_item(**_bump(table, "a")["Update"])
    assert _error(exc) in {"ProvisionedThroughputExceededException", "ThrottlingException"}
    assert FAULTS.injected["throttle"] == attempts
    FAULTS.configure(throttle=0.3, seed=1)
    for _ in range(20):
        ddb.update_item(**_bump(table, "b")["Update"])
    assert _n(harness, table, "b") == 20 and FAULTS.injected["throttle"] > 0
