"""Write ``reads.txt``: 3,000 deterministic DNA reads (seeded), one per line.

Reads of 60-150 bases are cut from a random 20 kb genome, with about one base in 200 miscalled
and one read in 50 carrying an ``N``, so a k-mer counter meets realistic input.
"""

from __future__ import annotations

import random
import sys
from pathlib import Path

SEED = 15
READS = 3000


def reads(rng: random.Random) -> list[str]:
    genome = "".join(rng.choice("ACGT") for _ in range(20_000))
    out = []
    for _ in range(READS):
        length = rng.randint(60, 150)
        start = rng.randrange(len(genome) - length)
        bases = list(genome[start : start + length])
        for i in range(length):
            if rng.random() < 1 / 200:
                bases[i] = rng.choice("ACGT")
        if rng.random() < 1 / 50:
            bases[rng.randrange(length)] = "N"
        out.append("".join(bases))
    return out


if __name__ == "__main__":
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).with_name("reads.txt")
    target.write_text("\n".join(reads(random.Random(SEED))) + "\n")
