"""Performance fixes to moto's DynamoDB internals: same responses, less work per call.

Found by the benchmarks: moto did O(table) work per transaction and per Query, walked
every AttributeValue member while serialising, and parsed each condition expression three
times per transactional item (fixes 8, 9, 10 and 17 of the package's list). Each has a
differential test against moto's own code path.
"""

from __future__ import annotations

import contextvars
import copy
import importlib
import inspect
import json
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Final

from localcloud.moto_compat.machinery import Fix, Impl, Patch
from localcloud.moto_compat.parity_dynamodb import DYNAMODB_BACKEND, dynamodb_lock

# ------------------------------------------- 8. transactions snapshot items, not tables


@dataclass
class _TransactionSnapshot:
    """The items a TransactWriteItems names, as they were before it ran, for rollback."""

    tables: dict[str, Any] = field(default_factory=dict)
    items: list[tuple[Any, Any, Any, Any]] = field(default_factory=list)  # table, hash, range, item
    stream_lengths: dict[str, int] = field(default_factory=dict)

    @classmethod
    def take(cls, backend: Any, transact_items: list[dict[str, Any]]) -> _TransactionSnapshot:
        invalid = importlib.import_module("moto.dynamodb.exceptions").MockValidationException
        snap = cls()
        for entry in transact_items:
            if not isinstance(entry, dict) or len(entry) != 1:
                continue  # moto refuses the transaction before any write
            op_type, op = next(iter(entry.items()))
            table = backend.tables.get(op.get("TableName")) if isinstance(op, dict) else None
            if table is None:
                continue
            snap.tables[table.name] = table
            shard = getattr(table, "stream_shard", None)
            if shard is not None:
                snap.stream_lengths[table.name] = len(shard.items)
            keys = _transaction_keys(table, op_type, op)
            if keys is None:
                continue
            try:
                hash_key, range_key = backend.get_keys_value(table, keys)
                current = table.get_item(hash_key, range_key)
            except invalid:
                continue  # moto refuses this key too, before any write
            snap.items.append((table, hash_key, range_key, copy.deepcopy(current)))
        return snap

    @contextmanager
    def tables_not_copied(self) -> Iterator[None]:
        """moto deep-copies each named table for its rollback: make that copy the table.

        Only for the transaction's duration, under the DynamoDB lock (a CreateBackup in that
        window would share the table; the product never makes one)."""
        for table in self.tables.values():
            vars(table)["__deepcopy__"] = lambda _memo, same=table: same
        try:
            yield
        finally:
            for table in self.tables.values():
                vars(table).pop("__deepcopy__", None)

    def restore(self) -> None:
        for table, hash_key, range_key, item in reversed(self.items):
            _put_back(table, hash_key, range_key, item)
        for name, length in self.stream_lengths.items():
            del self.tables[name].stream_shard.items[length:]


def _transaction_keys(table: Any, op_type: str, op: dict[str, Any]) -> dict[str, Any] | None:
    """The key of the item a Put/Update/Delete writes (None for ConditionCheck or no key)."""
    if op_type == "Put":
        item = op.get("Item") or {}
        names = [table.hash_key_attr, *([table.range_key_attr] if table.range_key_attr else [])]
        if not all(name in item for name in names):
            return None
        return {name: item[name] for name in names}
    if op_type in {"Update", "Delete"}:
        key = op.get("Key")
        return key if isinstance(key, dict) else None
    return None


def _put_back(table: Any, hash_key: Any, range_key: Any, item: Any) -> None:
    if range_key is None:
        if item is None:
            table.items.pop(hash_key, None)
        else:
            table.items[hash_key] = item
        return
    if item is not None:
        table.items[hash_key][range_key] = item
        return
    by_range = table.items.get(hash_key)
    if by_range is not None:
        by_range.pop(range_key, None)
        if not by_range:
            del table.items[hash_key]


def _wrap_transact_write_items(inner: Impl) -> Impl:
    def transact_write_items(self: Any, transact_items: list[dict[str, Any]]) -> None:
        """Roll back a cancelled transaction from item snapshots.

        moto deep-copied every table the transaction touched, on every call, so one shard
        commit cost O(items in tblTrans): 670 ms at 10,000 items, under the write lock.
        """
        with dynamodb_lock(self):
            snapshot = _TransactionSnapshot.take(self, transact_items)
            try:
                with snapshot.tables_not_copied():
                    inner(self, transact_items)
            except BaseException:
                snapshot.restore()
                raise

    return transact_write_items


