"""Count the k-mers of DNA reads in one shard's line range: a lightHPC job bundle's program.

Input: one read per line, or FASTA with one sequence line per record (header lines starting
with ``>`` are skipped; a wrapped sequence is counted line by line). An item is a non-empty
line, as the ``command`` workload counts them, so the shard ``[start, end)`` is a range of
non-empty lines. k-mers holding anything but A, C, G, T are not counted.

Output (``LIGHTHPC_SHARD_OUTPUT``): ``kmer,count`` CSV, a header line, rows sorted by k-mer;
the mission sums them across shards (``"reduce": "sumCsv"`` in ``lighthpc-job.json``).

Checkpoint (``LIGHTHPC_SHARD_CHECKPOINT``), JSON, written atomically every
``--checkpoint-every`` items and on SIGTERM: ``{"position": next item, "k": k, "counts":
{...}}``. A shard that finds one resumes from ``position`` with those counts.

Standard library only, so it runs with any Python 3.9+. Run it by hand over a whole file::

    LIGHTHPC_SHARD_INPUT=reads.txt LIGHTHPC_SHARD_START=0 LIGHTHPC_SHARD_END=999999999 \\
    LIGHTHPC_SHARD_OUTPUT=counts.csv LIGHTHPC_SHARD_CHECKPOINT=ckpt.json python kmer_count.py
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
from collections import Counter

HEADER = "kmer,count"
BASES = frozenset("ACGT")


def kmers(sequence: str, k: int):
    """Every k-mer of ``sequence`` made only of A, C, G, T."""
    for i in range(len(sequence) - k + 1):
        word = sequence[i : i + k]
        if BASES.issuperset(word):
            yield word


def load_checkpoint(path: str, k: int, start: int, end: int) -> tuple[int, Counter]:
    """Where to resume: (position, counts) from our own checkpoint, else the shard start."""
    try:
        with open(path, encoding="utf-8") as handle:
            state = json.load(handle)
        position = state["position"]
        if state.get("k") == k and start <= position <= end:
            return position, Counter(state["counts"])
    except (OSError, ValueError, KeyError, TypeError):
        pass
    return start, Counter()


def save_checkpoint(path: str, k: int, position: int, counts: Counter) -> None:
    tmp = f"{path}.tmp"
    with open(tmp, "w", encoding="utf-8") as handle:
        json.dump({"position": position, "k": k, "counts": counts}, handle)
    os.replace(tmp, path)  # atomic: the agent never reads half a checkpoint


def count_range(args: argparse.Namespace) -> int:
    stop = []
    signal.signal(signal.SIGTERM, lambda _signum, _frame: stop.append(True))
    position, counts = load_checkpoint(args.checkpoint, args.k, args.start, args.end)
    item = 0
    with open(args.input, encoding="utf-8") as reads:
        for line in reads:
            sequence = line.strip()
            if not sequence:
                continue
            if item >= args.end:
                break
            if item >= position:
                if not sequence.startswith(">"):
                    counts.update(kmers(sequence.upper(), args.k))
                position = item + 1
                if stop:
                    save_checkpoint(args.checkpoint, args.k, position, counts)
                    return 0
                if position % args.checkpoint_every == 0:
                    save_checkpoint(args.checkpoint, args.k, position, counts)
            item += 1
    tmp = f"{args.output}.tmp"
    with open(tmp, "w", encoding="utf-8") as out:
        out.write(HEADER + "\n")
        for word in sorted(counts):
            out.write(f"{word},{counts[word]}\n")
    os.replace(tmp, args.output)
    return 0


def parse_args(argv: list[str]) -> argparse.Namespace:
    env = os.environ.get
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--k", type=int, default=5, help="k-mer length (default 5)")
    parser.add_argument("--checkpoint-every", type=int, default=500, help="items per checkpoint")
    parser.add_argument("--input", default=env("LIGHTHPC_SHARD_INPUT"))
    parser.add_argument("--start", type=int, default=int(env("LIGHTHPC_SHARD_START", "0")))
    parser.add_argument("--end", type=int, default=int(env("LIGHTHPC_SHARD_END", "0")))
    parser.add_argument("--output", default=env("LIGHTHPC_SHARD_OUTPUT"))
    parser.add_argument("--checkpoint", default=env("LIGHTHPC_SHARD_CHECKPOINT"))
    args = parser.parse_args(argv)
    if not (args.input and args.output and args.checkpoint) or args.k < 1:
        parser.error("needs the LIGHTHPC_SHARD_* environment (or the options) and --k >= 1")
    return args


if __name__ == "__main__":
    sys.exit(count_range(parse_args(sys.argv[1:])))
