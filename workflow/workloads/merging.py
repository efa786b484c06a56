"""Streaming reduce: shard results merged one file at a time, in bounded memory and /tmp.

A workload's ``reduce`` takes every shard file at once, so RsltProc would hold all of them on
``/tmp`` (100,000 molsim shards: ~0.8 GB, past the 512 MB default) and molsim's pools would
hold every candidate of every shard in memory (12 queries x topK 10 x 100,000 = 12 M). A
``ShardMerger`` takes the files one by one (RsltProc deletes each after ``add``) and keeps
only what the final result needs: molsim a top-K per query, noop a running sum. The result
file is byte-identical to ``reduce``'s: top-K of a union is top-K of the union of top-Ks
under the same total order (molsim's ordering rule: similarity, then ref_id, then position).
molsim's merger lives beside its shard format (``molsim.MolsimMerger``: its ``reduce`` is
the same merger over every file), imported when a mission needs it: this module is imported
wherever ``aggregation`` is (the node agent too), and molsim brings RDKit and numpy.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from importlib import import_module
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from workflow.workloads.base import WorkInputs


class ShardMerger(Protocol):
    """Folds shard result files, in shard order, into the mission result."""

    def add(self, result: Path) -> None:
        """Fold one shard's result file in (the caller may delete it afterwards)."""
        ...

    def finish(self, out: Path) -> Mapping[str, Any]:
        """Write the mission result to ``out``; the same summary ``reduce`` returns."""
        ...


@runtime_checkable
class BytesMerger(ShardMerger, Protocol):
    """A merger of small results that takes each one's bytes: RsltProc then writes no file
    per shard (``ResultReader.contents``)."""

    def add_bytes(self, result: bytes) -> None:
        """Fold one shard's result, given as its bytes, in."""
        ...


class NoopMerger:
    """The sum of the shards' item counts (noop's reduce, one result at a time)."""

    def __init__(self, inputs: WorkInputs) -> None:
        self._items = 0
        self._shards = 0

    def add(self, result: Path) -> None:
        self.add_bytes(result.read_bytes())

    def add_bytes(self, result: bytes) -> None:
        self._items += int(json.loads(result)["items"])
        self._shards += 1

    def finish(self, out: Path) -> Mapping[str, Any]:
        summary = {"items": self._items, "shards": self._shards}
        out.write_text(json.dumps(summary) + "\n")
        return summary


_MERGERS: Mapping[str, str] = {
    "molsim": "workflow.workloads.molsim:MolsimMerger",
    "noop": f"{__name__}:NoopMerger",
}


def merger_for(workload: str, inputs: WorkInputs) -> ShardMerger | None:
    """The streaming merger of ``workload``; None when it has only its batch ``reduce``."""
    target = _MERGERS.get(workload)
    if target is None:
        return None
    module, _, name = target.partition(":")
    factory: Callable[[WorkInputs], ShardMerger] = getattr(import_module(module), name)
    return factory(inputs)