# Created after fix 3 (imported above), so this layer wraps fix 3's on transact_write_items.
TRANSACTION_ITEM_SNAPSHOT = Fix(
    name="transaction_item_snapshot",
    design_ref="DESIGN §6 (found by benchmarks/scale.py)",
    description=(
        "TransactWriteItems snapshots only the items it writes for its rollback; moto "
        "deep-copied every table it touched, so each commit slowed as tblTrans grew."
    ),
    patches=(
        Patch(
            DYNAMODB_BACKEND,
            "transact_write_items",
            _wrap_transact_write_items,
            ("self", "transact_items"),
        ),
    ),
)


# ------------------------------------ 9. DynamoDB attribute values serialised as they are


def is_wire_attribute_value(value: Any) -> bool:
    """True for a DynamoDB AttributeValue already in its JSON wire form (binary excluded:
    moto's serializer base64-encodes it)."""
    if not isinstance(value, dict) or len(value) != 1:
        return False
    ((kind, inner),) = value.items()
    check = _WIRE_CHECKS.get(kind)
    return check is not None and check(inner)


_WIRE_CHECKS: Final[dict[str, Callable[[Any], bool]]] = {
    "S": lambda v: isinstance(v, str),
    "N": lambda v: isinstance(v, str),
    "BOOL": lambda v: isinstance(v, bool),
    "NULL": lambda v: isinstance(v, bool),
    "SS": lambda v: isinstance(v, list) and all(isinstance(x, str) for x in v),
    "NS": lambda v: isinstance(v, list) and all(isinstance(x, str) for x in v),
    "M": lambda v: (
        isinstance(v, dict)
        and all(isinstance(k, str) and is_wire_attribute_value(x) for k, x in v.items())
    ),
    "L": lambda v: isinstance(v, list) and all(is_wire_attribute_value(x) for x in v),
}


def _wrap_json_structure(inner: Impl) -> Impl:
    def _serialize_type_structure(
        self: Any, serialized: Any, value: Any, shape: Any, key: str
    ) -> None:
        """Emit an AttributeValue in wire form as it is. moto resolved each of its ten
        members through alias lookups: ~1 ms per item, 0.9 s for a 1,000-item Query."""
        if key and shape.name == "AttributeValue" and is_wire_attribute_value(value):
            self._default_serialize(serialized, value, shape, key)
            return
        inner(self, serialized, value, shape, key)

    return _serialize_type_structure


DYNAMODB_WIRE_VALUES = Fix(
    name="dynamodb_wire_values",
    design_ref="DESIGN §6 (found by benchmarks/overhead.py)",
    description=(
        "DynamoDB responses emit attribute values already in wire form directly instead of "
        "walking each through moto's generic shape serializer (same JSON, ~10x faster)."
    ),
    patches=(
        Patch(
            "moto.core.serialize:BaseJSONSerializer",
            "_serialize_type_structure",
            _wrap_json_structure,
            ("self", "serialized", "value", "shape", "key"),
        ),
    ),
)


# ------------------------------------------------ 10. Query reads its partition's key range


def _is_base_key_query(table: Any, arg: dict[str, Any]) -> bool:
    """A Query on the table's own hash + range key: no index, no legacy QueryFilter."""
    if arg.get("index_name") or arg.get("filter_kwargs") or not table.range_key_attr:
        return False
    hash_names = [c[0] for c in arg.get("hash_key_conditions") or []]
    range_names = [c[0] for c in arg.get("range_key_conditions") or []]
    return hash_names in ([], [table.hash_key_attr]) and range_names in (
        [],
        [table.range_key_attr],
    )


def _page_of(table: Any, partition: dict[Any, Any], arg: dict[str, Any]) -> dict[Any, Any]:
    """The items moto's Query needs to answer one page: those whose range key matches, from
    the ExclusiveStartKey on, up to the Limit or 1 MB, plus the nearest item on either side.

    Matches are contiguous in key order; the neighbours keep moto's paging exact (it reports
    a LastEvaluatedKey when the page is full and any item follows). Each key's value is read
    once and no DynamoType is hashed; moto cast both sides of every comparison.
    """
    rows = sorted(((k.cast_value, k, item) for k, item in partition.items()), key=_first)
    comparison = arg.get("range_comparison")
    if comparison:
        func = importlib.import_module("moto.dynamodb.comparisons").get_comparison_func(comparison)
        targets = [o.cast_value for o in arg.get("range_objs") or []]
        hits = [i for i, row in enumerate(rows) if func(row[0], *targets)]
    else:
        hits = list(range(len(rows)))
    if not hits:
        return {}
    low, high = hits[0], hits[-1]  # matching rows are low..high; the rest are neighbours
    window = [(low <= i <= high, row) for i, row in enumerate(rows)][max(low - 1, 0) : high + 2]
    if arg.get("scan_index_forward") is not False:
        window = _forward_page(table, window, arg)
    return {key: item for _, (_, key, item) in window}


