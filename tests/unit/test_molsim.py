"""molsim: SMILES parsing, sharded == one-piece, checkpoint/resume, exact top-K merge."""

from __future__ import annotations

import csv
import importlib
import itertools
import sys
import tempfile
from pathlib import Path
from types import ModuleType

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from rdkit import Chem

import workflow.workloads
from workflow.errors import MissionInvalidInput, ShardFailed, WorkloadUnavailable
from workflow.params import parse_params
from workflow.workloads import available_workloads, load_workload, molsim
from workflow.workloads.base import (
    ShardContext,
    ShardDone,
    ShardRange,
    ShardStopped,
    WorkInputs,
)
from workflow.workloads.molsim import (
    SHARD_HEADER,
    Axis,
    Candidate,
    MolsimWorkload,
    Query,
    default_library_path,
    load_queries,
    search_library,
    shard_axis,
    write_hits_csv,
    write_shard_csv,
)

# Drug-like queries plus small ones (benzene, ethanol) whose similarities tie a lot, an exact
# library member (NCI id 1), a duplicated query id, a comment and an invalid line.
QUERIES = """\
# query set for the tests
CC(=O)OC1=CC=CC=C1C(=O)O aspirin
CN1C=NC2=C1C(=O)N(C(=O)N2C)C caffeine
CC(C)CC1=CC=C(C=C1)C(C)C(=O)O ibuprofen
CC(=O)NC1=CC=C(O)C=C1 paracetamol
c1ccccc1 benzene
CCO
C1CC broken
CC1=CC(=O)C=CC1=O quinone
CN1CCC[C@H]1c2cccnc2 nicotine
CCN(CC)CC aspirin
"""

WORKLOAD = MolsimWorkload()


@pytest.fixture
def queries_file(tmp_path: Path) -> Path:
    path = tmp_path / "queries.smi"
    path.write_text(QUERIES, encoding="utf-8")
    return path


@pytest.fixture
def small_library(tmp_path: Path) -> Path:
    """The first 300 molecules of the bundled library (plus one unparsable line)."""
    lines = default_library_path().read_text().splitlines()[:300]
    lines.insert(120, "C1CC\tbroken-ref")
    path = tmp_path / "library.smi"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _split(count: int, parts: int) -> list[ShardRange]:
    bounds = [count * i // parts for i in range(parts + 1)]
    return [
        ShardRange(f"s{i:03d}", i, bounds[i], bounds[i + 1])
        for i in range(parts)
        if bounds[i] < bounds[i + 1]
    ]


def _run_done(shard: ShardRange, inputs: WorkInputs, work_dir: Path, **ctx_args: object) -> Path:
    work_dir.mkdir(parents=True, exist_ok=True)
    outcome = WORKLOAD.run(shard, inputs, ShardContext(work_dir=work_dir, **ctx_args))  # type: ignore[arg-type]
    assert isinstance(outcome, ShardDone)
    return outcome.result


# --- parsing ---------------------------------------------------------------------------


def test_ids_default_to_line_index_and_comments_are_skipped(tmp_path: Path) -> None:
    sample = tmp_path / "s.smi"
    sample.write_text("# comment\nCCO ethanol\nc1ccccc1\n\nCC(=O)O acetic extra\nxyz\nC1CC\n")
    parsed = load_queries(sample)
    assert [q.ident for q in parsed.queries] == ["ethanol", "2", "acetic"]
    assert parsed.invalid_lines == (6, 7)
    assert [q.index for q in parsed.queries] == [0, 1, 2]  # molecule-line positions


def test_the_plan_counts_lines_and_parses_only_up_to_the_first_valid_molecule(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sample = tmp_path / "s.smi"
    sample.write_text("# comment\nxyz bad\nCCO ethanol\nC1CC\nc1ccccc1\n")
    parsed: list[str] = []
    real = molsim.parse_smiles
    monkeypatch.setattr(molsim, "parse_smiles", lambda s: parsed.append(s) or real(s))
    report = WORKLOAD.validate(WorkInputs(sample=sample))
    assert (report.items, report.invalid_lines) == (4, ())  # the nodes find the invalid ones
    first_library_line = default_library_path().read_text().split()[0]
    assert parsed == ["xyz", "CCO", first_library_line]  # not 4 + 4,999 parses


def test_invalid_smiles_do_not_reach_stderr(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    sample = tmp_path / "s.smi"
    sample.write_text("xyz bad\nCCO ok\n")
    capfd.readouterr()
    assert WORKLOAD.validate(WorkInputs(sample=sample)).items == 2
    assert capfd.readouterr().err == ""


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"CCO a\n\xff\xfeC b\n", "not UTF-8"),
        (b"", "no molecules"),
        (b"# only a comment\n\n   \n", "no molecules"),
        (b"xyz\nC1CC ring\n", r"no valid SMILES in sample \(2 lines, e.g. line 1: 'xyz'\)"),
    ],
)
def test_unusable_samples_are_rejected(tmp_path: Path, content: bytes, message: str) -> None:
    sample = tmp_path / "s.smi"
    sample.write_bytes(content)
    with pytest.raises(MissionInvalidInput, match=message):
        WORKLOAD.validate(WorkInputs(sample=sample))


