"""AWS-parity fixes for moto's DynamoDB: transaction conflicts and throttling (fixes 11, 12).

moto applies every write at once and never refuses one for contention; DynamoDB does
(DESIGN §10). Fix 11 ``dynamodb_transaction_conflicts`` models a transaction *in flight*: a
``TransactWriteItems`` holds its item keys from arrival until it has been applied (plus
``hold_seconds``), and meanwhile another transaction on one of them is cancelled
(``TransactionCanceledException``, a ``TransactionConflict`` reason at its index,
``ConditionalCheckFailed`` where a condition fails, ``None`` elsewhere) and a plain
``PutItem``/``UpdateItem``/``DeleteItem`` raises ``TransactionConflictException``. Fix 12
``dynamodb_throttling`` throttles item writes at a rate, so botocore's retries run and can
run out. ``FAULTS`` holds the knobs: ``conflict`` (a phantom in-flight transaction per write),
``throttle``, ``hold_seconds``, ``seed``; all zero by default, so only real overlap conflicts.
"""

from __future__ import annotations

import json
import random
import threading
import time
from collections import Counter
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Final

from localcloud.moto_compat.machinery import Fix, Impl, Patch

_HANDLER: Final = "moto.dynamodb.responses:DynamoHandler"
_ERROR_PREFIX: Final = "com.amazonaws.dynamodb.v20120810#"
CONFLICT_MESSAGE: Final = "Transaction is ongoing for the item"
THROTTLE_MESSAGE: Final = (
    "The level of configured provisioned throughput for the table was exceeded. "
    "Consider increasing your provisioning level with the UpdateTable API."
)
PLAIN_WRITES: Final = ("put_item", "update_item", "delete_item")
THROTTLE_CODES: Final = ("ProvisionedThroughputExceededException", "ThrottlingException")
THROTTLED: Final = (*PLAIN_WRITES, "transact_write_items", "batch_write_item")

ItemKey = tuple[str, str]  # (table name, canonical JSON of the key attributes)


def item_key(table: str, key: Mapping[str, Any]) -> ItemKey:
    return table, json.dumps(key, sort_keys=True, default=str)


@dataclass
class DynamoFaults:
    """What the local DynamoDB refuses, and a log of what it refused (for tests and chaos)."""

    conflict: float = 0.0
    throttle: float = 0.0
    hold_seconds: float = 0.0
    injected: Counter[str] = field(default_factory=Counter)
    _rng: random.Random = field(default_factory=random.Random)  # fault injection, not crypto
    _held: Counter[ItemKey] = field(default_factory=Counter)
    _guard: threading.Lock = field(default_factory=threading.Lock)

    def configure(
        self,
        *,
        conflict: float = 0.0,
        throttle: float = 0.0,
        hold_seconds: float = 0.0,
        seed: int | None = None,
    ) -> None:
        with self._guard:
            self.conflict, self.throttle, self.hold_seconds = conflict, throttle, hold_seconds
            self._rng.seed(seed)
            self.injected.clear()

    def reset(self) -> None:
        self.configure()

    @contextmanager
    def hold(self, table: str, key: Mapping[str, Any]) -> Iterator[None]:
        """Keep an item held as by an in-flight transaction (wire-form key), for a test."""
        held = [item_key(table, key)]
        self._acquire(held)
        try:
            yield
        finally:
            self._release(held)

    def held(self) -> int:
        with self._guard:
            return sum(self._held.values())

    def _roll(self, rate: float) -> bool:
        return rate > 0 and self._rng.random() < rate

    def throttle_code(self) -> str | None:
        """The throttling error to answer with, or None (AWS uses both names)."""
        with self._guard:
            if not self._roll(self.throttle):
                return None
            self.injected["throttle"] += 1
            return self._rng.choice(THROTTLE_CODES)

    def conflicts(self, keys: list[ItemKey], *, hold: bool) -> list[int]:
        """Indexes of ``keys`` held by an in-flight transaction (or a phantom one, at the
        ``conflict`` rate); with ``hold`` and none found, the caller now holds them all."""
        with self._guard:
            found = [i for i, k in enumerate(keys) if self._held[k] > 0]
            if not found and keys and self._roll(self.conflict):
                found = [self._rng.randrange(len(keys))]
            if found:
                self.injected["conflict"] += 1
            elif hold:
                self._held.update(keys)
            return found

    def _acquire(self, keys: list[ItemKey]) -> None:
        with self._guard:
            self._held.update(keys)

    def _release(self, keys: list[ItemKey]) -> None:
        with self._guard:
            self._held.subtract(keys)
            self._held += Counter()  # drop the zeros


