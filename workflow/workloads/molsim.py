"""``molsim``: RDKit Morgan-fingerprint Tanimoto search, top-K hits per query molecule.

The sample holds the query molecules, the reference library (``inputs.reference`` or RDKit's
bundled NCI ``first_5K.smi``) the molecules they are compared with. Both files use the
SMILES-file format: one molecule per non-empty line, ``SMILES [id]``, ``#`` starts a comment,
the id defaults to the 0-based line index.

The index space that shards partition (``shard_axis``) is the library's molecule-line
positions, or the sample's when the sample has more molecule lines than the library: each
node then fingerprints only its own queries (and the whole library, the smaller file), and
each query's top-K comes from one shard, so the reduce reads K rows per query instead of K
per query and shard. The rule is a pure function of the two files' line counts: the plan,
every shard and the reduce agree on it without a parameter.

One ordering rule is used everywhere, so a sharded run equals a one-piece run byte for byte:

* the hits of one query rank by the *exact* float similarity (descending), ties broken by
  ``ref_id`` ascending in plain Python string order (code points: ``"10" < "9"``), then by
  library position (only reachable when a library repeats an id);
* final rows sort by ``query_id`` (same string order), then the query's line order (queries
  that share an id stay separate), then rank.

Shard files therefore carry the exact similarity (``repr`` of the float) plus two extra columns,
``query_position`` and ``ref_index`` (molecule-line positions in the sample and the library),
so the reduce re-selects over the union with the same key and checks each row against the
sample's ids without RDKit. Only the final file rounds similarities to 6 decimals.

The nodes parse the molecules; the plan only counts lines and finds one valid molecule in
each file. A shard file therefore also names the lines its node could not use, as rows of
rank 0 (``SKIPPED_RANK``) with an empty similarity and the 1-based file line in
``query_position`` (a sample line) or in ``ref_index`` (a library line): the lines of the
partitioned file in the shard's range, all the lines of the other file; the reduce reports
their union, the same on either axis.

RDKit is the optional extra ``lighthpc-sfn[molsim]``. This module imports without it, so the
workload stays listed and a ``workload: molsim`` param still validates; the first use that
needs RDKit raises ``Workload.Unavailable`` naming the extra.
"""

from __future__ import annotations

import csv
import io
import itertools
import logging
import os
import re
import zipfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any, ClassVar, NamedTuple

from workflow.errors import MissionInvalidInput, ShardFailed, WorkloadUnavailable
from workflow.input_limits import MAX_LIBRARY_LINES, MAX_SAMPLE_LINES, smiles_refusal
from workflow.workloads.base import (
    SampleReport,
    ShardContext,
    ShardDone,
    ShardOutcome,
    ShardRange,
    ShardStopped,
    WorkInputs,
)

_RDKIT_MISSING: ImportError | None = None
try:  # numpy comes with the same extra; the helpers below import it
    import numpy as np
    from rdkit import Chem, DataStructs, RDConfig, rdBase
    from rdkit.Chem import rdFingerprintGenerator

    from workflow.workloads.molsim_index import FingerprintIndex, IndexData, cached_index
    from workflow.workloads.molsim_topk import FloatRows, IntRows, empty_tops, merge_block
except ImportError as exc:
    _RDKIT_MISSING = exc

logger = logging.getLogger(__name__)

INSTALL_HINT = "install lighthpc-sfn[molsim]"

DEFAULT_TOP_K = 10
# Checkpoints carry the partial top-K of every query: keep them bounded.
MAX_TOP_K = 1000
MAX_LISTED_LINES = 1000  # invalid library lines named in the summary (the count is not capped)
MORGAN_RADIUS = 2
MORGAN_BITS = 2048

FINAL_HEADER = ("query_id", "rank", "ref_id", "similarity")
SHARD_HEADER = (*FINAL_HEADER, "query_position", "ref_index")
SKIPPED_RANK = 0  # a shard row of this rank names a molecule line the node skipped
_CHECKPOINT_FORMAT = "molsim-checkpoint/3"  # /3: the axis is part of the checkpoint


class Axis(StrEnum):
    """The file whose molecule-line positions the shard ranges partition."""

    LIBRARY = "library"
    QUERIES = "queries"