@pytest.mark.parametrize("top_k", [0, -1, True, "5", 2.5, 10_000])
def test_bad_top_k_is_rejected(queries_file: Path, top_k: object) -> None:
    with pytest.raises(MissionInvalidInput, match="topK"):
        WORKLOAD.validate(WorkInputs(sample=queries_file, options={"topK": top_k}))


def test_count_items_counts_library_lines_parsable_or_not(
    queries_file: Path, small_library: Path
) -> None:
    assert WORKLOAD.count_items(WorkInputs(sample=queries_file)) == 4999
    assert WORKLOAD.count_items(WorkInputs(sample=queries_file, reference=small_library)) == 301


# --- without the molsim extra ----------------------------------------------------------


@pytest.fixture
def molsim_without_rdkit(monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    """The molsim module as imported where ``lighthpc-sfn[molsim]`` is not installed."""
    name = "workflow.workloads.molsim"
    monkeypatch.setitem(sys.modules, "rdkit", None)  # `import rdkit` raises ImportError
    monkeypatch.setattr(workflow.workloads, "molsim", sys.modules[name])  # restored after
    monkeypatch.delitem(sys.modules, name)
    return importlib.import_module(name)


def test_without_rdkit_molsim_stays_listed_and_its_params_validate(
    molsim_without_rdkit: ModuleType,
) -> None:
    assert "molsim" in available_workloads()
    assert parse_params({"workload": "molsim"}).workload == "molsim"
    assert isinstance(load_workload("molsim"), molsim_without_rdkit.MolsimWorkload)


@pytest.mark.parametrize("use", ["validate", "count_items", "run"])
def test_without_rdkit_every_molsim_use_names_the_extra(
    molsim_without_rdkit: ModuleType, tmp_path: Path, queries_file: Path, use: str
) -> None:
    workload = load_workload("molsim")
    inputs = WorkInputs(sample=queries_file)
    calls = {
        "validate": lambda: workload.validate(inputs),
        "count_items": lambda: workload.count_items(inputs),
        "run": lambda: workload.run(ShardRange("s0", 0, 0, 10), inputs, ShardContext(tmp_path)),
    }
    with pytest.raises(WorkloadUnavailable, match=r"install lighthpc-sfn\[molsim\]") as info:
        calls[use]()
    assert type(info.value).__name__ == "Workload.Unavailable"  # the Step Functions Error


def test_without_rdkit_the_reduce_still_merges(
    molsim_without_rdkit: ModuleType, tmp_path: Path, queries_file: Path
) -> None:
    """RsltProc reads shard rows and the sample's lines: it needs no RDKit."""
    shard = tmp_path / "s0.csv"
    shard.write_text(
        ",".join(molsim_without_rdkit.SHARD_HEADER) + "\ncaffeine,1,NSC7,0.5,1,6\n,0,,,8,\n"
    )
    out = tmp_path / "out.csv"
    summary = load_workload("molsim").reduce([shard], out, WorkInputs(sample=queries_file))
    assert out.read_text() == "query_id,rank,ref_id,similarity\ncaffeine,1,NSC7,0.500000\n"
    assert (summary["queries"], summary["invalidQueryLines"]) == (9, [8])


# --- sharded == one piece --------------------------------------------------------------


def test_six_shards_reduce_to_the_one_piece_result_byte_for_byte(
    tmp_path: Path, queries_file: Path
) -> None:
    inputs = WorkInputs(sample=queries_file, options={"topK": 7})
    shards = _split(WORKLOAD.count_items(inputs), 6)
    results = [_run_done(s, inputs, tmp_path / s.shard_id, checkpoint_every=400) for s in shards]

    merged = tmp_path / "merged.csv"
    summary = WORKLOAD.reduce(results, merged, inputs)
    one_piece = tmp_path / "one_piece.csv"
    rows = write_hits_csv(search_library(queries_file, default_library_path(), 7), one_piece)

    assert merged.read_bytes() == one_piece.read_bytes()
    # What the shards skipped: NCI's valence errors too (the former summary, parsed without
    # sanitising, listed none of the molecules the search left out).
    library = molsim.read_smiles_file(default_library_path(), "library")
    skipped_by_the_search = [e.line for e in library if molsim.parse_smiles(e.smiles) is None]
    assert len(skipped_by_the_search) > 0
    assert summary == {
        "queries": 9,
        "hits": rows,
        "invalidQueryLines": [8],
        "invalidLibraryLines": skipped_by_the_search,
        "topK": 7,
        "shards": 6,
    }
    table = list(csv.DictReader(merged.open()))
    assert len(table) == 9 * 7
    quinone = [r for r in table if r["query_id"] == "quinone"]
    assert (quinone[0]["rank"], quinone[0]["ref_id"], quinone[0]["similarity"]) == (
        "1",
        "1",
        "1.000000",
    )
    # Two queries share the id "aspirin": both keep their own 7 ranked hits, in line order.
    assert [r["rank"] for r in table if r["query_id"] == "aspirin"] == [
        str(i) for i in range(1, 8)
    ] * 2


def test_ties_are_broken_by_ref_id_as_strings(tmp_path: Path) -> None:
    """Identical molecules tie exactly; "10" sorts before "9" and before "a"."""
    sample = tmp_path / "q.smi"
    sample.write_text("c1ccccc1 benzene\n")
    library = tmp_path / "lib.smi"
    library.write_text("c1ccccc1 9\nCCO 1\nc1ccccc1 a\nc1ccccc1 10\n")
    hits = search_library(sample, library, 3)
    assert [(h.ref_id, h.similarity) for h in hits] == [("10", 1.0), ("9", 1.0), ("a", 1.0)]
    inputs = WorkInputs(sample=sample, reference=library, options={"topK": 3})
    results = [_run_done(s, inputs, tmp_path / s.shard_id) for s in _split(4, 4)]
    WORKLOAD.reduce(results, tmp_path / "out.csv", inputs)
    write_hits_csv(hits, tmp_path / "ref.csv")
    assert (tmp_path / "out.csv").read_bytes() == (tmp_path / "ref.csv").read_bytes()


def test_a_later_block_wins_a_tie_at_the_cut(tmp_path: Path) -> None:
    """Inside one shard, "10" (last block) ties the K-th hit "a" and must replace it."""
    sample = tmp_path / "q.smi"
    sample.write_text("c1ccccc1 benzene\n")
    library = tmp_path / "lib.smi"
    library.write_text("c1ccccc1 9\nCCO 1\nc1ccccc1 a\nc1ccccc1 10\n")
    inputs = WorkInputs(sample=sample, reference=library, options={"topK": 2})
    result = _run_done(ShardRange("s0", 0, 0, 4), inputs, tmp_path / "s0", checkpoint_every=1)
    WORKLOAD.reduce([result], tmp_path / "out.csv", inputs)
    assert [row["ref_id"] for row in csv.DictReader((tmp_path / "out.csv").open())] == ["10", "9"]


# --- stop and resume -------------------------------------------------------------------


class _Recorder:
    def __init__(self, stop_after: int | None = None) -> None:
        self.stop_after = stop_after
        self.progress: list[int] = []
        self.saved: list[tuple[bytes, int]] = []

    def stop_requested(self) -> bool:
        return (
            self.stop_after is not None
            and bool(self.progress)
            and self.progress[-1] >= self.stop_after
        )

    def save(self, data: bytes, position: int) -> None:
        self.saved.append((data, position))

    def context(self, work_dir: Path, resume: bytes | None = None, every: int = 50) -> ShardContext:
        work_dir.mkdir(parents=True, exist_ok=True)
        return ShardContext(
            work_dir=work_dir,
            resume=resume,
            stop_requested=self.stop_requested,
            save_checkpoint=self.save,
            progress=self.progress.append,
            checkpoint_every=every,
        )


def test_stop_mid_shard_then_resume_equals_the_uninterrupted_shard(
    tmp_path: Path, queries_file: Path, small_library: Path
) -> None:
    inputs = WorkInputs(sample=queries_file, reference=small_library, options={"topK": 5})
    shard = ShardRange("s1", 1, 20, 281)
    whole = _run_done(shard, inputs, tmp_path / "whole", checkpoint_every=50)

    first = _Recorder(stop_after=150)
    stopped = WORKLOAD.run(shard, inputs, first.context(tmp_path / "a"))
    assert isinstance(stopped, ShardStopped)
    assert stopped.position == 170
    assert first.saved[-1] == (stopped.checkpoint, 170)
    assert [pos for _, pos in first.saved] == [70, 120, 170, 170]

    second = _Recorder()
    done = WORKLOAD.run(shard, inputs, second.context(tmp_path / "b", resume=stopped.checkpoint))
    assert isinstance(done, ShardDone)
    assert second.progress == [220, 270, 281]  # continued from 170, did not restart at 20
    assert done.result.read_bytes() == whole.read_bytes()


def test_a_checkpoint_from_another_shard_restarts_the_range(
    tmp_path: Path, queries_file: Path, small_library: Path
) -> None:
    inputs = WorkInputs(sample=queries_file, reference=small_library, options={"topK": 5})
    foreign = _Recorder(stop_after=50)
    stopped = WORKLOAD.run(ShardRange("s0", 0, 0, 100), inputs, foreign.context(tmp_path / "f"))
    assert isinstance(stopped, ShardStopped)
    shard = ShardRange("s1", 1, 100, 200)
    recorder = _Recorder()
    resumed = WORKLOAD.run(
        shard, inputs, recorder.context(tmp_path / "r", resume=stopped.checkpoint)
    )
    assert recorder.progress[0] == 150
    assert isinstance(resumed, ShardDone)
    assert resumed.result.read_bytes() == _run_done(shard, inputs, tmp_path / "w").read_bytes()


def test_shard_outside_the_library_fails(
    tmp_path: Path, queries_file: Path, small_library: Path
) -> None:
    inputs = WorkInputs(sample=queries_file, reference=small_library)
    with pytest.raises(ShardFailed, match="outside the reference library"):
        WORKLOAD.run(ShardRange("s9", 9, 250, 400), inputs, ShardContext(work_dir=tmp_path))


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        ("query_id,rank,ref_id,similarity\naspirin,1,3,0.5\n", "header is not"),
        # The former format (its query_index counted valid queries only): refused, not misread.
        ("query_id,rank,ref_id,similarity,query_index,ref_index\nx,1,3,0.5,0,0\n", "header"),
        (f"{','.join(SHARD_HEADER)}\ncaffeine,1,NSC7,0.5,2,6\n", "does not match the sample"),
        (f"{','.join(SHARD_HEADER)}\ncaffeine,1,NSC7,0.5,99,6\n", "does not match the sample"),
        (f"{','.join(SHARD_HEADER)}\n,0,,,1,\n", "does not match the sample"),  # a comment
        (f"{','.join(SHARD_HEADER)}\n,0,,,8,12\n", "skipped-line row"),
        (f"{','.join(SHARD_HEADER)}\n,0,,,,\n", "skipped-line row"),
        (f"{','.join(SHARD_HEADER)}\ncaffeine,1,NSC7,high,1,6\n", "unreadable"),
    ],
)
def test_reduce_rejects_a_malformed_shard_file(
    tmp_path: Path, queries_file: Path, rows: str, message: str
) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text(rows)
    with pytest.raises(ShardFailed, match=message) as info:
        WORKLOAD.reduce([bad], tmp_path / "out.csv", WorkInputs(sample=queries_file))
    assert "bad.csv" in str(info.value)


