"""The call matrix a local run observed: principal, action, resource, the statement that
allowed it (or ``DENIED``). Resources that differ only by ids are folded into one row with
a count (``missions/<id>/shards/...`` becomes one line per principal and action)."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable
from typing import Final

from localcloud.iam.enforce import Observed

_IDS: Final = re.compile(r"(?<=/)[^/:]*\d[^/:]*(?=/|$)|(?<=:)[0-9a-f-]{20,}$|i-[0-9a-f]+")


def fold(resource: str) -> str:
    return _IDS.sub("*", resource)


def matrix(observed: Iterable[Observed]) -> list[tuple[str, str, str, str, int]]:
    counts: Counter[tuple[str, str, str, str]] = Counter()
    for item in observed:
        verdict = item.sid if item.allowed else f"DENIED ({item.sid or 'no statement allows'})"
        counts[(item.principal, item.action, fold(item.resource), str(verdict))] += 1
    return [(*key, n) for key, n in sorted(counts.items())]


def render(observed: Iterable[Observed]) -> str:
    rows = matrix(observed)
    header = ("principal", "action", "resource", "statement", "calls")
    table = [header, *((p, a, r, s, str(n)) for p, a, r, s, n in rows)]
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    lines = [
        "  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)).rstrip() for row in table
    ]
    return "\n".join(lines) + "\n"