def _first(row: tuple[Any, ...]) -> Any:
    return row[0]


def _forward_page(
    table: Any, window: list[tuple[bool, tuple[Any, Any, Any]]], arg: dict[str, Any]
) -> list[tuple[bool, tuple[Any, Any, Any]]]:
    dynamo_type = importlib.import_module("moto.dynamodb.models.dynamo_type").DynamoType
    size_limit = importlib.import_module("moto.dynamodb.models.table").RESULT_SIZE_LIMIT
    start = arg.get("exclusive_start_key") or {}
    if table.range_key_attr in start:
        after = dynamo_type(start[table.range_key_attr]).cast_value
        window = [entry for entry in window if entry[1][0] > after]
    limit = arg.get("limit")
    page: list[tuple[bool, tuple[Any, Any, Any]]] = []
    count = size = 0
    for entry in window:
        page.append(entry)
        matches, (_, _, item) = entry
        if not matches:
            continue
        item_size = item.size()
        if count == limit or size + item_size > size_limit:
            break  # moto sees this item follow a full page: it reports the LastEvaluatedKey
        count += 1
        size += item_size
    return page


# Set while one Query runs: each item's size by id (moto sized every result three times); the
# item is kept with its size, so no id is reused for another item while the Query runs.
_QUERY_SIZES: Final = contextvars.ContextVar[dict[int, tuple[Any, int]] | None](
    "query_sizes", default=None
)


def _wrap_item_size(inner: Impl) -> Impl:
    def size(self: Any) -> int:
        """Within one Query, an item is sized once (the page cut, moto's limit check and
        its result size each sized it again: a third of the Query's time)."""
        sizes = _QUERY_SIZES.get()
        if sizes is None:
            return int(inner(self))
        known = sizes.get(id(self))
        if known is None:
            known = sizes[id(self)] = (self, int(inner(self)))
        return known[1]

    return size


def _wrap_table_query(inner: Impl) -> Impl:
    signature = inspect.signature(inner)

    def query(self: Any, *args: Any, **kwargs: Any) -> Any:
        """Give moto's Query only the items of the page it answers.

        moto sorted every item of the table, then computed the size of every item of the
        partition, on every Query, and walked the pages before the ExclusiveStartKey: ~1 s
        at 10,000 items for a unit's 33 shards, ~5 s to list 10,000 shards.
        """
        arg = signature.bind(self, *args, **kwargs).arguments
        hash_key = arg.get("hash_key")
        if hash_key is None or not _is_base_key_query(self, arg):
            return inner(self, *args, **kwargs)
        sizing = _QUERY_SIZES.set({})  # the items are held (by the table) while it runs
        try:
            view = copy.copy(self)  # shares everything but ``items``: moto's query only reads
            view.items = {hash_key: _page_of(self, dict(self.items.get(hash_key, {})), arg)}
            return inner(view, *args, **kwargs)
        finally:
            _QUERY_SIZES.reset(sizing)

    return query


DYNAMODB_QUERY_PARTITION = Fix(
    name="dynamodb_query_partition",
    design_ref="DESIGN §6 (found by benchmarks/scale.py)",
    description=(
        "A base-table Query reads only its partition's items in the key range, and sizes "
        "each once (moto sorted the whole table and sized the whole partition, and each "
        "result three times, on every Query)."
    ),
    patches=(
        Patch(
            "moto.dynamodb.models.table:Table",
            "query",
            _wrap_table_query,
            ("self", "hash_key", "range_comparison", "range_objs"),
        ),
        Patch("moto.dynamodb.models.dynamo_type:Item", "size", _wrap_item_size, ("self",)),
    ),
)


# ------------------------------------------ 17. a condition expression is parsed once

# Placeholders a condition can reference: the parse depends on the expression and on these
# alone (DynamoDB expressions hold no string literals, so the scan finds exactly them).
_PLACEHOLDER: Final = re.compile(r"[#:][A-Za-z0-9_]+")
_MOST_CACHED: Final = 4096


def _parse_key(parser: Any) -> tuple[str, str] | None:
    expression = parser.condition_expression
    if not expression:
        return None
    names = parser.expression_attribute_names or {}
    values = parser.expression_attribute_values or {}
    used = set(_PLACEHOLDER.findall(expression))
    try:
        bound = json.dumps(
            {t: (names if t[0] == "#" else values).get(t) for t in sorted(used)}, sort_keys=True
        )
    except (TypeError, ValueError):  # not JSON: parse it the long way
        return None
    return expression, bound