def shard_axis(sample_lines: int, library_lines: int) -> Axis:
    """Partition the queries when the sample has more molecule lines than the library, else
    the library (few queries: the default). Partitioning the longer file means no node
    fingerprints all of it and, on the query axis, one shard holds each query's whole top-K."""
    return Axis.QUERIES if sample_lines > library_lines else Axis.LIBRARY


class Partition(NamedTuple):
    """The axis of a mission's shards and its length (the molecule lines of that file)."""

    axis: Axis
    items: int


def partition(inputs: WorkInputs) -> Partition:
    """Count both files' molecule lines (cheap, no parse) and apply ``shard_axis``."""
    sample = len(read_smiles_file(inputs.sample, "sample", MAX_SAMPLE_LINES))
    library = len(read_smiles_file(library_path(inputs), "reference library", MAX_LIBRARY_LINES))
    axis = shard_axis(sample, library)
    return Partition(axis, sample if axis is Axis.QUERIES else library)


class SmilesEntry(NamedTuple):
    """One molecule line of a SMILES file (``line`` is 1-based)."""

    line: int
    smiles: str
    ident: str


@dataclass(frozen=True)
class Query:
    """A parsed query molecule; ``index`` is its molecule-line position in the sample (0-based;
    an invalid line keeps its position, so the index is the same whoever parsed the file)."""

    index: int
    ident: str
    mol: Chem.Mol


@dataclass(frozen=True)
class QuerySet:
    """The usable queries of a sample and the lines that did not parse."""

    queries: tuple[Query, ...]
    invalid_lines: tuple[int, ...]


class Candidate(NamedTuple):
    """A reference molecule's exact similarity to one query."""

    similarity: float
    ref_id: str
    ref_index: int


class Hit(NamedTuple):
    """One row of the final result."""

    query_id: str
    rank: int
    ref_id: str
    similarity: float


def require_rdkit() -> None:
    """Every RDKit use goes through here: a missing extra is a named error, not a NameError."""
    if _RDKIT_MISSING is not None:
        raise WorkloadUnavailable(
            f"workload 'molsim' needs RDKit, which is not installed: {INSTALL_HINT}"
        ) from _RDKIT_MISSING


def default_library_path() -> Path:
    """RDKit's bundled NCI library (4,999 molecules, ``SMILES<TAB>id``)."""
    require_rdkit()
    return Path(os.path.join(RDConfig.RDDataDir, "NCI", "first_5K.smi"))


def library_path(inputs: WorkInputs) -> Path:
    return inputs.reference if inputs.reference is not None else default_library_path()


def _load_library(
    inputs: WorkInputs, work_cache: Path, span: tuple[int, int] | None
) -> FingerprintIndex:
    """Library loading in one place: a staged library caches next to its node-local copy, the
    bundled one in the unit's directory."""
    path = library_path(inputs)
    cache = path.parent if inputs.reference is not None else work_cache
    return library_index(path, cache, span)


def _load_indexes(
    axis: Axis, shard: ShardRange, inputs: WorkInputs, work_cache: Path
) -> tuple[FingerprintIndex, FingerprintIndex]:
    """(queries, library) of a shard: the partitioned file's range only (each of its molecules
    is parsed by the one shard that searches it), the other file whole (once per node, cached
    by content)."""
    span = (shard.start, shard.end)
    if axis is Axis.QUERIES:
        return query_index(inputs.sample, work_cache, span), _load_library(inputs, work_cache, None)
    return query_index(inputs.sample, work_cache), _load_library(inputs, work_cache, span)


def top_k_option(options: Mapping[str, Any]) -> int:
    """``topK`` from the mission options, checked so a bad value fails at validation."""
    value = options.get("topK", DEFAULT_TOP_K)
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_TOP_K:
        raise MissionInvalidInput(f"topK must be an integer from 1 to {MAX_TOP_K}, got {value!r}")
    return value


def read_smiles_file(
    path: Path, what: str, max_lines: int = MAX_LIBRARY_LINES
) -> list[SmilesEntry]:
    """The molecule lines of a SMILES file, without parsing the molecules (cheap, stable).
    More than ``max_lines`` molecules is ``Mission.InvalidInput`` (``input_limits``)."""
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise MissionInvalidInput(
            f"{what} is not UTF-8 text ({exc.reason} at byte {exc.start})"
        ) from exc
    except OSError as exc:
        raise MissionInvalidInput(f"{what} cannot be read: {exc.strerror or exc}") from exc
    entries = []
    for number, raw in enumerate(text.splitlines(), start=1):
        fields = raw.split()
        if not fields or fields[0].startswith("#"):
            continue
        ident = fields[1] if len(fields) > 1 else str(number - 1)
        entries.append(SmilesEntry(number, fields[0], ident))
        if len(entries) > max_lines:
            raise MissionInvalidInput(f"{what} has more than {max_lines} molecules")
    return entries


