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
    Candidate,
    MolsimWorkload,
    Query,
    default_library_path,
    load_queries,
    search_library,
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

    def context(self, work_dir: Path, resume: bytes | None = None) -> ShardContext:
        work_dir.mkdir(parents=True, exist_ok=True)
        return ShardContext(
            work_dir=work_dir,
            resume=resume,
            stop_requested=self.stop_requested,
            save_checkpoint=self.save,
            progress=self.progress.append,
            checkpoint_every=50,
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