def test_the_nodes_report_the_lines_they_skipped_and_the_reduce_unions_them(
    tmp_path: Path, queries_file: Path, small_library: Path
) -> None:
    """The plan parses neither file in full: each shard names the sample's invalid lines and
    the library's in its own range; the summary is their union."""
    inputs = WorkInputs(sample=queries_file, reference=small_library, options={"topK": 3})
    shards = _split(WORKLOAD.count_items(inputs), 3)  # the broken library line (121) in shard 1
    results = [_run_done(s, inputs, tmp_path / s.shard_id) for s in shards]
    summary = WORKLOAD.reduce(results, tmp_path / "all.csv", inputs)
    assert (summary["invalidQueryLines"], summary["invalidLibraryLines"]) == ([8], [121])
    assert summary["queries"] == 9
    without = WORKLOAD.reduce([results[0], results[2]], tmp_path / "part.csv", inputs)
    assert (without["invalidQueryLines"], without["invalidLibraryLines"]) == ([8], [])


# --- the merge is exact for any partition ----------------------------------------------

_SIMS = st.one_of(st.sampled_from([0.0, 0.25, 1 / 3, 0.5, 1.0]), st.floats(0.0, 1.0))
_IDS = st.sampled_from(["1", "10", "9", "a", "b", "A"])