def parse_smiles(smiles: str) -> Chem.Mol | None:
    """The molecule, or None; RDKit's own error log is blocked (invalid lines are reported).
    A molecule past ``input_limits`` is None before RDKit sees it (its fingerprint would cost
    minutes)."""
    require_rdkit()
    if smiles_refusal(smiles) is not None:
        return None
    with rdBase.BlockLogs():
        return Chem.MolFromSmiles(smiles)


def sample_entries(path: Path) -> list[SmilesEntry]:
    """The sample's molecule lines, unparsed; none at all is ``Mission.InvalidInput``."""
    entries = read_smiles_file(path, "sample", MAX_SAMPLE_LINES)
    if not entries:
        raise MissionInvalidInput("sample contains no molecules (empty or only comments)")
    return entries


def _no_valid_sample(entries: Sequence[SmilesEntry]) -> MissionInvalidInput:
    first = entries[0]
    return MissionInvalidInput(
        f"no valid SMILES in sample ({len(entries)} lines, "
        f"e.g. line {first.line}: {first.smiles[:40]!r})"
    )


def any_valid(entries: Iterable[SmilesEntry]) -> bool:
    """Whether one molecule line parses, stopping at the first that does: the plan's check
    costs one parse for a usable file, every parse only for a file the plan refuses."""
    return any(parse_smiles(e.smiles) is not None for e in entries)


def load_queries(path: Path) -> QuerySet:
    """Parse the sample; invalid SMILES are skipped and reported, no usable query is fatal."""
    entries = sample_entries(path)
    queries: list[Query] = []
    invalid: list[int] = []
    for position, entry in enumerate(entries):
        mol = parse_smiles(entry.smiles)
        if mol is None:
            invalid.append(entry.line)
        else:
            queries.append(Query(position, entry.ident, mol))
    if not queries:
        raise _no_valid_sample(entries)
    return QuerySet(tuple(queries), tuple(invalid))


def _fingerprinter() -> Any:
    require_rdkit()
    return rdFingerprintGenerator.GetMorganGenerator(radius=MORGAN_RADIUS, fpSize=MORGAN_BITS)


def _reference_fingerprints(
    entries: Sequence[SmilesEntry], first_index: int, generator: Any
) -> tuple[list[Any], list[tuple[str, int]]]:
    """Fingerprints of the parsable references and their (ref_id, ref_index) labels."""
    fingerprints: list[Any] = []
    labels: list[tuple[str, int]] = []
    for offset, entry in enumerate(entries):
        mol = parse_smiles(entry.smiles)
        if mol is not None:
            fingerprints.append(generator.GetFingerprint(mol))
            labels.append((entry.ident, first_index + offset))
    return fingerprints, labels


def _fingerprint_settings() -> str:
    return f"morgan r{MORGAN_RADIUS} {MORGAN_BITS} bits, rdkit {rdBase.rdkitVersion}"


def _decode_fingerprint(binary: bytes) -> Any:
    # The stub only lists ``str`` pickles; RDKit takes the ``bytes`` that ToBinary returns.
    return DataStructs.ExplicitBitVect(binary)  # type: ignore[call-overload]


def _fingerprint_entries(entries: Sequence[SmilesEntry], first: int) -> IndexData:
    """Fingerprints of the parsable lines among ``entries`` (molecule lines from position
    ``first`` on) and the lines skipped; ``entries`` of the result is left to the caller."""
    generator = _fingerprinter()
    data = IndexData([], [], [], 0, [], [])
    for position, entry in enumerate(entries, start=first):
        mol = parse_smiles(entry.smiles)
        if mol is None:
            data.skipped_positions.append(position)
            data.skipped_lines.append(entry.line)
        else:
            data.binaries.append(generator.GetFingerprint(mol).ToBinary())
            data.idents.append(entry.ident)
            data.positions.append(position)
    return data


