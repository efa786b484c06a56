"""``molsim``: RDKit Morgan-fingerprint Tanimoto search, top-K hits per query molecule.

The sample holds the query molecules; the index space that shards partition is the reference
library (``inputs.reference`` or RDKit's bundled NCI ``first_5K.smi``). Both files use the
SMILES-file format: one molecule per non-empty line, ``SMILES [id]``, ``#`` starts a comment,
the id defaults to the 0-based line index.

One ordering rule is used everywhere, so a sharded run equals a one-piece run byte for byte:

* the hits of one query rank by the *exact* float similarity (descending), ties broken by
  ``ref_id`` ascending in plain Python string order (code points: ``"10" < "9"``), then by
  library position (only reachable when a library repeats an id);
* final rows sort by ``query_id`` (same string order), then the query's line order (queries
  that share an id stay separate), then rank.

Shard files therefore carry the exact similarity (``repr`` of the float) plus two extra columns,
``query_index`` and ``ref_index``, so the reduce re-selects over the union with the same key.
Only the final file rounds similarities to 6 decimals.

RDKit is the optional extra ``lighthpc-sfn[molsim]``. This module imports without it, so the
workload stays listed and a ``workload: molsim`` param still validates; the first use that
needs RDKit raises ``Workload.Unavailable`` naming the extra.
"""

from __future__ import annotations

import csv
import heapq
import json
import logging
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
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
try:
    from rdkit import Chem, DataStructs, RDConfig, rdBase
    from rdkit.Chem import rdFingerprintGenerator
except ImportError as exc:
    _RDKIT_MISSING = exc

logger = logging.getLogger(__name__)

INSTALL_HINT = "install lighthpc-sfn[molsim]"

DEFAULT_TOP_K = 10
# Checkpoints carry the partial top-K of every query: keep them bounded.
MAX_TOP_K = 1000
MORGAN_RADIUS = 2
MORGAN_BITS = 2048

FINAL_HEADER = ("query_id", "rank", "ref_id", "similarity")
SHARD_HEADER = (*FINAL_HEADER, "query_index", "ref_index")
_CHECKPOINT_FORMAT = "molsim-checkpoint/1"


class SmilesEntry(NamedTuple):
    """One molecule line of a SMILES file (``line`` is 1-based)."""

    line: int
    smiles: str
    ident: str


@dataclass(frozen=True)
class Query:
    """A parsed query molecule; ``index`` is its order among the valid queries."""

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


def rank_key(candidate: Candidate) -> tuple[float, str, int]:
    """The total order of hits: best similarity first, then ref_id, then library position."""
    return (-candidate.similarity, candidate.ref_id, candidate.ref_index)


def select_top_k(candidates: Iterable[Candidate], k: int) -> list[Candidate]:
    """The first ``k`` candidates under ``rank_key``, in rank order."""
    return heapq.nsmallest(k, candidates, key=rank_key)


def default_library_path() -> Path:
    """RDKit's bundled NCI library (4,999 molecules, ``SMILES<TAB>id``)."""
    require_rdkit()
    return Path(os.path.join(RDConfig.RDDataDir, "NCI", "first_5K.smi"))


def library_path(inputs: WorkInputs) -> Path:
    return inputs.reference if inputs.reference is not None else default_library_path()


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


def invalid_library_lines(path: Path) -> tuple[int, tuple[int, ...]]:
    """The library's molecule count and its unusable lines (1-based): refused by
    ``input_limits`` or not SMILES at all. Parsed without sanitisation (10x cheaper: 0.12 s
    for NCI's 5K here, against 1.1 s), so a valence error is skipped by the shards only."""
    require_rdkit()
    entries = read_smiles_file(path, "reference library", MAX_LIBRARY_LINES)
    with rdBase.BlockLogs():
        invalid = tuple(
            e.line
            for e in entries
            if smiles_refusal(e.smiles) is not None
            or Chem.MolFromSmiles(e.smiles, sanitize=False) is None
        )
    return len(entries), invalid


def load_queries(path: Path) -> QuerySet:
    """Parse the sample; invalid SMILES are skipped and reported, no usable query is fatal."""
    entries = read_smiles_file(path, "sample", MAX_SAMPLE_LINES)
    if not entries:
        raise MissionInvalidInput("sample contains no molecules (empty or only comments)")
    queries: list[Query] = []
    invalid: list[int] = []
    for entry in entries:
        mol = parse_smiles(entry.smiles)
        if mol is None:
            invalid.append(entry.line)
        else:
            queries.append(Query(len(queries), entry.ident, mol))
    if not queries:
        first = entries[0]
        raise MissionInvalidInput(
            f"no valid SMILES in sample ({len(entries)} lines, "
            f"e.g. line {first.line}: {first.smiles[:40]!r})"
        )
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


