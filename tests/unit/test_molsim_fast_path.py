"""molsim's fast path: vectorised top-K equals a naive sort, fingerprints cached by content."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from workflow.workloads.base import ShardContext, ShardDone, ShardRange, WorkInputs
from workflow.workloads.molsim import (
    MolsimWorkload,
    SmilesEntry,
    default_library_path,
    library_index,
)
from workflow.workloads.molsim_index import FingerprintIndex, IndexData
from workflow.workloads.molsim_topk import empty_tops, merge_block

# Few distinct values so ties (at the cut, across blocks) are the common case.
_SIMS = st.one_of(st.sampled_from([0.0, 0.25, 1 / 3, 0.5, 1.0]), st.floats(0.0, 1.0))
_IDS = st.sampled_from(["1", "10", "9", "a", "b", "A", "é"])


@st.composite
def _problems(
    draw: st.DrawFn,
) -> tuple[list[str], list[int], list[list[float]], list[int], int]:
    """Reference ids, their library positions (gaps = unparsable lines), sims, cuts, K."""
    ref_ids = draw(st.lists(_IDS, min_size=1, max_size=30))
    gaps = draw(st.lists(st.integers(0, 2), min_size=len(ref_ids), max_size=len(ref_ids)))
    positions = list(itertools.accumulate(g + 1 for g in gaps))
    n_queries = draw(st.integers(1, 4))
    sims = [
        draw(st.lists(_SIMS, min_size=len(ref_ids), max_size=len(ref_ids)))
        for _ in range(n_queries)
    ]
    cuts = draw(st.lists(st.integers(0, len(ref_ids)), max_size=6))
    return ref_ids, positions, sims, sorted({0, len(ref_ids), *cuts}), draw(st.integers(1, 8))


def _naive(
    ref_ids: list[str], positions: list[int], sims: list[float], k: int
) -> list[tuple[float, int]]:
    ranked = sorted(range(len(sims)), key=lambda r: (-sims[r], ref_ids[r], positions[r]))
    return [(sims[r], positions[r]) for r in ranked[:k]]


@settings(max_examples=200, deadline=None)
@given(_problems())
def test_blockwise_vectorised_top_k_equals_a_naive_full_sort(
    problem: tuple[list[str], list[int], list[list[float]], list[int], int],
) -> None:
    ref_ids, positions, sims, bounds, k = problem
    none = np.array([], np.int64)  # the skipped lines play no part in the ranking
    index = FingerprintIndex(
        [], ref_ids, np.array(positions, np.int64), positions[-1] + 1, none, none
    )
    label_rank = index.label_rank()
    matrix = np.array(sims, np.float64)
    refs = np.array(positions, np.int64)
    top_sim, top_ref = empty_tops(len(sims), k)
    for lo, hi in itertools.pairwise(bounds):
        top_sim, top_ref = merge_block(top_sim, top_ref, matrix[:, lo:hi], refs[lo:hi], label_rank)
    for q, row in enumerate(sims):
        got = [
            (s, r) for s, r in zip(top_sim[q].tolist(), top_ref[q].tolist(), strict=True) if r >= 0
        ]
        assert got == _naive(ref_ids, positions, row, k)


def _counting_build(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Record every fingerprint build by its molecule lines (a cache hit builds nothing)."""
    from workflow.workloads import molsim

    built: list[int] = []
    original = molsim._fingerprint_entries

    def counting(entries: Sequence[SmilesEntry], first: int) -> IndexData:
        built.append(len(entries))
        return original(entries, first)

    monkeypatch.setattr(molsim, "_fingerprint_entries", counting)
    return built


def _library(tmp_path: Path, count: int) -> Path:
    lines = default_library_path().read_text().splitlines()[:count]
    path = tmp_path / "lib.smi"
    path.write_text("\n".join(lines) + "\n")
    return path


def test_library_fingerprints_are_built_once_per_content(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    built = _counting_build(monkeypatch)
    library = _library(tmp_path, 40)
    cache = tmp_path / "cache"
    first = library_index(library, cache)
    again = library_index(library, cache)
    assert len(built) == 1
    assert [fp.ToBinary() for fp in again.fingerprints] == [
        fp.ToBinary() for fp in first.fingerprints
    ]
    assert (list(again.idents), again.positions.tolist(), again.entries) == (
        list(first.idents),
        first.positions.tolist(),
        first.entries,
    )
    library.write_text(library.read_text() + "CCO new\n")  # a new library version
    assert library_index(library, cache).entries == first.entries + 1
    assert len(built) == 2


def test_a_damaged_cache_file_is_rebuilt_not_trusted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    library = _library(tmp_path, 20)
    cache = tmp_path / "cache"
    expected = library_index(library, cache)
    (cached,) = cache.glob("molsim-fp-*.npz")
    cached.write_bytes(cached.read_bytes()[:100])
    built = _counting_build(monkeypatch)
    again = library_index(library, cache)
    assert len(built) == 1
    assert list(again.idents) == list(expected.idents)


def _run_three_shards(inputs: WorkInputs, shards: Path) -> Path:
    """Run the ranges [0, 20), [20, 40), [40, 60) as one unit's shards; their directory."""
    for i, (lo, hi) in enumerate(itertools.pairwise([0, 20, 40, 60])):
        work = shards / f"s{i}"
        work.mkdir(parents=True)
        outcome = MolsimWorkload().run(ShardRange(f"s{i}", i, lo, hi), inputs, ShardContext(work))
        assert isinstance(outcome, ShardDone)
    return shards


def test_a_shard_fingerprints_its_own_range_once_and_the_unit_the_queries_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No node parses the library's other shards: each molecule is fingerprinted by the one
    shard that searches it; the queries once per unit."""
    built = _counting_build(monkeypatch)
    library = _library(tmp_path, 60)
    sample = tmp_path / "q.smi"
    sample.write_text("c1ccccc1 benzene\nCCO ethanol\n")
    inputs = WorkInputs(sample=sample, reference=library, options={"topK": 3})
    shards = _run_three_shards(inputs, tmp_path / "unit" / "shards")
    assert built == [2, 20, 20, 20]  # the 2 queries, then each shard's 20 molecules
    again = MolsimWorkload().run(ShardRange("s1", 1, 20, 40), inputs, ShardContext(shards / "s1"))
    assert isinstance(again, ShardDone)
    assert built == [2, 20, 20, 20]  # a shard run again on this node reads its cache


def test_a_query_axis_shard_fingerprints_its_own_queries_and_the_node_the_library_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """More queries than references: no shard parses another shard's queries, and the whole
    library is built once and then read from its cache by every shard."""
    built = _counting_build(monkeypatch)
    library = _library(tmp_path, 15)
    sample = tmp_path / "q.smi"
    sample.write_text("".join(f"{smiles} q{i}\n" for i, smiles in enumerate(["CCO", "CCN"] * 30)))
    inputs = WorkInputs(sample=sample, reference=library, options={"topK": 3})
    assert MolsimWorkload().count_items(inputs) == 60
    _run_three_shards(inputs, tmp_path / "unit" / "shards")
    assert built == [20, 15, 20, 20]  # shard 0's 20 queries and the library, then 20 each