def _smiles_index(
    path: Path, cache_dir: Path, what: str, max_lines: int, span: tuple[int, int] | None = None
) -> FingerprintIndex:
    """The fingerprints of a SMILES file's parsable molecule lines (those at positions
    ``span`` = [start, stop) when given) and the lines skipped, cached by content and span."""

    def build() -> IndexData:
        entries = read_smiles_file(path, what, max_lines)
        start, stop = span or (0, len(entries))
        return _fingerprint_entries(entries[start:stop], start)._replace(entries=len(entries))

    require_rdkit()
    settings = _fingerprint_settings() + (f", positions {span[0]}:{span[1]}" if span else "")
    return cached_index(path, cache_dir, settings, build, _decode_fingerprint)


def library_index(
    path: Path, cache_dir: Path, span: tuple[int, int] | None = None
) -> FingerprintIndex:
    """The library's fingerprints, of the positions ``span`` (a shard's range) when given."""
    return _smiles_index(path, cache_dir, "reference library", MAX_LIBRARY_LINES, span)


def query_index(
    path: Path, cache_dir: Path, span: tuple[int, int] | None = None
) -> FingerprintIndex:
    """The sample's valid queries (positions = ``Query.index``), of the positions ``span`` (a
    shard's range on the query axis) when given."""
    return _smiles_index(path, cache_dir, "sample", MAX_SAMPLE_LINES, span)


@dataclass
class _ShardState:
    """The running top-K of every query of the shard: similarities and library positions
    (``-1`` = none); ``position`` is the next position of the range to search."""

    position: int
    top_sim: FloatRows
    top_ref: IntRows


def _similarities(query_fps: Sequence[Any], ref_fps: Sequence[Any]) -> FloatRows:
    """The (queries x references) Tanimoto matrix: one RDKit bulk call per query."""
    sims = np.empty((len(query_fps), len(ref_fps)))
    for q, query_fp in enumerate(query_fps):
        sims[q] = DataStructs.BulkTanimotoSimilarity(query_fp, ref_fps)
    return sims


@dataclass(frozen=True)
class _Searcher:
    """What every block of a shard needs: its queries, the library (the range's part of it
    on the library axis) and the library's tie order."""

    axis: Axis
    queries: FingerprintIndex
    library: FingerprintIndex
    label_rank: IntRows

    def scan(self, state: _ShardState, stop: int) -> None:
        """Search positions ``[state.position, stop)`` of the range into the state's top-K."""
        if self.axis is Axis.QUERIES:
            self._scan_queries(state, stop)
        else:
            self._scan_library(state, stop)
        state.position = stop

    def _scan_library(self, state: _ShardState, stop: int) -> None:
        """Fold those library positions into every query's running top-K."""
        positions = self.library.positions
        lo, hi = np.searchsorted(positions, [state.position, stop]).tolist()
        if lo < hi:
            sims = _similarities(self.queries.fingerprints, self.library.fingerprints[lo:hi])
            state.top_sim, state.top_ref = merge_block(
                state.top_sim, state.top_ref, sims, positions[lo:hi], self.label_rank
            )

    def _scan_queries(self, state: _ShardState, stop: int) -> None:
        """The final top-K of the queries at those sample positions, against the whole
        library (their rows are complete: nothing else folds into them)."""
        lo, hi = np.searchsorted(self.queries.positions, [state.position, stop]).tolist()
        if lo < hi:
            sims = _similarities(self.queries.fingerprints[lo:hi], self.library.fingerprints)
            k = state.top_sim.shape[1]
            state.top_sim[lo:hi], state.top_ref[lo:hi] = merge_block(
                *empty_tops(hi - lo, k), sims, self.library.positions, self.label_rank
            )


def _encode_checkpoint(shard: ShardRange, k: int, state: _ShardState, axis: Axis) -> bytes:
    """Binary ``.npz`` of the exact float64 top-K: cheap to write, resuming changes no result.
    The axis is in the header: the same bounds and shapes on the other axis mean other data."""
    buffer = io.BytesIO()
    np.savez(
        buffer,
        header=np.array([_CHECKPOINT_FORMAT, axis.value]),
        bounds=np.array([shard.start, shard.end, k, state.position], np.int64),
        top_sim=state.top_sim,
        top_ref=state.top_ref,
    )
    return buffer.getvalue()


