"""Fingerprints of a SMILES file, computed once per node and cached on disk by content.

Parsing and fingerprinting the library is most of a small shard's cost, and every shard of a
mission reads the same library and the same queries. The cache key is the file's SHA-256 plus
the fingerprint settings and RDKit's version, so a new library version (new bytes) never
reads stale fingerprints. The cache is an ``.npz`` of plain arrays, read with
``allow_pickle=False``; a damaged or foreign file is recomputed, never trusted.
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import numpy.typing as npt

logger = logging.getLogger(__name__)

_FORMAT = "molsim-fp/2"


@dataclass(frozen=True)
class FingerprintIndex:
    """The parsable molecules of a file (or of a span of its positions: a shard's range):
    fingerprints, ids and 0-based positions.

    ``positions`` are molecule-line positions (the 0-based index among the file's molecule
    lines: the library's shard index space, a query's place in the sample). ``entries`` counts
    every molecule line, parsable or not; ``skipped_positions`` and ``skipped_lines`` (1-based
    file lines) are the ones that were not, in the same order.
    """

    fingerprints: Sequence[Any]
    idents: Sequence[str]
    positions: npt.NDArray[np.int64]
    entries: int
    skipped_positions: npt.NDArray[np.int64]
    skipped_lines: npt.NDArray[np.int64]

    def label_rank(self) -> npt.NDArray[np.int64]:
        """Position -> rank in (id, position) order: the tie order of molsim hits.

        One extra last entry, past every rank, is what position ``-1`` (no hit) maps to.
        """
        order = sorted(range(len(self.idents)), key=lambda i: (self.idents[i], i))
        ranks = np.full(self.entries + 1, len(order), np.int64)
        ranks[self.positions[order]] = np.arange(len(order), dtype=np.int64)
        return ranks


class IndexData(NamedTuple):
    """What a builder returns and the cache holds: binary fingerprints, ids and positions of
    the parsable molecule lines, the molecule-line count, and the skipped positions and lines."""

    binaries: list[bytes]
    idents: list[str]
    positions: list[int]
    entries: int
    skipped_positions: list[int]
    skipped_lines: list[int]


Builder = Callable[[], IndexData]


def content_key(path: Path, settings: str) -> str:
    """SHA-256 of the file's bytes and of the settings that shape its fingerprints."""
    digest = hashlib.sha256(f"{_FORMAT}|{settings}|".encode())
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def cached_index(
    source: Path,
    cache_dir: Path,
    settings: str,
    build: Builder,
    decode: Callable[[bytes], Any],
) -> FingerprintIndex:
    """The index of ``source``: from ``cache_dir`` when present, else built and stored.

    ``build`` returns the ``IndexData`` of the file; ``decode`` turns one binary fingerprint
    back into the object RDKit's bulk calls take.
    """
    path = cache_dir / f"molsim-fp-{content_key(source, settings)}.npz"
    loaded = _load(path)
    if loaded is None:
        loaded = build()
        _store(path, loaded)
    return FingerprintIndex(
        [decode(b) for b in loaded.binaries],
        loaded.idents,
        np.asarray(loaded.positions, np.int64),
        loaded.entries,
        np.asarray(loaded.skipped_positions, np.int64),
        np.asarray(loaded.skipped_lines, np.int64),
    )


def _load(path: Path) -> IndexData | None:
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as data:
            loaded = IndexData(
                _unpack(data["fingerprints"], data["fingerprintSizes"]),
                [b.decode() for b in _unpack(data["idents"], data["identSizes"])],
                data["positions"].tolist(),
                int(data["entries"]),
                data["skippedPositions"].tolist(),
                data["skippedLines"].tolist(),
            )
    except (OSError, ValueError, KeyError, zipfile.BadZipFile):
        logger.warning("fingerprint cache %s unreadable: recomputing", path, exc_info=True)
        return None
    sizes = {len(loaded.binaries), len(loaded.idents), len(loaded.positions)}
    skipped = len(loaded.skipped_positions)
    if len(sizes) != 1 or skipped != len(loaded.skipped_lines):
        return None
    if len(loaded.positions) + skipped > loaded.entries:
        return None
    return loaded


def _pack(items: Sequence[bytes]) -> dict[str, npt.NDArray[Any]]:
    """Byte strings as one uint8 blob plus sizes (numpy's str dtype would strip NULs)."""
    return {
        "blob": np.frombuffer(b"".join(items), np.uint8),
        "sizes": np.array([len(b) for b in items], np.int64),
    }


def _unpack(blob: npt.NDArray[Any], sizes: npt.NDArray[Any]) -> list[bytes]:
    raw = blob.tobytes()
    ends = np.cumsum(sizes).tolist()
    if (ends[-1] if ends else 0) != len(raw):
        raise ValueError("fingerprint cache sizes do not match its data")
    return [raw[e - s : e] for s, e in zip(sizes.tolist(), ends, strict=True)]


def _store(path: Path, data: IndexData) -> None:
    """Write atomically (temp file + rename): concurrent workers may race, none reads half."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".molsim-fp-", suffix=".npz", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            fps, ids = _pack(data.binaries), _pack([i.encode() for i in data.idents])
            np.savez(
                handle,
                fingerprints=fps["blob"],
                fingerprintSizes=fps["sizes"],
                idents=ids["blob"],
                identSizes=ids["sizes"],
                positions=np.array(data.positions, np.int64),
                entries=np.array(data.entries, np.int64),
                skippedPositions=np.array(data.skipped_positions, np.int64),
                skippedLines=np.array(data.skipped_lines, np.int64),
            )
        os.replace(tmp, path)
    except OSError:
        logger.warning("fingerprint cache %s not written", path, exc_info=True)
        Path(tmp).unlink(missing_ok=True)