def _merge_block(
    top: list[Candidate], similarities: Sequence[float], labels: Sequence[tuple[str, int]], k: int
) -> list[Candidate]:
    """Fold one block's similarities into a query's running top-K."""
    floor = top[-1].similarity if len(top) >= k else -1.0
    fresh = [
        Candidate(sim, ref_id, ref_index)
        for sim, (ref_id, ref_index) in zip(similarities, labels, strict=True)
        if sim >= floor
    ]
    return select_top_k([*top, *fresh], k) if fresh else top


@dataclass(frozen=True)
class _Searcher:
    """What every block of a shard needs: the query fingerprints, K and the generator."""

    query_fps: Sequence[Any]
    k: int
    generator: Any

    def scan(self, tops: list[list[Candidate]], block: Sequence[SmilesEntry], first: int) -> None:
        """Fold references ``block`` (library positions from ``first``) into ``tops``."""
        ref_fps, labels = _reference_fingerprints(block, first, self.generator)
        if not ref_fps:
            return
        for q, query_fp in enumerate(self.query_fps):
            similarities = DataStructs.BulkTanimotoSimilarity(query_fp, ref_fps)
            tops[q] = _merge_block(tops[q], similarities, labels, self.k)


@dataclass
class _ShardState:
    position: int
    tops: list[list[Candidate]]


def _encode_checkpoint(shard: ShardRange, k: int, state: _ShardState) -> bytes:
    """JSON keeps floats exact (``repr`` round-trips), so resuming changes no result."""
    return json.dumps(
        {
            "format": _CHECKPOINT_FORMAT,
            "start": shard.start,
            "end": shard.end,
            "topK": k,
            "position": state.position,
            "tops": [[list(c) for c in top] for top in state.tops],
        },
        separators=(",", ":"),
    ).encode()


def _decode_checkpoint(payload: bytes, shard: ShardRange, k: int, n_queries: int) -> _ShardState:
    """Parse and check a checkpoint; raises ValueError when it does not belong to this run."""
    try:
        data = json.loads(payload)
        header = (data["format"], data["start"], data["end"], data["topK"], len(data["tops"]))
        position = int(data["position"])
        tops = [[Candidate(float(s), str(r), int(i)) for s, r, i in top] for top in data["tops"]]
    except (ValueError, TypeError, KeyError) as exc:
        raise ValueError(f"unreadable checkpoint: {exc}") from exc
    expected = (_CHECKPOINT_FORMAT, shard.start, shard.end, k, n_queries)
    if header != expected or not shard.start <= position <= shard.end:
        raise ValueError(f"checkpoint {header} at {position} does not match {expected}")
    return _ShardState(position, tops)


def _initial_state(shard: ShardRange, k: int, n_queries: int, resume: bytes | None) -> _ShardState:
    """Resume when the checkpoint fits; otherwise restart the range (same result, more work)."""
    if resume:
        try:
            return _decode_checkpoint(resume, shard, k, n_queries)
        except ValueError:
            logger.warning(
                "shard %s: ignoring checkpoint, restarting", shard.shard_id, exc_info=True
            )
    return _ShardState(shard.start, [[] for _ in range(n_queries)])


def _library_slice(path: Path, shard: ShardRange) -> list[SmilesEntry]:
    entries = read_smiles_file(path, "reference library", MAX_LIBRARY_LINES)
    if not 0 <= shard.start <= shard.end <= len(entries):
        raise ShardFailed(
            f"shard range [{shard.start}, {shard.end}) is outside the reference library "
            f"({len(entries)} molecules)"
        )
    return entries[shard.start : shard.end]


def write_shard_csv(path: Path, queries: Sequence[Query], tops: Sequence[list[Candidate]]) -> int:
    """Write a shard's partial top-K with exact similarities; returns the row count."""
    rows = 0
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(SHARD_HEADER)
        for query, top in zip(queries, tops, strict=True):
            for rank, cand in enumerate(top, start=1):
                writer.writerow(
                    (
                        query.ident,
                        rank,
                        cand.ref_id,
                        repr(cand.similarity),
                        query.index,
                        cand.ref_index,
                    )
                )
                rows += 1
    return rows


def read_shard_csv(path: Path) -> list[tuple[int, str, Candidate]]:
    """Rows of a shard file as (query_index, query_id, candidate); ShardFailed when malformed."""
    try:
        with path.open(encoding="utf-8", newline="") as handle:
            reader = csv.reader(handle)
            if tuple(next(reader, ())) != SHARD_HEADER:
                raise ValueError(f"header is not {','.join(SHARD_HEADER)}")
            return [
                (int(q_index), q_id, Candidate(float(sim), ref_id, int(r_index)))
                for q_id, _rank, ref_id, sim, q_index, r_index in reader
            ]
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise ShardFailed(f"shard result {path.name} is unreadable: {exc}") from exc