def _decode_checkpoint(
    payload: bytes, shard: ShardRange, k: int, n_queries: int, axis: Axis
) -> _ShardState:
    """Parse and check a checkpoint; raises ValueError when it does not belong to this run."""
    try:
        with np.load(io.BytesIO(payload), allow_pickle=False) as data:
            header = tuple(str(field) for field in data["header"])
            start, end, top_k, position = (int(v) for v in data["bounds"])
            top_sim = np.asarray(data["top_sim"], np.float64)
            top_ref = np.asarray(data["top_ref"], np.int64)
    except (OSError, ValueError, TypeError, KeyError, IndexError, zipfile.BadZipFile) as exc:
        raise ValueError(f"unreadable checkpoint: {exc}") from exc
    found = (header, start, end, top_k, top_sim.shape, top_ref.shape)
    expected = (
        (_CHECKPOINT_FORMAT, axis.value),
        shard.start,
        shard.end,
        k,
        (n_queries, k),
        (n_queries, k),
    )
    if found != expected or not shard.start <= position <= shard.end:
        raise ValueError(f"checkpoint {found} at {position} does not match {expected}")
    return _ShardState(position, top_sim, top_ref)


def _initial_state(
    shard: ShardRange, k: int, n_queries: int, axis: Axis, resume: bytes | None
) -> _ShardState:
    """Resume when the checkpoint fits; otherwise restart the range (same result, more work)."""
    if resume:
        try:
            return _decode_checkpoint(resume, shard, k, n_queries, axis)
        except ValueError:
            logger.warning(
                "shard %s: ignoring checkpoint, restarting", shard.shard_id, exc_info=True
            )
    return _ShardState(shard.start, *empty_tops(n_queries, k))


def _check_range(extent: Partition, shard: ShardRange) -> None:
    if not 0 <= shard.start <= shard.end <= extent.items:
        what = "sample" if extent.axis is Axis.QUERIES else "reference library"
        raise ShardFailed(
            f"shard range [{shard.start}, {shard.end}) is outside the {what} "
            f"({extent.items} molecules)"
        )


def write_shard_csv(path: Path, queries: Sequence[Query], tops: Sequence[list[Candidate]]) -> int:
    """Write a shard's partial top-K with exact similarities; returns the row count."""
    return _write_shard_rows(
        path,
        (
            (query.ident, rank, cand.ref_id, repr(cand.similarity), query.index, cand.ref_index)
            for query, top in zip(queries, tops, strict=True)
            for rank, cand in enumerate(top, start=1)
        ),
    )


def _write_shard_rows(path: Path, rows: Iterable[Sequence[object]]) -> int:
    count = 0
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(SHARD_HEADER)
        for row in rows:
            writer.writerow(row)
            count += 1
    return count


def _write_state(
    path: Path, queries: FingerprintIndex, library: FingerprintIndex, state: _ShardState
) -> int:
    """The shard file of a finished state (padding ``-1`` entries are not hits), then the
    lines each index skipped: the range's for the partitioned file (its index is the range's
    span), every one for the other."""
    ref_ids = dict(zip(library.positions.tolist(), library.idents, strict=True))
    hits = (
        (q_id, rank, ref_ids[ref], repr(sim), q_position, ref)
        for q_id, q_position, sims, refs in zip(
            queries.idents,
            queries.positions.tolist(),
            state.top_sim.tolist(),
            state.top_ref.tolist(),
            strict=True,
        )
        for rank, (sim, ref) in enumerate(zip(sims, refs, strict=True), start=1)
        if ref >= 0
    )
    skipped_queries = (
        ("", SKIPPED_RANK, "", "", line, "") for line in queries.skipped_lines.tolist()
    )
    skipped_refs = (("", SKIPPED_RANK, "", "", "", line) for line in library.skipped_lines.tolist())
    return _write_shard_rows(path, itertools.chain(hits, skipped_queries, skipped_refs))


def final_hits(tops: Iterable[tuple[str, int, Sequence[Candidate]]]) -> list[Hit]:
    """Final rows in output order from (query id, query position, top-K): query_id, then the
    query's line order, then rank."""
    return [
        Hit(ident, rank, cand.ref_id, cand.similarity)
        for ident, _position, top in sorted(tops, key=lambda t: (t[0], t[1]))
        for rank, cand in enumerate(top, start=1)
    ]


