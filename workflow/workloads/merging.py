"""Streaming reduce: shard results merged one file at a time, in bounded memory and /tmp.

A workload's ``reduce`` takes every shard file at once, so RsltProc would hold all of them on
``/tmp`` (100,000 molsim shards: ~0.8 GB, past the 512 MB default) and molsim's pools would
hold every candidate of every shard in memory (12 queries x topK 10 x 100,000 = 12 M). A
``ShardMerger`` takes the files one by one (RsltProc deletes each after ``add``) and keeps
only what the final result needs: molsim a top-K per query, noop a running sum. The result
file is byte-identical to ``reduce``'s: top-K of a union is top-K of the union of top-Ks
under the same total order (``molsim.rank_key``: similarity, then ref_id, then position).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol

from workflow.errors import ShardFailed
from workflow.workloads.base import WorkInputs
from workflow.workloads.molsim import (
    MAX_LISTED_LINES,
    Candidate,
    final_hits,
    invalid_library_lines,
    library_path,
    load_queries,
    read_shard_csv,
    select_top_k,
    top_k_option,
    write_hits_csv,
)


class ShardMerger(Protocol):
    """Folds shard result files, in shard order, into the mission result."""

    def add(self, result: Path) -> None:
        """Fold one shard's result file in (the caller may delete it afterwards)."""
        ...

    def finish(self, out: Path) -> Mapping[str, Any]:
        """Write the mission result to ``out``; the same summary ``reduce`` returns."""
        ...


class MolsimMerger:
    """A top-K per query, re-selected after each shard (each file holds <= K per query)."""

    def __init__(self, inputs: WorkInputs) -> None:
        self._k = top_k_option(inputs.options)
        self._inputs = inputs
        self._parsed = load_queries(inputs.sample)
        self._tops: list[list[Candidate]] = [[] for _ in self._parsed.queries]
        self._shards = 0

    def add(self, result: Path) -> None:
        queries = self._parsed.queries
        fresh: list[list[Candidate]] = [[] for _ in queries]
        for q_index, q_id, cand in read_shard_csv(result):
            if not 0 <= q_index < len(queries) or queries[q_index].ident != q_id:
                raise ShardFailed(f"shard result {result.name} does not match the sample")
            fresh[q_index].append(cand)
        for q_index, cands in enumerate(fresh):
            if cands:
                pool = {c.ref_index: c for c in self._tops[q_index]}
                pool.update((c.ref_index, c) for c in cands)
                self._tops[q_index] = select_top_k(pool.values(), self._k)
        self._shards += 1

    def finish(self, out: Path) -> Mapping[str, Any]:
        rows = write_hits_csv(final_hits(self._parsed.queries, self._tops), out)
        return {
            "queries": len(self._parsed.queries),
            "hits": rows,
            "invalidQueryLines": list(self._parsed.invalid_lines),
            "invalidLibraryLines": list(
                invalid_library_lines(library_path(self._inputs))[1][:MAX_LISTED_LINES]
            ),
            "topK": self._k,
            "shards": self._shards,
        }


class NoopMerger:
    """The sum of the shards' item counts (noop's reduce, one file at a time)."""

    def __init__(self, inputs: WorkInputs) -> None:
        self._items = 0
        self._shards = 0

    def add(self, result: Path) -> None:
        self._items += int(json.loads(result.read_text())["items"])
        self._shards += 1

    def finish(self, out: Path) -> Mapping[str, Any]:
        summary = {"items": self._items, "shards": self._shards}
        out.write_text(json.dumps(summary) + "\n")
        return summary


_MERGERS: Mapping[str, type[MolsimMerger] | type[NoopMerger]] = {
    "molsim": MolsimMerger,
    "noop": NoopMerger,
}


def merger_for(workload: str, inputs: WorkInputs) -> ShardMerger | None:
    """The streaming merger of ``workload``; None when it has only its batch ``reduce``."""
    factory = _MERGERS.get(workload)
    return None if factory is None else factory(inputs)
