"""Bounds on what one input line, and one input file, may cost: checked before any work.

A 200,000-atom SMILES passes a parser, then every Morgan fingerprint of it is quadratic
(minutes per shard, on every node). The bounds below are far above any drug-like or NCI
molecule (NCI's first 5K: at most 124 heavy atoms) and far below what hurts.
"""

from __future__ import annotations

import re
from typing import Final

MAX_LINE_CHARS: Final = 10_000  # one sample or library line
MAX_SAMPLE_LINES: Final = 100_000  # queries: each one is fingerprinted on every node
MAX_LIBRARY_LINES: Final = 100_000_000  # the planner's items bound (params ``items``)
MAX_HEAVY_ATOMS: Final = 1_000  # per molecule

# One atom per match: a bracket atom ``[...]``, a two-letter organic-subset atom, or a
# one-letter one (aromatic in lower case). Hydrogens in brackets count too: an upper bound.
_ATOM = re.compile(r"\[[^\]]*\]|Br|Cl|[BCNOPSFI]|[bcnops]")


def count_atoms(smiles: str) -> int:
    """Atoms written in ``smiles`` by a token scan: linear, no parser, no chemistry."""
    return sum(1 for _ in _ATOM.finditer(smiles))


def smiles_refusal(smiles: str) -> str | None:
    """Why this SMILES is refused before parsing (line too long, too many atoms), or None."""
    if len(smiles) > MAX_LINE_CHARS:
        return f"{len(smiles)} characters (at most {MAX_LINE_CHARS})"
    atoms = count_atoms(smiles)
    if atoms > MAX_HEAVY_ATOMS:
        return f"{atoms} atoms (at most {MAX_HEAVY_ATOMS} per molecule)"
    return None