@st.composite
def _problems(draw: st.DrawFn) -> tuple[list[str], list[str], list[list[float]], list[int], int]:
    query_ids = draw(st.lists(_IDS, min_size=1, max_size=3))
    ref_ids = draw(st.lists(_IDS, min_size=1, max_size=25))
    sims = [draw(st.lists(_SIMS, min_size=len(ref_ids), max_size=len(ref_ids))) for _ in query_ids]
    cuts = draw(st.lists(st.integers(0, len(ref_ids)), max_size=5))
    return query_ids, ref_ids, sims, sorted({0, len(ref_ids), *cuts}), draw(st.integers(1, 6))


def _top(rows: list[Candidate], k: int) -> list[Candidate]:
    return sorted(rows, key=lambda c: (-c.similarity, c.ref_id, c.ref_index))[:k]


@settings(max_examples=80, deadline=None)
@given(_problems())
def test_reduce_of_any_partition_equals_top_k_of_the_whole(
    problem: tuple[list[str], list[str], list[list[float]], list[int], int],
) -> None:
    query_ids, ref_ids, sims, bounds, k = problem
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        sample = root / "q.smi"
        sample.write_text("".join(f"C {qid}\n" for qid in query_ids))
        queries = [Query(i, qid, Chem.MolFromSmiles("C")) for i, qid in enumerate(query_ids)]
        candidates = [
            [Candidate(sims[q][r], ref_ids[r], r) for r in range(len(ref_ids))]
            for q in range(len(query_ids))
        ]
        shard_files = []
        for lo, hi in itertools.pairwise(bounds):
            path = root / f"shard{lo}.csv"
            write_shard_csv(path, queries, [_top(c[lo:hi], k) for c in candidates])
            shard_files.append(path)
        WORKLOAD.reduce(
            shard_files, root / "merged.csv", WorkInputs(sample=sample, options={"topK": k})
        )

        order = sorted(range(len(query_ids)), key=lambda i: (query_ids[i], i))
        expected = [
            (query_ids[q], str(rank), c.ref_id, f"{c.similarity:.6f}")
            for q in order
            for rank, c in enumerate(_top(candidates[q], k), start=1)
        ]
        with (root / "merged.csv").open(newline="") as handle:
            assert [tuple(row) for row in csv.reader(handle)][1:] == expected


