"""The streaming merger gives the bytes a naive sort of every candidate gives (issue 12 §5)."""

from __future__ import annotations

import csv
import io
import tempfile
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from workflow.workloads.base import WorkInputs
from workflow.workloads.merging import BytesMerger, NoopMerger, merger_for
from workflow.workloads.molsim import FINAL_HEADER, SHARD_HEADER, MolsimMerger, MolsimWorkload

QUERY_SMILES = ("C", "CC", "CCO", "c1ccccc1")
# Few values: ties in similarity and in ref_id are the rule, not the exception.
SIMILARITIES = st.sampled_from([0.0, 0.125, 1 / 3, 0.5, 0.5000004, 0.75, 1.0])
REF_IDS = st.sampled_from(["a", "b", "c", "NSC1", "NSC10"])


@st.composite
def missions(draw: st.DrawFn) -> tuple[list[str], int, list[list[list[tuple[float, str]]]]]:
    """(query ids, k, per shard per query the candidates (similarity, ref_id) it scored)."""
    query_ids = draw(st.lists(st.sampled_from(["q1", "q2", "q10"]), min_size=1, max_size=4))
    k = draw(st.integers(1, 5))
    shards = draw(
        st.lists(
            st.lists(
                st.lists(st.tuples(SIMILARITIES, REF_IDS), max_size=8),
                min_size=len(query_ids),
                max_size=len(query_ids),
            ),
            min_size=1,
            max_size=6,
        )
    )
    return query_ids, k, shards


def _rank(c: tuple[float, str, int]) -> tuple[float, str, int]:
    return (-c[0], c[1], c[2])


def _write_shard(
    path: Path, query_ids: list[str], tops: list[list[tuple[float, str, int]]]
) -> None:
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(SHARD_HEADER)
        for q_index, (q_id, top) in enumerate(zip(query_ids, tops, strict=True)):
            for rank, (sim, ref_id, ref_index) in enumerate(top, start=1):
                writer.writerow((q_id, rank, ref_id, repr(sim), q_index, ref_index))


def _naive(query_ids: list[str], k: int, every: list[list[tuple[float, str, int]]]) -> bytes:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(FINAL_HEADER)
    for q_index in sorted(range(len(query_ids)), key=lambda i: (query_ids[i], i)):
        for rank, (sim, ref_id, _pos) in enumerate(sorted(every[q_index], key=_rank)[:k], 1):
            writer.writerow((query_ids[q_index], rank, ref_id, f"{sim:.6f}"))
    return buffer.getvalue().encode()


@settings(max_examples=60, deadline=None)
@given(missions())
def test_the_streaming_merge_equals_a_naive_sort_and_the_batch_reduce(
    mission: tuple[list[str], int, list[list[list[tuple[float, str]]]]],
) -> None:
    query_ids, k, shards = mission
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        sample = root / "queries.smi"
        sample.write_text(
            "".join(f"{QUERY_SMILES[i]} {q}\n" for i, q in enumerate(query_ids)), encoding="utf-8"
        )
        inputs = WorkInputs(sample=sample, options={"topK": k})
        every: list[list[tuple[float, str, int]]] = [[] for _ in query_ids]
        files, position = [], 0
        for number, shard in enumerate(shards):
            tops = []
            for q_index, scored in enumerate(shard):
                cands = []
                for sim, ref_id in scored:  # library positions are disjoint across shards
                    cands.append((sim, ref_id, position))
                    position += 1
                every[q_index].extend(cands)
                tops.append(sorted(cands, key=_rank)[:k])  # what a shard keeps: its top-K
            files.append(root / f"s{number:06d}.molsim.csv")
            _write_shard(files[-1], query_ids, tops)
        merger = MolsimMerger(inputs)
        for path in files:
            merger.add(path)
        streamed = merger.finish(root / "streamed.csv")
        batch = MolsimWorkload().reduce(files, root / "batch.csv", inputs)
        expected = _naive(query_ids, k, every)
        assert (root / "streamed.csv").read_bytes() == expected
        assert (root / "batch.csv").read_bytes() == expected
        assert streamed == batch


def test_noop_merger_sums_like_the_noop_reduce(tmp_path: Path) -> None:
    files = []
    for i, items in enumerate([3, 0, 7]):
        files.append(tmp_path / f"s{i}.json")
        files[-1].write_text(f'{{"shard": "s{i}", "items": {items}}}')
    merger = merger_for("noop", WorkInputs(sample=tmp_path / "none"))
    assert isinstance(merger, NoopMerger)
    for path in files:
        merger.add(path)
    assert merger.finish(tmp_path / "out.json") == {"items": 10, "shards": 3}
    assert merger_for("command", WorkInputs(sample=tmp_path / "none")) is None
    # RsltProc hands noop's results over as bytes (no file per shard): the same sum.
    by_bytes = merger_for("noop", WorkInputs(sample=tmp_path / "none"))
    assert isinstance(by_bytes, BytesMerger)
    for path in files:
        by_bytes.add_bytes(path.read_bytes())
    assert by_bytes.finish(tmp_path / "out2.json") == {"items": 10, "shards": 3}
    assert (tmp_path / "out2.json").read_bytes() == (tmp_path / "out.json").read_bytes()


@settings(max_examples=80, deadline=None)
@given(
    st.lists(
        st.lists(st.tuples(SIMILARITIES, st.integers(0, 5)), max_size=6),
        min_size=1,
        max_size=4,
    ),
    st.integers(1, 4),
)
def test_a_molecule_named_twice_keeps_one_place_with_its_later_row(
    files_rows: list[list[tuple[float, int]]], k: int
) -> None:
    """Two rows of one library molecule for one query (a file that names it twice, or two
    files): after each file the kept top-K is re-selected from the kept rows and the file's,
    a later row of a molecule replacing its earlier one; the molecule holds one place."""
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        sample = root / "queries.smi"
        sample.write_text("C q1\n", encoding="utf-8")
        kept: list[tuple[float, str, int]] = []
        merger = MolsimMerger(WorkInputs(sample=sample, options={"topK": k}))
        for number, rows in enumerate(files_rows):
            cands = [(sim, f"NSC{index}", index) for sim, index in rows]
            pool = {c[2]: c for c in kept}
            pool.update((c[2], c) for c in cands)
            kept = sorted(pool.values(), key=_rank)[:k]
            path = root / f"s{number:06d}.molsim.csv"
            _write_shard(path, ["q1"], [cands])
            merger.add(path)
        merger.finish(root / "out.csv")
        assert (root / "out.csv").read_bytes() == _naive(["q1"], k, [kept])
