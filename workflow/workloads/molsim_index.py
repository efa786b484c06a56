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
from typing import Any

import numpy as np
import numpy.typing as npt

logger = logging.getLogger(__name__)

_FORMAT = "molsim-fp/1"


@dataclass(frozen=True)
class FingerprintIndex:
    """The parsable molecules of a file: fingerprints, ids and 0-based positions.

    ``positions`` are molecule-line positions (library: the shard index space; queries: the
    index among valid queries). ``entries`` counts every molecule line, parsable or not.
    """

    fingerprints: Sequence[Any]
    idents: Sequence[str]
    positions: npt.NDArray[np.int64]
    entries: int

    def label_rank(self) -> npt.NDArray[np.int64]:
        """Position -> rank in (id, position) order: the tie order of molsim hits.

        One extra last entry, past every rank, is what position ``-1`` (no hit) maps to.
        """
        order = sorted(range(len(self.idents)), key=lambda i: (self.idents[i], i))
        ranks = np.full(self.entries + 1, len(order), np.int64)
        ranks[self.positions[order]] = np.arange(len(order), dtype=np.int64)
        return ranks


Builder = Callable[[], tuple[list[bytes], list[str], list[int], int]]


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

    ``build`` returns (binary fingerprints, ids, positions, entries); ``decode`` turns one
    binary fingerprint back into the object RDKit's bulk calls take.
    """
    path = cache_dir / f"molsim-fp-{content_key(source, settings)}.npz"
    loaded = _load(path)
    if loaded is None:
        loaded = build()
        _store(path, *loaded)
    binaries, idents, positions, entries = loaded
    return FingerprintIndex(
        [decode(b) for b in binaries], idents, np.asarray(positions, np.int64), entries
    )


def _load(path: Path) -> tuple[list[bytes], list[str], list[int], int] | None:
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as data:
            binaries = _unpack(data["fingerprints"], data["fingerprintSizes"])
            idents = [b.decode() for b in _unpack(data["idents"], data["identSizes"])]
            positions = [int(p) for p in data["positions"]]
            entries = int(data["entries"])
    except (OSError, ValueError, KeyError, zipfile.BadZipFile):
        logger.warning("fingerprint cache %s unreadable: recomputing", path, exc_info=True)
        return None
    if not len(binaries) == len(idents) == len(positions):
        return None
    return binaries, idents, positions, entries


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


def _store(
    path: Path, binaries: list[bytes], idents: list[str], positions: list[int], entries: int
) -> None:
    """Write atomically (temp file + rename): concurrent workers may race, none reads half."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".molsim-fp-", suffix=".npz", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            fps, ids = _pack(binaries), _pack([i.encode() for i in idents])
            np.savez(
                handle,
                fingerprints=fps["blob"],
                fingerprintSizes=fps["sizes"],
                idents=ids["blob"],
                identSizes=ids["sizes"],
                positions=np.array(positions, np.int64),
                entries=np.array(entries, np.int64),
            )
        os.replace(tmp, path)
    except OSError:
        logger.warning("fingerprint cache %s not written", path, exc_info=True)
        Path(tmp).unlink(missing_ok=True)