# --- the query axis: a sample longer than the library partitions the queries -------------


@pytest.mark.parametrize(
    ("sample_lines", "library_lines", "axis"),
    [(5, 4, Axis.QUERIES), (4, 4, Axis.LIBRARY), (3, 4, Axis.LIBRARY), (1, 4999, Axis.LIBRARY)],
)
def test_the_longer_file_is_partitioned_and_a_tie_keeps_the_library(
    sample_lines: int, library_lines: int, axis: Axis
) -> None:
    assert shard_axis(sample_lines, library_lines) is axis


def test_count_items_counts_the_sample_when_it_has_more_molecule_lines(tmp_path: Path) -> None:
    """Molecule lines, parsable or not; comments and blank lines do not count."""
    sample = tmp_path / "q.smi"
    sample.write_text("# queries\nCCO a\n\nxyz bad\nc1ccccc1 b\nCCN c\nCC d\n")  # 5 lines
    library = tmp_path / "lib.smi"
    for lines, items in ((4, 5), (5, 5), (6, 6)):
        library.write_text("# refs\n" + "C1CC broken\n" + "CCO r\n" * (lines - 1))
        assert WORKLOAD.count_items(WorkInputs(sample=sample, reference=library)) == items
    library.write_text("CCO r\n" * 4)
    assert molsim.partition(WorkInputs(sample=sample, reference=library)).axis is Axis.QUERIES


