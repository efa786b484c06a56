"""``Sampler``: a statistical profiler over every thread of a process, and node profiles.

It reads ``sys._current_frames`` every ``interval`` s. ``enable_node_profiles`` makes the
node-agent processes run one on their main thread (``_nodeprof/sitecustomize.py``) and
``merge_node_profiles`` sums what they wrote.
"""

from __future__ import annotations

import collections
import json
import os
import sys
import threading
from typing import Any

from benchmarks.instruments.periodic import Periodic


class Sampler(Periodic):
    """Samples every thread's stack; ``top()`` gives the hottest frames (self and inclusive)."""

    def __init__(
        self, interval: float = 0.01, *, main_only: bool = False, include_blocked: bool = False
    ) -> None:
        """``main_only`` + ``include_blocked`` gives a wall-clock profile of the main thread."""
        super().__init__(interval, "bench-sampler")
        self.main_only = main_only
        self.include_blocked = include_blocked
        self.samples = 0
        self.inclusive: collections.Counter[str] = collections.Counter()
        self.leaf: collections.Counter[str] = collections.Counter()

    def _sample(self) -> None:
        me = threading.get_ident()
        main = threading.main_thread().ident
        for tid, frame in sys._current_frames().items():
            if tid == me or (self.main_only and tid != main):
                continue
            if not self.include_blocked and _blocked(frame):
                continue
            names = []
            f: Any = frame
            while f is not None:
                code = f.f_code
                names.append(f"{_short(code.co_filename)}:{code.co_name}")
                f = f.f_back
            if not names:
                continue
            self.samples += 1
            self.leaf[names[0]] += 1
            for n in set(names):
                self.inclusive[n] += 1

    def top(self, n: int = 15) -> dict[str, list[tuple[str, int]]]:
        return {"inclusive": self.inclusive.most_common(n), "self": self.leaf.most_common(n)}


_BLOCKING_CALLS = (
    "sleep(",
    ".wait(",
    "wait(",
    "select(",
    ".recv",
    "readinto(",
    "accept(",
    ".acquire(",
    "join(",
    ".poll(",
    "_wait_for_tstate_lock",
    ".get(block",
    "getresponse(",
    "sendall(",
)


def _blocked(frame: Any) -> bool:
    """True when the thread sits in a blocking call (sleep, lock, socket, select): the line
    its innermost Python frame executes calls one. Heuristic, good enough to rank hot code."""
    import linecache

    line = linecache.getline(frame.f_code.co_filename, frame.f_lineno or 0)
    return any(call in line for call in _BLOCKING_CALLS)


def _short(path: str) -> str:
    for marker in ("site-packages/", "/work/main/", "lib/python3.11/"):
        if marker in path:
            return path.split(marker, 1)[1]
    return path


# ------------------------------------------------------------------ node process profiles

NODE_PROFILE_ENV = "LIGHTHPC_BENCH_NODE_PROFILE"
_NODEPROF_DIR = os.path.join(
    os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "_nodeprof"
)


def enable_node_profiles(out_dir: str) -> None:
    """Make every Python process started from now on (node agents) write a wall-clock
    profile of its main thread to ``out_dir`` (see ``_nodeprof/sitecustomize.py``)."""
    path = os.environ.get("PYTHONPATH", "")
    os.environ["PYTHONPATH"] = _NODEPROF_DIR + (os.pathsep + path if path else "")
    os.environ[NODE_PROFILE_ENV] = out_dir


def merge_node_profiles(out_dir: str, match: str = "node_agent/main.py:main") -> dict[str, Any]:
    """Sum the profiles of the processes whose stacks show ``match`` (the agents, not their
    shard workers); figures are shares of the agents' main-thread wall time."""
    inclusive: collections.Counter[str] = collections.Counter()
    leaf: collections.Counter[str] = collections.Counter()
    samples = processes = 0
    for entry in os.listdir(out_dir):
        with open(os.path.join(out_dir, entry), encoding="utf-8") as fh:
            data = json.load(fh)
        if not any(name == match for name, _ in data["inclusive"]):
            continue
        processes += 1
        samples += int(data["samples"])
        inclusive.update(dict(data["inclusive"]))
        leaf.update(dict(data["self"]))
    share = (lambda c: round(c / samples, 3)) if samples else (lambda c: 0.0)
    return {
        "processes": processes,
        "samples": samples,
        "inclusive": [(k, share(v)) for k, v in inclusive.most_common(40)],
        "self": [(k, share(v)) for k, v in leaf.most_common(15)],
    }