def final_hits(queries: Sequence[Query], tops: Sequence[Sequence[Candidate]]) -> list[Hit]:
    """Final rows in output order: query_id, then query line order, then rank."""
    order = sorted(range(len(queries)), key=lambda i: (queries[i].ident, queries[i].index))
    return [
        Hit(queries[i].ident, rank, cand.ref_id, cand.similarity)
        for i in order
        for rank, cand in enumerate(tops[i], start=1)
    ]


def write_hits_csv(hits: Iterable[Hit], out: Path) -> int:
    """Write the final result (similarity with 6 decimals); returns the row count."""
    rows = 0
    with out.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(FINAL_HEADER)
        for hit in hits:
            writer.writerow((hit.query_id, hit.rank, hit.ref_id, f"{hit.similarity:.6f}"))
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
    return final_hits(queries, tops)


def _file_stem(shard_id: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]", "_", shard_id) or "shard"


class MolsimWorkload:
    """Top-K Tanimoto search; shards are ranges of reference-library positions."""

    name: ClassVar[str] = "molsim"

    def validate(self, inputs: WorkInputs) -> SampleReport:
        top_k_option(inputs.options)
        parsed = load_queries(inputs.sample)
        molecules, invalid = invalid_library_lines(library_path(inputs))
        if molecules == 0:
            raise MissionInvalidInput("reference library contains no molecules")
        if len(invalid) == molecules:
            raise MissionInvalidInput(
                f"reference library has no valid molecule ({molecules} lines, e.g. line "
                f"{invalid[0]}): nothing to compare the sample with"
            )
        return SampleReport(items=len(parsed.queries), invalid_lines=parsed.invalid_lines)

    def count_items(self, inputs: WorkInputs) -> int:
        """Molecule lines of the library, parsable or not: stable and cheap to count."""
        return len(read_smiles_file(library_path(inputs), "reference library", MAX_LIBRARY_LINES))

    def run(self, shard: ShardRange, inputs: WorkInputs, ctx: ShardContext) -> ShardOutcome:
        k = top_k_option(inputs.options)
        queries = load_queries(inputs.sample).queries
        refs = _library_slice(library_path(inputs), shard)
        generator = _fingerprinter()
        searcher = _Searcher([generator.GetFingerprint(q.mol) for q in queries], k, generator)
        state = _initial_state(shard, k, len(queries), ctx.resume)
        block = max(1, ctx.checkpoint_every)
        while state.position < shard.end:
            if ctx.stop_requested():
                payload = _encode_checkpoint(shard, k, state)
                ctx.save_checkpoint(payload, state.position)
                return ShardStopped(checkpoint=payload, position=state.position)
            stop = min(state.position + block, shard.end)
            chunk = refs[state.position - shard.start : stop - shard.start]
            searcher.scan(state.tops, chunk, state.position)
            state.position = stop
            ctx.progress(stop)
            if stop < shard.end:
                ctx.save_checkpoint(_encode_checkpoint(shard, k, state), stop)
        out = ctx.work_dir / f"{_file_stem(shard.shard_id)}.molsim.csv"
        rows = write_shard_csv(out, queries, state.tops)
        return ShardDone(result=out, stats={"queries": len(queries), "rows": rows})

    def reduce(self, results: Sequence[Path], out: Path, inputs: WorkInputs) -> Mapping[str, Any]:
        """Top-K per query over the union of the shards' top-K lists (same key, so exact)."""
        k = top_k_option(inputs.options)
        parsed = load_queries(inputs.sample)
        queries = parsed.queries
        pools: list[dict[int, Candidate]] = [{} for _ in queries]
        for path in results:
            for q_index, q_id, cand in read_shard_csv(path):
                if not 0 <= q_index < len(queries) or queries[q_index].ident != q_id:
                    raise ShardFailed(f"shard result {path.name} does not match the sample")
                pools[q_index][cand.ref_index] = cand
        tops = [select_top_k(pool.values(), k) for pool in pools]
        rows = write_hits_csv(final_hits(queries, tops), out)
        return {
            "queries": len(queries),
            "hits": rows,
            "invalidQueryLines": list(parsed.invalid_lines),
            "invalidLibraryLines": list(invalid_library_lines(library_path(inputs))[1][:1000]),
            "topK": k,
            "shards": len(results),
        }