# Small molecules that tie often (repeats are exact ties), and lines no node can use.
_MOLECULES = st.sampled_from(["c1ccccc1", "CCO", "CCN", "CC(=O)O", "c1ccncc1", "CC", "C"])
_BROKEN = st.sampled_from(["xyz", "C1CC"])
_LINE_IDS = st.sampled_from(["1", "10", "9", "a", "b", "A", None])  # None: the default id


@st.composite
def _smiles_files(draw: st.DrawFn, max_lines: int) -> str:
    """A SMILES file's text: molecule lines (some broken, ids repeated), comments, blanks,
    and one valid molecule at least (the plan refuses a file without)."""
    lines = []
    for _ in range(draw(st.integers(1, max_lines))):
        smiles = draw(st.one_of(_MOLECULES, _BROKEN) if lines else _MOLECULES)
        ident = draw(_LINE_IDS)
        lines.append(smiles if ident is None else f"{smiles} {ident}")
        if draw(st.integers(0, 5)) == 0:
            lines.append(draw(st.sampled_from(["# comment", ""])))
    return "\n".join(draw(st.permutations(lines))) + "\n"


def _mission(
    inputs: WorkInputs, parts: int, every: int, root: Path
) -> tuple[bytes, dict[str, object]]:
    """Run the shards of ``parts`` near-equal ranges and reduce: (final bytes, the summary
    without its shard count)."""
    results = []
    for shard in _split(WORKLOAD.count_items(inputs), parts):
        work = root / "shards" / shard.shard_id  # the unit's shards share root / "shards"
        results.append(_run_done(shard, inputs, work, checkpoint_every=every))
    summary = WORKLOAD.reduce(results, root / "final.csv", inputs)
    return (root / "final.csv").read_bytes(), {k: v for k, v in summary.items() if k != "shards"}


