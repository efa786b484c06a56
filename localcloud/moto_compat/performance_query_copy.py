"""Performance fix to moto's Query: copy only the items the FilterExpression keeps.

Found by ``benchmarks/overhead.py`` (fix 21 of the package's list): moto deep-copies every
item of a page, then filters and projects the copies. A unit's finish-line read and its
VerifyUnit ask for the shards that are not DONE: after a clean run none, yet moto copied the
unit's every item twice over (500 at N=1,000, 5,000 per unit at N=10,000). The filter is
now evaluated first and an item it refuses is not copied; the kept items are copied as
before (the copy is what protects a response from a concurrent write), filtered again on
the copy and projected, in moto's order. Paging (Limit, LastEvaluatedKey, ScannedCount) is
moto's own: it is decided before the copy.
"""

from __future__ import annotations

import contextvars
from typing import Any, Final

from localcloud.moto_compat.machinery import Fix, Impl, Patch

# moto's ``Table.query`` parameters up to the filter, in its positional order (the Patch
# checks the pristine signature still starts with them).
_QUERY_PARAMS: Final = (
    "self",
    "hash_key",
    "range_comparison",
    "range_objs",
    "limit",
    "exclusive_start_key",
    "scan_index_forward",
    "projection_expressions",
    "index_name",
    "consistent_read",
    "filter_expression",
)
_PROJECTION: Final = _QUERY_PARAMS.index("projection_expressions") - 1  # in ``args``
_FILTER: Final = _QUERY_PARAMS.index("filter_expression") - 1
_INDEX: Final = _QUERY_PARAMS.index("index_name") - 1

# The filter of the Query whose page is being copied (set around moto's query only).
_KEEP: Final = contextvars.ContextVar[Any]("query_keep", default=None)
_REFUSED: Final = object()  # what a refused item "copies" to; never leaves the wrapper


def _argument(args: tuple[Any, ...], kwargs: dict[str, Any], position: int) -> Any:
    name = _QUERY_PARAMS[position + 1]
    return args[position] if len(args) > position else kwargs.get(name)


def _without(args: tuple[Any, ...], kwargs: dict[str, Any], *positions: int) -> tuple[Any, Any]:
    """``args``/``kwargs`` with the parameters at ``positions`` set to None."""
    new_args, new_kwargs = list(args), dict(kwargs)
    for position in positions:
        if len(new_args) > position:
            new_args[position] = None
        else:
            new_kwargs[_QUERY_PARAMS[position + 1]] = None
    return tuple(new_args), new_kwargs


def _wrap_query(inner: Impl) -> Impl:
    def query(self: Any, *args: Any, **kwargs: Any) -> Any:
        """A filtered base-table Query: refused items are not copied; moto's filter and
        projection then run on the copies, as moto runs them (index queries: moto's own)."""
        keep = _argument(args, kwargs, _FILTER)
        if keep is None or _argument(args, kwargs, _INDEX):
            return inner(self, *args, **kwargs)
        projection = _argument(args, kwargs, _PROJECTION)
        plain_args, plain_kwargs = _without(args, kwargs, _FILTER, _PROJECTION)
        token = _KEEP.set(keep)
        try:
            results, scanned, last_key = inner(self, *plain_args, **plain_kwargs)
        finally:
            _KEEP.reset(token)
        kept = [r for r in results if r is not _REFUSED and keep.expr(r)]
        if projection:
            kept = [r.project(projection) for r in kept]
        return kept, scanned, last_key

    return query


def _wrap_item_deepcopy(inner: Impl) -> Impl:
    def __deepcopy__(self: Any, memo: dict[int, Any]) -> Any:  # noqa: N807 (moto's hook)
        keep = _KEEP.get()
        if keep is not None and not keep.expr(self):
            return _REFUSED
        return inner(self, memo)

    return __deepcopy__


DYNAMODB_QUERY_FILTER_BEFORE_COPY = Fix(
    name="dynamodb_query_filter_before_copy",
    design_ref="DESIGN §6 (found by benchmarks/overhead.py)",
    description=(
        "A filtered base-table Query copies only the items its FilterExpression keeps "
        "(moto deep-copied the whole page, then filtered the copies; same items, same "
        "paging, same projection)."
    ),
    patches=(
        Patch("moto.dynamodb.models.table:Table", "query", _wrap_query, _QUERY_PARAMS),
        Patch(
            "moto.dynamodb.models.dynamo_type:Item",
            "__deepcopy__",
            _wrap_item_deepcopy,
            ("self", "memo"),
        ),
    ),
)
