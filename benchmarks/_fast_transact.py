"""A measurement prototype of a proposed moto compatibility fix (not used by the product).

moto 5.2.5's ``DynamoDBBackend.transact_write_items`` deep-copies EVERY table that the
transaction touches before it starts (to roll back on a failed condition), so the cost of
one ``TransactWriteItems`` grows with the table size: a shard commit (``move_shard`` with
counters: tblTrans item + tblMission counters) copies all of ``tblTrans`` and ``tblMission``.
Under the DynamoDB lock of moto_compat fix 3 every other DynamoDB request waits meanwhile.

``fast_transactions()`` keeps moto's logic but snapshots only the items the transaction
names, and restores just those on rollback. Enabled by the benchmarks' ``--fast-transact``
flag to measure what the fix would change; the product fix belongs in
``workflow/local/moto_compat.py`` as a guarded ``Fix`` (see benchmarks/README.md).
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any


class _NoTableCopy:
    """Stands in for the ``copy`` module inside moto.dynamodb.models: Tables are not copied."""

    def __init__(self, table_type: type) -> None:
        self._table_type = table_type

    def deepcopy(self, value: Any, memo: Any = None) -> Any:
        if isinstance(value, self._table_type):
            return value
        return copy.deepcopy(value, memo)

    def __getattr__(self, name: str) -> Any:
        return getattr(copy, name)


def _key_of(table: Any, op_type: str, op: dict[str, Any]) -> tuple[Any, Any]:
    from moto.dynamodb.models.dynamo_type import DynamoType

    attrs = op["Item"] if op_type == "Put" else op["Key"]
    hash_key = DynamoType(attrs[table.hash_key_attr])
    range_key = DynamoType(attrs[table.range_key_attr]) if table.range_key_attr else None
    return hash_key, range_key


def _restore(table: Any, hash_key: Any, range_key: Any, item: Any) -> None:
    if range_key is None:
        if item is None:
            table.items.pop(hash_key, None)
        else:
            table.items[hash_key] = item
    elif item is None:
        table.items.get(hash_key, {}).pop(range_key, None)
    else:
        table.items[hash_key][range_key] = item


@contextmanager
def fast_transactions() -> Iterator[None]:
    from moto.dynamodb import models
    from moto.dynamodb.models.table import Table

    backend_cls = models.DynamoDBBackend
    original_method = backend_cls.transact_write_items
    original_copy = models.copy

    def transact_write_items(self: Any, transact_items: list[dict[str, Any]]) -> None:
        snapshots = []
        for entry in transact_items:
            op_type, op = next(iter(entry.items()))
            table = self.tables.get(op.get("TableName", ""))
            if table is None or op_type not in {"Put", "Update", "Delete"}:
                continue
            hash_key, range_key = _key_of(table, op_type, op)
            current = table.get_item(hash_key, range_key)
            snapshots.append((table, hash_key, range_key, copy.deepcopy(current)))
        try:
            original_method(self, transact_items)
        except Exception:
            for table, hash_key, range_key, item in reversed(snapshots):
                _restore(table, hash_key, range_key, item)
            raise

    models.copy = _NoTableCopy(Table)  # type: ignore[assignment]
    backend_cls.transact_write_items = transact_write_items
    try:
        yield
    finally:
        backend_cls.transact_write_items = original_method
        models.copy = original_copy