@settings(max_examples=60, deadline=None)
@given(
    sample_text=_smiles_files(12),
    library_text=_smiles_files(8),
    parts=st.lists(st.integers(1, 5), min_size=2, max_size=2),
    every=st.integers(1, 4),
    k=st.integers(1, 5),
)
def test_both_axes_any_shard_count_equal_the_one_piece_search_byte_for_byte(
    sample_text: str, library_text: str, parts: list[int], every: int, k: int
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        sample, library = root / "q.smi", root / "lib.smi"
        sample.write_text(sample_text)
        library.write_text(library_text)
        inputs = WorkInputs(sample=sample, reference=library, options={"topK": k})
        write_hits_csv(search_library(sample, library, k), root / "one-piece.csv")
        one_piece = (root / "one-piece.csv").read_bytes()
        finals = {}
        for axis, count in zip(Axis, parts, strict=True):
            with pytest.MonkeyPatch.context() as patch:  # the rule would pick one axis only
                patch.setattr(molsim, "shard_axis", lambda _s, _l, axis=axis: axis)
                finals[axis] = _mission(inputs, count, every, root / axis)
        natural = _mission(inputs, parts[0], every, root / "natural")
        assert finals[Axis.LIBRARY][0] == one_piece
        assert finals[Axis.QUERIES][0] == one_piece
        assert natural[0] == one_piece
        assert finals[Axis.LIBRARY][1] == finals[Axis.QUERIES][1] == natural[1]


def _skipped_rows(result: Path) -> tuple[list[int], list[int]]:
    """The (sample, library) file lines a shard file names as skipped (rank-0 rows)."""
    rows = list(csv.DictReader(result.open(newline="")))
    skipped = [r for r in rows if r["rank"] == str(molsim.SKIPPED_RANK)]
    return (
        [int(r["query_position"]) for r in skipped if r["query_position"]],
        [int(r["ref_index"]) for r in skipped if r["ref_index"]],
    )


def test_on_the_query_axis_a_shard_names_the_sample_lines_of_its_range_and_all_the_library(
    tmp_path: Path,
) -> None:
    """Each query-axis shard parses only its queries: it can name no other sample line."""
    sample = tmp_path / "q.smi"
    sample.write_text("# q\nCCO a\nxyz b\nCCN c\nc1ccccc1 d\nCC e\nC f\nCO g\nC1CC h\nCCC i\n")
    library = tmp_path / "lib.smi"
    library.write_text("CCO r\nCCN s\nC1CC broken\nc1ccccc1 t\n")
    inputs = WorkInputs(sample=sample, reference=library, options={"topK": 2})
    assert WORKLOAD.count_items(inputs) == 9
    results = [_run_done(s, inputs, tmp_path / "shards" / s.shard_id) for s in _split(9, 3)]
    assert [_skipped_rows(r) for r in results] == [([3], [3]), ([], [3]), ([9], [3])]
    summary = WORKLOAD.reduce(results, tmp_path / "all.csv", inputs)
    assert (summary["invalidQueryLines"], summary["invalidLibraryLines"]) == ([3, 9], [3])
    assert summary["queries"] == 7
    middle = WORKLOAD.reduce(results[1:2], tmp_path / "part.csv", inputs)
    assert (middle["invalidQueryLines"], middle["invalidLibraryLines"]) == ([], [3])


def _query_axis_inputs(root: Path) -> WorkInputs:
    """60 NCI molecules (3 broken lines among them) against 25 others: the query axis."""
    lines = default_library_path().read_text().splitlines()
    queries = lines[:60]
    for at in (5, 31, 44):
        queries.insert(at, f"C1CC broken{at}")
    sample, library = root / "q.smi", root / "lib.smi"
    sample.write_text("\n".join(queries) + "\n")
    library.write_text("\n".join(lines[100:125]) + "\n")
    inputs = WorkInputs(sample=sample, reference=library, options={"topK": 4})
    assert molsim.partition(inputs) == molsim.Partition(Axis.QUERIES, 63)
    return inputs


@settings(max_examples=25, deadline=None)
@given(every=st.integers(1, 12), data=st.data())
def test_a_query_axis_shard_stopped_at_any_block_resumes_to_the_same_bytes(
    every: int, data: st.DataObject
) -> None:
    shard = ShardRange("s1", 1, 7, 53)
    boundaries = list(range(shard.start + every, shard.end, every))
    stop_at = data.draw(st.sampled_from(boundaries))
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        inputs = _query_axis_inputs(root)
        whole = _run_done(shard, inputs, root / "whole", checkpoint_every=every)

        first = _Recorder(stop_after=stop_at)
        stopped = WORKLOAD.run(shard, inputs, first.context(root / "a", every=every))
        assert isinstance(stopped, ShardStopped)
        assert stopped.position == stop_at
        assert first.progress == boundaries[: boundaries.index(stop_at) + 1]
        assert first.saved[-1] == (stopped.checkpoint, stop_at)

        second = _Recorder()
        context = second.context(root / "b", resume=stopped.checkpoint, every=every)
        done = WORKLOAD.run(shard, inputs, context)
        assert isinstance(done, ShardDone)
        assert second.progress == [*boundaries[boundaries.index(stop_at) + 1 :], shard.end]
        assert done.result.read_bytes() == whole.read_bytes()


@pytest.mark.parametrize("stopped_on", list(Axis))
def test_a_checkpoint_of_the_other_axis_is_not_resumed(tmp_path: Path, stopped_on: Axis) -> None:
    """The same bounds, K and row count on both axes: only the checkpoint's axis tells a
    library-axis state (every query, part of the library) from a query-axis one."""
    sample = tmp_path / "q.smi"
    sample.write_text("c1ccccc1 a\nCCO b\nCCN c\nCC(=O)O d\n")
    references = default_library_path().read_text().splitlines()
    libraries = {Axis.LIBRARY: references[:6], Axis.QUERIES: references[6:9]}
    inputs = {}
    for axis, lines in libraries.items():
        library = tmp_path / f"{axis}.smi"
        library.write_text("\n".join(lines) + "\n")
        inputs[axis] = WorkInputs(sample=sample, reference=library, options={"topK": 2})
        assert molsim.partition(inputs[axis]).axis is axis
    resumed_on = Axis.QUERIES if stopped_on is Axis.LIBRARY else Axis.LIBRARY
    shard = ShardRange("s0", 0, 0, 4)

    first = _Recorder(stop_after=2)
    stopped = WORKLOAD.run(shard, inputs[stopped_on], first.context(tmp_path / "a", every=2))
    assert isinstance(stopped, ShardStopped)
    assert stopped.position == 2
    second = _Recorder()
    context = second.context(tmp_path / "b", resume=stopped.checkpoint, every=2)
    done = WORKLOAD.run(shard, inputs[resumed_on], context)
    assert isinstance(done, ShardDone)
    assert second.progress == [2, 4]  # restarted at 0
    expected = _run_done(shard, inputs[resumed_on], tmp_path / "w")
    assert done.result.read_bytes() == expected.read_bytes()
