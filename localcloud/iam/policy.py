"""The snapshot's statements, resolved to the local stack's names, and their evaluation.

Evaluation follows AWS's identity-policy logic for one principal: an explicit ``Deny`` that
matches wins, else an ``Allow`` that matches allows, else the call is implicitly denied. A
statement matches when one of its actions matches (``*``/``?`` wildcards, case-insensitive),
one of its resources matches (wildcards, case-sensitive) and every condition holds.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Final

SNAPSHOT: Final = Path(__file__).with_name("policies.json")
_PLACEHOLDER: Final = re.compile(r"\$\{([^}]+)\}")
_UNRESOLVED: Final = "\x00"  # a character no ARN holds: an unresolved placeholder matches nothing


@dataclass(frozen=True)
class Check:
    """One authorization AWS makes for a call: an action on a resource, with its context."""

    action: str
    resource: str
    context: Mapping[str, tuple[str, ...]] = field(default_factory=dict)


@dataclass(frozen=True)
class Statement:
    sid: str
    effect: str
    actions: tuple[str, ...]
    resources: tuple[str, ...]
    conditions: Mapping[str, Mapping[str, tuple[str, ...]]]

    def matches(self, check: Check) -> bool:
        return (
            any(_glob(a, check.action, ignore_case=True) for a in self.actions)
            and any(_glob(r, check.resource) for r in self.resources)
            and all(
                _condition(op, key, values, check.context)
                for op, block in self.conditions.items()
                for key, values in block.items()
            )
        )

    def as_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "Sid": self.sid,
            "Effect": self.effect,
            "Action": list(self.actions),
            "Resource": list(self.resources),
        }
        if self.conditions:
            out["Condition"] = {
                op: {k: list(v) for k, v in b.items()} for op, b in self.conditions.items()
            }
        return out


@dataclass(frozen=True)
class Decision:
    allowed: bool
    check: Check
    sid: str | None  # the statement that allowed or explicitly denied; None: implicit deny

    @property
    def explicit_deny(self) -> bool:
        return not self.allowed and self.sid is not None


def statement_of(raw: Mapping[str, Any]) -> Statement:
    def listed(value: Any) -> tuple[str, ...]:
        return tuple(str(v) for v in (value if isinstance(value, list) else [value]))

    return Statement(
        sid=str(raw.get("Sid", "")),
        effect=str(raw["Effect"]),
        actions=listed(raw["Action"]),
        resources=listed(raw["Resource"]),
        conditions={
            str(op): {str(k): listed(v) for k, v in block.items()}
            for op, block in raw.get("Condition", {}).items()
        },
    )


def evaluate(statements: Sequence[Statement], check: Check) -> Decision:
    allowing: str | None = None
    for statement in statements:
        if not statement.matches(check):
            continue
        if statement.effect == "Deny":
            return Decision(False, check, statement.sid)
        if statement.effect == "Allow" and allowing is None:
            allowing = statement.sid
    return Decision(allowing is not None, check, allowing)


def load_snapshot(path: Path = SNAPSHOT) -> dict[str, Any]:
    document: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return document


def resolve(snapshot: Mapping[str, Any], values: Mapping[str, str]) -> dict[str, list[Statement]]:
    """principal -> statements with ``${...}`` replaced from ``values`` (unknown: unmatchable)."""

    def sub(text: str) -> str:
        return _PLACEHOLDER.sub(lambda m: values.get(m.group(1), _UNRESOLVED), text)

    out: dict[str, list[Statement]] = {}
    for principal, entry in snapshot["principals"].items():
        statements = []
        for raw in entry["statements"]:
            resolved = dict(raw)
            resolved["Resource"] = [sub(r) for r in raw["Resource"]]
            if "Condition" in raw:
                resolved["Condition"] = {
                    op: {k: [sub(v) for v in vs] for k, vs in block.items()}
                    for op, block in raw["Condition"].items()
                }
            statements.append(statement_of(resolved))
        out[str(principal)] = statements
    return out


# ---- matching ---------------------------------------------------------------------------


@lru_cache(maxsize=4096)
def _pattern(pattern: str, ignore_case: bool) -> re.Pattern[str]:
    body = "".join(".*" if ch == "*" else "." if ch == "?" else re.escape(ch) for ch in pattern)
    return re.compile(f"^{body}$", re.IGNORECASE | re.DOTALL if ignore_case else re.DOTALL)


def _glob(pattern: str, value: str, *, ignore_case: bool = False) -> bool:
    if _UNRESOLVED in pattern:
        return False
    return _pattern(pattern, ignore_case).match(value) is not None


def _string_equals(expected: str, actual: str) -> bool:
    return expected == actual


def _string_like(expected: str, actual: str) -> bool:
    return _glob(expected, actual)


def _ignore_case(expected: str, actual: str) -> bool:
    return expected.lower() == actual.lower()


# Operator -> (comparison, negated). ArnLike/ArnEquals compare with wildcards, as AWS does.
_OPERATORS: Final = {
    "StringEquals": (_string_equals, False),
    "StringNotEquals": (_string_equals, True),
    "StringEqualsIgnoreCase": (_ignore_case, False),
    "StringNotEqualsIgnoreCase": (_ignore_case, True),
    "StringLike": (_string_like, False),
    "StringNotLike": (_string_like, True),
    "ArnEquals": (_string_like, False),
    "ArnLike": (_string_like, False),
    "ArnNotEquals": (_string_like, True),
    "ArnNotLike": (_string_like, True),
    "Bool": (_ignore_case, False),
}


def _condition(
    operator: str, key: str, expected: tuple[str, ...], context: Mapping[str, tuple[str, ...]]
) -> bool:
    """One condition key of one operator block. An operator this evaluator does not know
    never holds: the statement then allows nothing (never more than AWS would)."""
    lowered = {k.lower(): v for k, v in context.items()}
    actual = lowered.get(key.lower())
    if operator == "Null":
        want_absent = all(v.lower() == "true" for v in expected)
        return (actual is None) == want_absent
    qualifier, _, base = operator.rpartition(":")
    if_exists = base.endswith("IfExists")
    base = base.removesuffix("IfExists")
    if base not in _OPERATORS or qualifier not in {"", "ForAnyValue", "ForAllValues"}:
        return False
    compare, negated = _OPERATORS[base]
    if actual is None:
        return if_exists or negated or qualifier == "ForAllValues"

    def one(value: str) -> bool:
        hit = any(compare(e, value) for e in expected)
        return not hit if negated else hit

    if qualifier == "ForAllValues":
        return all(one(v) for v in actual)
    return any(one(v) for v in actual)
