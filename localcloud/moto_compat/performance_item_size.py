"""Performance fix to moto's DynamoDB items: an item is sized once as it is built, not once
per attribute (fix 24 of the package's list).

Found by profiling PlanMission's BatchWriteItem calls.
"""

from __future__ import annotations

import importlib
from typing import Any, Final

from localcloud.moto_compat.machinery import Fix, Impl, Patch

# moto's own figure (dynamo_type.LimitedSizeDict): AWS's 400 KB, measured between 409 and 410 KB.
ITEM_SIZE_LIMIT: Final = 405000


def _wrap_item_init(_inner: Impl) -> Impl:
    types = importlib.import_module("moto.dynamodb.models.dynamo_type")
    bytesize = importlib.import_module("moto.dynamodb.models.utilities").bytesize
    too_large = importlib.import_module("moto.dynamodb.exceptions").ItemSizeTooLarge

    def sized_once(self: Any, hash_key: Any, range_key: Any, attrs: dict[str, Any]) -> None:
        """moto inserted the attributes one by one into a dict that re-sized every attribute
        it already held at each insertion: n²/2 sizings for an item of n attributes, a third
        of the emulator's time in a plan's BatchWriteItem. The same check, at the same
        attribute and with the same error, on a running total: each insertion's sum is the
        total so far (the dict is new, its keys distinct)."""
        self.hash_key = hash_key
        self.range_key = range_key
        built = types.LimitedSizeDict.__new__(types.LimitedSizeDict)
        dict.__init__(built)
        total = 0
        for key, value in attrs.items():
            typed = types.DynamoType(value)
            total += bytesize(key) + typed.size()
            if total > ITEM_SIZE_LIMIT:
                raise too_large
            dict.__setitem__(built, key, typed)
        self.attrs = built

    return sized_once


DYNAMODB_ITEM_SIZE_ONCE = Fix(
    name="dynamodb_item_size_once",
    design_ref="DESIGN §6 (found by profiling PlanMission's BatchWriteItem)",
    description=(
        "A new item's 400 KB check keeps a running total instead of re-sizing every "
        "attribute at each insertion (the same limit, error and attribute order)."
    ),
    patches=(
        Patch(
            "moto.dynamodb.models.dynamo_type:Item",
            "__init__",
            _wrap_item_init,
            ("self", "hash_key", "range_key", "attrs"),
        ),
    ),
)