def _wrap_condition_parse(inner: Impl) -> Impl:
    cache: dict[tuple[str, str], tuple[Any, list[str], list[str]]] = {}

    def parse(self: Any) -> Any:
        """moto lexed and parsed a condition three times per transactional write (the
        request check, the write, the conflict check): ~4 ms per item, the same text for
        every claim of a batch. The operator tree is only evaluated, never changed, so
        one parse serves every request with the same text and placeholder bindings."""
        key = _parse_key(self)
        if key is None:
            return inner(self)
        hit = cache.get(key)
        if hit is None:
            op = inner(self)  # a refused expression raises here and is not cached
            if len(cache) >= _MOST_CACHED:
                cache.clear()
            cache[key] = (op, list(self.expr_attr_names_found), list(self.expr_attr_values_found))
            return op
        op, names_found, values_found = hit
        self.expr_attr_names_found.extend(names_found)
        self.expr_attr_values_found.extend(values_found)
        return op

    return parse


DYNAMODB_CONDITION_PARSE_CACHE = Fix(
    name="dynamodb_condition_parse_cache",
    design_ref="DESIGN §6 (found by benchmarks/scale.py: a 50-claim transaction took 0.8 s)",
    description=(
        "A condition expression with the same text and placeholder bindings is parsed once, "
        "not three times per transactional item (same operator tree, same errors)."
    ),
    patches=(
        Patch(
            "moto.dynamodb.comparisons:ConditionExpressionParser",
            "parse",
            _wrap_condition_parse,
            ("self",),
        ),
    ),
)


# ------------------------------- 18. a plain SET of placeholders skips the expression machinery

# ``SET #a = :a, #b = :b``: every name and value a placeholder, one SET clause, nothing else.
_PLAIN_SET: Final = re.compile(
    r"\s*SET\s+#\w+\s*=\s*:\w+(?:\s*,\s*#\w+\s*=\s*:\w+)*\s*", re.IGNORECASE | re.ASCII
)
_SET_PAIR: Final = re.compile(r"(#\w+)\s*=\s*(:\w+)", re.ASCII)
# Set while moto's own update path runs: its validators rewrite the tree it parses.
_FRESH_UPDATE_PARSE: Final = contextvars.ContextVar("fresh_update_parse", default=False)
_UPDATE_PARAMS: Final = (
    "self",
    "table_name",
    "key",
    "update_expression",
    "expression_attribute_names",
    "expression_attribute_values",
    "attribute_updates",
    "expected",
    "condition_expression",
    "return_values_on_condition_check_failure",
)


def _plain_sets(
    table: Any, expression: str, names: dict[str, str] | None, values: dict[str, Any] | None
) -> list[tuple[str, Any]] | None:
    """The (attribute, value) pairs of a plain SET that no validator of moto's can refuse;
    None sends the update down moto's own path (and its errors): an undefined or repeated
    placeholder target, or any key attribute of the table or of an index."""
    if not _PLAIN_SET.fullmatch(expression) or names is None or values is None:
        return None
    pairs = _SET_PAIR.findall(expression)
    if not all(n in names and v in values for n, v in pairs):
        return None
    targets = [names[n] for n, _ in pairs]
    keys = {
        *table.table_key_attrs,
        *table.attribute_keys,
        *(a["AttributeName"] for a in table.attr),
    }
    if len(set(targets)) != len(targets) or keys.intersection(targets):
        return None
    return [(target, values[v]) for target, (_, v) in zip(targets, pairs, strict=True)]


def _plain_update(
    models: Any, table: Any, key: dict[str, Any], expression: str, *, names: Any, values: Any
) -> tuple[Any, list[tuple[str, Any]]] | None:
    """The existing item and its plain SETs, or None for moto's own path."""
    if table.hash_key_attr not in key or (
        table.range_key_attr is not None and table.range_key_attr not in key
    ):
        return None
    sets = _plain_sets(table, expression, names, values)
    if sets is None:
        return None
    hash_value = models.DynamoType(key[table.hash_key_attr])
    range_value = models.DynamoType(key[table.range_key_attr]) if table.range_key_attr else None
    item = table.get_item(hash_value, range_value)
    return None if item is None else (item, sets)  # moto's path creates a missing item