class MolsimMerger:
    """The reduce, one shard file at a time (RsltProc deletes each after ``add``): a top-K per
    query, re-selected after each file (each holds <= K per query), and the union of the
    lines the nodes skipped. It reads the sample's lines, never RDKit: a row is checked
    against the sample by its query's position and id."""

    def __init__(self, inputs: WorkInputs) -> None:
        self._k = top_k_option(inputs.options)
        self._sample = sample_entries(inputs.sample)
        self._sample_lines = {e.line for e in self._sample}
        self._idents = [e.ident for e in self._sample]  # by position: one lookup per row
        # Per query position, its top-K as rank keys (-similarity, ref_id, ref_index): plain
        # tuples sort in rank order natively (a Candidate per row and a heap per query and
        # file were most of RsltProc's seconds); ``finish`` writes them as they are.
        self._tops: dict[int, list[tuple[float, str, int]]] = {}
        self._skipped_queries: set[int] = set()
        self._skipped_refs: set[int] = set()
        self._shards = 0

    def add(self, result: Path) -> None:
        fresh: dict[int, list[tuple[float, str, int]]] = {}
        idents, n = self._idents, len(self._idents)
        try:
            with result.open(encoding="utf-8", newline="") as handle:
                reader = csv.reader(handle)
                if tuple(next(reader, ())) != SHARD_HEADER:
                    raise ValueError(f"header is not {','.join(SHARD_HEADER)}")
                for q_id, rank, ref_id, sim, q_position, r_index in reader:
                    if int(rank) == SKIPPED_RANK:
                        self._skipped(result, q_position, r_index)
                        continue
                    position = int(q_position)
                    if not 0 <= position < n or idents[position] != q_id:
                        raise ShardFailed(f"shard result {result.name} does not match the sample")
                    key = (-float(sim), ref_id, int(r_index))
                    rows = fresh.get(position)
                    if rows is None:
                        fresh[position] = [key]
                    else:
                        rows.append(key)
        except (OSError, UnicodeDecodeError, ValueError) as exc:
            raise ShardFailed(f"shard result {result.name} is unreadable: {exc}") from exc
        tops, k = self._tops, self._k
        for position, keys in fresh.items():
            old = tops.get(position)
            merged = keys if old is None else old + keys
            if len({key[2] for key in merged}) != len(merged):  # a molecule twice: later wins
                merged = list({key[2]: key for key in merged}.values())
            merged.sort()
            tops[position] = merged[:k]
        self._shards += 1

    def _skipped(self, result: Path, sample_line: str, library_line: str) -> None:
        """A rank-0 row: one of its two line columns names a line its node skipped."""
        if sample_line and not library_line:
            line = int(sample_line)
            if line not in self._sample_lines:
                raise ShardFailed(f"shard result {result.name} does not match the sample")
            self._skipped_queries.add(line)
        elif library_line and not sample_line and int(library_line) > 0:
            self._skipped_refs.add(int(library_line))
        else:
            raise ValueError(f"a skipped-line row names {sample_line!r} and {library_line!r}")

    def finish(self, out: Path) -> Mapping[str, Any]:
        rows = self._write_final(out)
        skipped_queries = sorted(self._skipped_queries)
        return {
            "queries": len(self._sample) - len(skipped_queries),
            "hits": rows,
            "invalidQueryLines": skipped_queries,
            "invalidLibraryLines": sorted(self._skipped_refs)[:MAX_LISTED_LINES],
            "topK": self._k,
            "shards": self._shards,
        }

    def _write_final(self, out: Path) -> int:
        """The final rows straight from the rank keys, in ``final_hits``' order (query_id,
        then line order, then rank): no Candidate or Hit per row (two objects per row were
        half of RsltProc's merge at 237,800 rows)."""
        idents, tops = self._idents, self._tops
        return write_hits_csv(
            (
                (idents[position], rank, ref_id, -neg)
                for position in sorted(tops, key=lambda p: (idents[p], p))
                for rank, (neg, ref_id, _) in enumerate(tops[position], start=1)
            ),
            out,
        )


def write_hits_csv(hits: Iterable[tuple[str, int, str, float]], out: Path) -> int:
    """Write the final result (similarity with 6 decimals) from ``Hit`` rows or plain
    (query_id, rank, ref_id, similarity) tuples; returns the row count."""
    rows = 0
    with out.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(FINAL_HEADER)
        for query_id, rank, ref_id, similarity in hits:
            writer.writerow((query_id, rank, ref_id, f"{similarity:.6f}"))
            rows += 1
    return rows