FAULTS: Final = DynamoFaults()


def _error(code: str, message: str) -> Exception:
    from moto.dynamodb.exceptions import DynamodbException

    return DynamodbException(_ERROR_PREFIX + code, message)


def _key_of(handler: Any, table_name: str, op: Mapping[str, Any]) -> ItemKey:
    if "Key" in op:
        return item_key(table_name, op["Key"])
    table = handler.dynamodb_backend.get_table(table_name)
    names = [n for n in (table.hash_key_attr, table.range_key_attr) if n]
    return item_key(table_name, {n: op["Item"].get(n) for n in names})


def _cancelled(handler: Any, items: list[dict[str, Any]], conflicting: list[int]) -> Exception:
    """AWS's cancellation: each item's reason, conditions evaluated on the others."""
    from moto.dynamodb.exceptions import TransactionCanceledException

    errors: list[tuple[str | None, str | None, Any]] = [(None, None, None)] * len(items)
    checks = [
        (i, {"ConditionCheck": {k: v for k, v in op.items() if k != "Item"} | {"Key": key}})
        for i, item in enumerate(items)
        if i not in conflicting
        for op in item.values()
        if op.get("ConditionExpression")
        for key in [json.loads(_key_of(handler, op["TableName"], op)[1])]
    ]
    if checks:
        try:
            handler.dynamodb_backend.transact_write_items([c for _, c in checks])
        except TransactionCanceledException as exc:
            reasons = json.loads(exc.description)["CancellationReasons"]
            for (i, _), reason in zip(checks, reasons, strict=True):
                if reason.get("Code") == "ConditionalCheckFailed":
                    errors[i] = ("ConditionalCheckFailed", reason.get("Message"), None)
    for i in conflicting:
        errors[i] = ("TransactionConflict", CONFLICT_MESSAGE, None)
    return TransactionCanceledException(errors)


def _wrap_transaction_in_flight(inner: Impl) -> Impl:
    def in_flight(self: Any) -> Any:
        """Hold the items while the transaction runs; refuse it if one is held already."""
        items: list[dict[str, Any]] = self.body.get("TransactItems") or []
        keys = [_key_of(self, op["TableName"], op) for item in items for op in item.values()]
        conflicting = FAULTS.conflicts(keys, hold=True)
        if conflicting:
            raise _cancelled(self, items, conflicting)
        try:
            if FAULTS.hold_seconds > 0:
                time.sleep(FAULTS.hold_seconds)
            return inner(self)
        finally:
            FAULTS._release(keys)

    return in_flight


def _wrap_plain_write(inner: Impl) -> Impl:
    def against_transactions(self: Any) -> Any:
        """A plain write on an item an in-flight transaction holds is refused."""
        key = _key_of(self, self.body["TableName"], self.body)
        if FAULTS.conflicts([key], hold=False):
            raise _error("TransactionConflictException", CONFLICT_MESSAGE)
        return inner(self)

    return against_transactions


def _wrap_throttled(inner: Impl) -> Impl:
    def throttled(self: Any) -> Any:
        """Refuse the request as over capacity at ``FAULTS.throttle``'s rate."""
        code = FAULTS.throttle_code()
        if code is not None:
            raise _error(code, THROTTLE_MESSAGE)
        return inner(self)

    return throttled


DYNAMODB_TRANSACTION_CONFLICTS = Fix(
    name="dynamodb_transaction_conflicts",
    design_ref="DESIGN §10 (DynamoDB transactions)",
    description=(
        "A TransactWriteItems holds its items while in flight: another transaction on one "
        "is cancelled with a TransactionConflict reason, a plain write raises "
        "TransactionConflictException."
    ),
    patches=(
        Patch(_HANDLER, "transact_write_items", _wrap_transaction_in_flight, ("self",)),
        *(Patch(_HANDLER, name, _wrap_plain_write, ("self",)) for name in PLAIN_WRITES),
    ),
)

DYNAMODB_THROTTLING = Fix(
    name="dynamodb_throttling",
    design_ref="DESIGN §10 (hot items, ~1,000 WCU/s per partition)",
    description="Item writes are throttled (ProvisionedThroughputExceededException) at a rate.",
    patches=tuple(Patch(_HANDLER, name, _wrap_throttled, ("self",)) for name in THROTTLED),
)
