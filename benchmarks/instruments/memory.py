"""``ProcessMemory``: this process's RSS high-water mark and its descendants' peak RSS.

The node processes and their children are found and sampled from ``/proc``.
"""

from __future__ import annotations

import collections
import os

from benchmarks.instruments.periodic import Periodic


def _status_kb(pid: int | str, key: str) -> int:
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except (OSError, ValueError):
        return 0
    return 0


def self_peak_rss_mb() -> float:
    """This process's RSS high-water mark (VmHWM)."""
    return _status_kb("self", "VmHWM") / 1024.0


def descendants(root: int) -> list[int]:
    children: dict[int, list[int]] = collections.defaultdict(list)
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", encoding="ascii") as fh:
                stat = fh.read()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children[ppid].append(int(entry))
    out: list[int] = []
    stack = [root]
    while stack:
        for kid in children.get(stack.pop(), []):
            out.append(kid)
            stack.append(kid)
    return out


class ProcessMemory(Periodic):
    """Peak of the summed RSS of this process's descendants (node agents, their workers)."""

    def __init__(self, interval: float = 0.5) -> None:
        super().__init__(interval, "bench-memory")
        self.peak_children_mb = 0.0
        self.peak_children_count = 0

    def _sample(self) -> None:
        kids = descendants(os.getpid())
        total = sum(_status_kb(pid, "VmRSS") for pid in kids) / 1024.0
        self.peak_children_mb = max(self.peak_children_mb, total)
        self.peak_children_count = max(self.peak_children_count, len(kids))