def search_library(queries_path: Path, library: Path, top_k: int) -> list[Hit]:
    """The same search done in one piece: every query against the whole library, then sort.

    Deliberately independent of the shard/checkpoint path; tests and benchmarks compare the
    two (``write_hits_csv`` turns the rows into the final file).
    """
    queries = load_queries(queries_path).queries
    generator = _fingerprinter()
    ref_fps, labels = _reference_fingerprints(
        read_smiles_file(library, "reference library"), 0, generator
    )
    tops = []
    for query in queries:
        sims = DataStructs.BulkTanimotoSimilarity(generator.GetFingerprint(query.mol), ref_fps)
        ranked = sorted(
            zip(sims, labels, strict=True), key=lambda pair: (-pair[0], pair[1][0], pair[1][1])
        )
        tops.append(
            [Candidate(sim, ref_id, ref_index) for sim, (ref_id, ref_index) in ranked[:top_k]]
        )
    return final_hits((q.ident, q.index, top) for q, top in zip(queries, tops, strict=True))


def _file_stem(shard_id: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]", "_", shard_id) or "shard"


class MolsimWorkload:
    """Top-K Tanimoto search; shards are ranges of reference-library positions, or of sample
    positions when the sample is the longer file (``shard_axis``)."""

    name: ClassVar[str] = "molsim"

    def validate(self, inputs: WorkInputs) -> SampleReport:
        """PlanMission's checks, without parsing every molecule: the files' lines are counted
        (and bounded, ``input_limits``), and each file must hold one molecule that parses.
        The nodes parse the rest; the lines they skip come back through the reduce, so the
        report names none (``items`` is the sample's molecule lines)."""
        top_k_option(inputs.options)
        sample = sample_entries(inputs.sample)
        if not any_valid(sample):
            raise _no_valid_sample(sample)
        library = read_smiles_file(library_path(inputs), "reference library", MAX_LIBRARY_LINES)
        if not library:
            raise MissionInvalidInput("reference library contains no molecules")
        if not any_valid(library):
            raise MissionInvalidInput(
                f"reference library has no valid molecule ({len(library)} lines, e.g. line "
                f"{library[0].line}): nothing to compare the sample with"
            )
        return SampleReport(items=len(sample))

    def count_items(self, inputs: WorkInputs) -> int:
        """Molecule lines of the partitioned file (``partition``), parsable or not: stable and
        cheap to count."""
        return partition(inputs).items

    def run(self, shard: ShardRange, inputs: WorkInputs, ctx: ShardContext) -> ShardOutcome:
        """Search the range in blocks of ``checkpoint_every`` positions, a checkpoint after
        each: references against every query, or queries against the whole library (then
        block x library < block x queries: no larger than a library-axis block's matrix)."""
        k = top_k_option(inputs.options)
        extent = partition(inputs)
        _check_range(extent, shard)
        # The unit's shards share their parent directory: fingerprints are computed once there.
        queries, library = _load_indexes(extent.axis, shard, inputs, ctx.work_dir.parent)
        searcher = _Searcher(extent.axis, queries, library, library.label_rank())
        state = _initial_state(shard, k, len(queries.idents), extent.axis, ctx.resume)
        block = max(1, ctx.checkpoint_every)
        while state.position < shard.end:
            if ctx.stop_requested():
                payload = _encode_checkpoint(shard, k, state, extent.axis)
                ctx.save_checkpoint(payload, state.position)
                return ShardStopped(checkpoint=payload, position=state.position)
            stop = min(state.position + block, shard.end)
            searcher.scan(state, stop)
            ctx.progress(stop)
            if stop < shard.end:
                ctx.save_checkpoint(_encode_checkpoint(shard, k, state, extent.axis), stop)
        out = ctx.work_dir / f"{_file_stem(shard.shard_id)}.molsim.csv"
        rows = _write_state(out, queries, library, state)
        return ShardDone(result=out, stats={"queries": len(queries.idents), "rows": rows})

    def reduce(self, results: Sequence[Path], out: Path, inputs: WorkInputs) -> Mapping[str, Any]:
        """Top-K per query over the union of the shards' top-K lists (same key, so exact):
        ``MolsimMerger`` over the files in order."""
        merger = MolsimMerger(inputs)
        for path in results:
            merger.add(path)
        return merger.finish(out)
