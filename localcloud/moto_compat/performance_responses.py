"""Performance fix to moto's DynamoDB responses: items become wire JSON in one walk.

Found by ``benchmarks/overhead.py --profile`` (fix 20 of the package's list): a Query of a
mission's 1,000 shard items spent a third of its server time in ``dynamo_to_dict``.
"""

from __future__ import annotations

import importlib
from typing import Any, Final

from localcloud.moto_compat.machinery import Fix, Impl, Patch

# AttributeValue types whose value is already its wire form (moto keeps N as a string).
_SCALARS: Final = frozenset({"S", "N", "BOOL", "NULL"})
_SETS: Final = frozenset({"SS", "NS"})
_PLAIN: Final = (str, int, float, bool, type(None))


class _WireConverter:
    """moto's ``dynamo_to_dict`` by type: the same output in one walk."""

    def __init__(self, inner: Impl) -> None:
        self._inner = inner
        self._dynamo_type = importlib.import_module("moto.dynamodb.models.dynamo_type").DynamoType

    def convert(self, obj: Any) -> Any:
        """moto converted every attribute through a generic recursion (five type checks and
        a call per value, twice for each DynamoType): ~0.3 ms per shard item. Objects with
        ``to_json`` and datetimes still go through moto's own code."""
        if type(obj) is self._dynamo_type:
            return self._attribute(obj)
        if isinstance(obj, _PLAIN):
            return obj
        if isinstance(obj, dict) and not hasattr(obj, "to_json"):
            return {k: self.convert(v) for k, v in obj.items()}
        if isinstance(obj, list):
            return [self.convert(v) for v in obj]
        return self._inner(obj)

    def _attribute(self, value: Any) -> Any:
        """One AttributeValue; binary ones (moto decodes them) take moto's code."""
        kind = value.type
        if kind in _SCALARS:
            return {kind: value.value}
        if kind == "M":
            return {"M": {k: self.convert(v) for k, v in value.value.items()}}
        if kind == "L":
            return {"L": [self.convert(v) for v in value.value]}
        if kind in _SETS:
            return {kind: list(value.value)}
        return self._inner(value)


def _wrap_dynamo_to_dict(inner: Impl) -> Impl:
    converter = _WireConverter(inner)

    def dynamo_to_dict(obj: Any) -> Any:
        return converter.convert(obj)

    return dynamo_to_dict


DYNAMODB_RESULT_CONVERSION = Fix(
    name="dynamodb_result_conversion",
    design_ref="DESIGN §6 (found by benchmarks/overhead.py --profile)",
    description=(
        "DynamoDB results are turned into wire JSON by attribute type in one walk, not by "
        "moto's generic recursion (same output; binary values still take moto's path)."
    ),
    patches=(Patch("moto.dynamodb.responses", "dynamo_to_dict", _wrap_dynamo_to_dict, ("obj",)),),
)