def _apply_plain_set(
    backend: Any,
    table_name: str,
    key: dict[str, Any],
    update_expression: str,
    *,
    names: Any,
    values: Any,
    condition_expression: str | None,
    all_old: bool,
) -> Any:
    """The updated item, or None when the update is not a plain SET on an item."""
    models = importlib.import_module("moto.dynamodb.models")
    too_large = importlib.import_module("moto.dynamodb.exceptions")
    table = backend.get_table(table_name)
    plain = _plain_update(models, table, key, update_expression, names=names, values=values)
    if plain is None:
        return None
    item, sets = plain
    condition = models.create_condition_expression_parser(
        condition_expression, names, values
    ).parse()
    if not condition.expr(item):
        if all_old:
            raise models.ConditionalCheckFailed(item=item.to_json()["Attributes"])
        raise models.ConditionalCheckFailed
    streamed = table.stream_shard is not None
    orig_item = copy.deepcopy(item) if streamed else None
    try:
        for target, value in sets:
            item.attrs[target] = models.DynamoType(value)  # moto's 400 KB check
    except too_large.ItemSizeTooLarge:
        raise too_large.ItemSizeToUpdateTooLarge() from None
    if streamed:
        table.stream_shard.add(orig_item, item)
    return item


def _wrap_update_item(inner: Impl) -> Impl:
    def update_item(  # noqa: PLR0917 (moto's signature, called positionally by moto)
        self: Any,
        table_name: str,
        key: dict[str, Any],
        update_expression: str,
        expression_attribute_names: dict[str, str] | None,
        expression_attribute_values: dict[str, Any] | None,
        attribute_updates: dict[str, Any] | None = None,
        expected: dict[str, Any] | None = None,
        condition_expression: str | None = None,
        return_values_on_condition_check_failure: str | None = None,
    ) -> Any:
        """moto parsed, validated (ten walks of the tree) and executed every update through
        its expression machinery: ~6 ms for a claim, ~14 ms for a commit, the floor of a
        10,000-shard mission. A plain SET of defined placeholders onto non-key attributes
        passes every one of those validators, so it is applied directly: the same condition
        check, the same size limit, the same item, the same stream record."""

        def moto_path() -> Any:
            fresh = _FRESH_UPDATE_PARSE.set(True)
            try:
                return inner(
                    self,
                    table_name,
                    key,
                    update_expression,
                    expression_attribute_names,
                    expression_attribute_values,
                    attribute_updates=attribute_updates,
                    expected=expected,
                    condition_expression=condition_expression,
                    return_values_on_condition_check_failure=return_values_on_condition_check_failure,
                )
            finally:
                _FRESH_UPDATE_PARSE.reset(fresh)

        if attribute_updates or expected or not update_expression:
            return moto_path()
        with dynamodb_lock(self):
            done = _apply_plain_set(
                self,
                table_name,
                key,
                update_expression,
                names=expression_attribute_names,
                values=expression_attribute_values,
                condition_expression=condition_expression,
                all_old=return_values_on_condition_check_failure == "ALL_OLD",
            )
        # moto's own path, outside this lock: serialising it is fix 3's business.
        return moto_path() if done is None else done

    return update_item


def _wrap_update_parse(inner: Impl) -> Impl:
    parsed: dict[str, Any] = {}

    def make(cls: Any, expression_str: str) -> Any:
        """The handlers parse every UpdateExpression once more only to list the names it
        uses: one parse per text serves them, read-only. moto's own update path (below
        ``update_item``) gets a fresh tree, which its validators rewrite."""
        if _FRESH_UPDATE_PARSE.get():
            return inner(cls, expression_str)
        tree = parsed.get(expression_str)
        if tree is None:
            tree = inner(cls, expression_str)  # a refused expression raises: not cached
            if len(parsed) >= _MOST_CACHED:
                parsed.clear()
            parsed[expression_str] = tree
        return tree

    return make


DYNAMODB_UPDATE_FAST_PATH = Fix(
    name="dynamodb_update_fast_path",
    design_ref="DESIGN §6 (found by benchmarks/overhead.py: 6-14 ms of emulator per shard)",
    description=(
        "An UpdateExpression that only SETs placeholder values onto non-key attributes is "
        "applied directly, not parsed twice and walked ten times (same checks, item and "
        "errors); the handler's read-only parse is made once per text."
    ),
    patches=(
        Patch(DYNAMODB_BACKEND, "update_item", _wrap_update_item, _UPDATE_PARAMS),
        Patch(
            "moto.dynamodb.parsing.expressions:UpdateExpressionParser",
            "make",
            _wrap_update_parse,
            ("cls", "expression_str"),
        ),
    ),
)
