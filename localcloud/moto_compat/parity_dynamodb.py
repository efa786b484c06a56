"""AWS-parity fix for moto's DynamoDB: item writes serialised per backend (fix 3).

moto's threaded server lost concurrent ``ADD`` writes (a read-modify-write without a
lock); DynamoDB never does. The lock is also the one the performance fixes run under.
"""

from __future__ import annotations

import threading
import weakref
from contextlib import AbstractContextManager
from typing import Any, Final

from localcloud.moto_compat.machinery import Fix, Impl, Patch

# ------------------------------------------------------------ 3. DynamoDB write lock

_DYNAMODB_LOCKS: weakref.WeakKeyDictionary[Any, AbstractContextManager[Any]] = (
    weakref.WeakKeyDictionary()
)
_DYNAMODB_LOCKS_GUARD = threading.Lock()


def dynamodb_lock(backend: Any) -> AbstractContextManager[Any]:
    """The backend's write lock (re-entrant: fix 8 holds it around fix 3's layer)."""
    with _DYNAMODB_LOCKS_GUARD:
        lock = _DYNAMODB_LOCKS.get(backend)
        if lock is None:
            lock = threading.RLock()
            _DYNAMODB_LOCKS[backend] = lock
        return lock


def _wrap_backend_serialised(inner: Impl) -> Impl:
    def serialised(self: Any, *args: Any, **kwargs: Any) -> Any:
        """Serialise item writes per backend: the threaded server lost concurrent ADDs."""
        with dynamodb_lock(self):
            return inner(self, *args, **kwargs)

    return serialised


def _wrap_handler_serialised(inner: Impl) -> Impl:
    def serialised(self: Any) -> Any:
        """Serialise the whole request, so ReturnValues match the write that was made."""
        with dynamodb_lock(self.dynamodb_backend):
            return inner(self)

    return serialised


DYNAMODB_BACKEND: Final = "moto.dynamodb.models:DynamoDBBackend"
_DYNAMODB_HANDLER: Final = "moto.dynamodb.responses:DynamoHandler"

DYNAMODB_WRITE_LOCK = Fix(
    name="dynamodb_write_lock",
    design_ref="DESIGN §6.3",
    description=(
        "Concurrent item writes (UpdateItem ADD, PutItem, DeleteItem, "
        "TransactWriteItems, BatchWriteItem) are serialised per DynamoDB backend."
    ),
    patches=(
        *(
            Patch(DYNAMODB_BACKEND, name, _wrap_backend_serialised, ("self",))
            for name in ("update_item", "put_item", "delete_item", "transact_write_items")
        ),
        *(
            Patch(_DYNAMODB_HANDLER, name, _wrap_handler_serialised, ("self",))
            for name in (
                "update_item",
                "put_item",
                "delete_item",
                "transact_write_items",
                "batch_write_item",
            )
        ),
    ),
)
