"""The ``sumCsv`` reduce of the ``command`` workload: ``key,count`` rows summed per key.

For programs whose shards count things (k-mers, words, events): each shard writes the counts
of its own range, and the mission's result must be the counts of the whole sample, which
concatenation would not give. A first line whose count is not an integer is a header: every
shard must write the same one, and the result keeps it once. Rows come out sorted by key, so
the result does not depend on how the sample was sharded.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from workflow.errors import ShardFailed


def _rows(path: Path) -> tuple[str | None, Counter[str]]:
    header: str | None = None
    counts: Counter[str] = Counter()
    with path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            text = line.rstrip("\r\n")
            if not text:
                continue
            key, sep, count = text.rpartition(",")
            if sep and count.strip().lstrip("-").isdigit():
                counts[key] += int(count)
            elif number == 1:
                header = text
            else:
                raise ShardFailed(f"{path.name} line {number}: not 'key,count': {text[:80]!r}")
    return header, counts


def sum_csv(results: Sequence[Path], out: Path) -> Mapping[str, Any]:
    """Sum every shard's ``key,count`` rows into ``out``; a small summary back."""
    totals: Counter[str] = Counter()
    headers: set[str] = set()
    for path in results:
        try:
            header, counts = _rows(path)
        except (OSError, UnicodeDecodeError) as exc:
            raise ShardFailed(f"shard result {path.name} is unreadable: {exc}") from exc
        if header is not None:
            headers.add(header)
        totals.update(counts)
    if len(headers) > 1:
        raise ShardFailed(f"shards wrote different headers: {sorted(headers)[:2]}")
    with out.open("w", encoding="utf-8") as sink:
        for header in headers:
            sink.write(header + "\n")
        for key in sorted(totals):
            sink.write(f"{key},{totals[key]}\n")
    return {"shards": len(results), "keys": len(totals), "total": sum(totals.values())}
