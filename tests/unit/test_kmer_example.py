"""``examples/kmer/job/kmer_count.py``: its shard counts add up to the whole file's, and a
shard resumed from its own checkpoint gives exactly the counts of an uninterrupted one."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from itertools import pairwise
from pathlib import Path

from workflow.workloads.csv_sum import sum_csv

ROOT = Path(__file__).parents[2]
SCRIPT = ROOT / "examples" / "kmer" / "job" / "kmer_count.py"
READS = ROOT / "examples" / "kmer" / "reads.txt"


def count(work: Path, name: str, start: int, end: int, *extra: str) -> Path:
    out = work / f"{name}.csv"
    env = {
        **os.environ,
        "LIGHTHPC_SHARD_INPUT": str(READS),
        "LIGHTHPC_SHARD_START": str(start),
        "LIGHTHPC_SHARD_END": str(end),
        "LIGHTHPC_SHARD_OUTPUT": str(out),
        "LIGHTHPC_SHARD_CHECKPOINT": str(work / f"{name}.ckpt"),
    }
    subprocess.run([sys.executable, str(SCRIPT), "--k", "4", *extra], env=env, check=True)
    return out


def counts(path: Path) -> Counter[str]:
    rows = path.read_text().splitlines()
    assert rows[0] == "kmer,count"
    return Counter({k: int(v) for k, v in (row.split(",") for row in rows[1:])})


def test_shard_counts_sum_to_the_whole_file(tmp_path: Path) -> None:
    lines = len([line for line in READS.read_text().splitlines() if line.strip()])
    whole = count(tmp_path, "whole", 0, lines)
    cuts = [0, 7, 1000, 1001, lines]
    shards = [count(tmp_path, f"s{i}", a, b) for i, (a, b) in enumerate(pairwise(cuts))]
    summed = tmp_path / "summed.csv"
    sum_csv(shards, summed)
    assert summed.read_text() == whole.read_text()
    assert sum(counts(whole).values()) > 0


def test_a_shard_resumes_mid_range_from_its_own_checkpoint(tmp_path: Path) -> None:
    start, middle, end = 100, 350, 600
    straight = counts(count(tmp_path, "straight", start, end))
    head = counts(count(tmp_path, "head", start, middle))
    # What the script leaves after item ``middle`` when stopped there (its documented format).
    checkpoint = {"position": middle, "k": 4, "counts": dict(head)}
    (tmp_path / "resumed.ckpt").write_text(json.dumps(checkpoint))
    resumed = counts(count(tmp_path, "resumed", start, end))
    assert resumed == straight
    assert counts(count(tmp_path, "tail", middle, end)) != straight  # the checkpoint mattered
