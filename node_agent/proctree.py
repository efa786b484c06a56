"""Process-tree helpers (Linux ``/proc``) so that no shard process outlives its node.

Workers run in the agent's process group, but ``command`` shards start their children in a
session of their own; a tree walk by parent pid finds those too. SIGSTOP first, so nothing
forks between the walk and the kill.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import sys
import threading
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Final

PROC = Path("/proc")
# Set by the local pool only (its own pid): on AWS systemd starts the agent and nothing dies
# with a parent, so the variable is absent there and ``die_with_parent`` does nothing.
ENV_PARENT_PID: Final = "LIGHTHPC_NODE_PARENT_PID"
_PR_SET_PDEATHSIG: Final = 1
_PARENT_POLL_SECONDS: Final = 0.5


def _stat_fields(stat_text: str) -> list[str]:
    # Format: "pid (comm) state ppid pgrp ..."; comm may contain spaces and parentheses.
    return stat_text.rsplit(")", 1)[1].split()


def group_members(pgid: int) -> list[int]:
    """Processes whose process group is ``pgid`` (found even after their parent died)."""
    out: list[int] = []
    for entry in PROC.iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError, IndexError, ValueError):
            if int(_stat_fields((entry / "stat").read_text())[2]) == pgid:
                out.append(int(entry.name))
    return out


def parent_map() -> dict[int, int]:
    """pid → parent pid of every visible process."""
    out: dict[int, int] = {}
    for entry in PROC.iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError, IndexError, ValueError):
            out[int(entry.name)] = int(_stat_fields((entry / "stat").read_text())[1])
    return out


def descendants(root: int, parents: dict[int, int] | None = None) -> list[int]:
    """Every process below ``root`` (children first found, then theirs)."""
    parents = parent_map() if parents is None else parents
    children: dict[int, list[int]] = {}
    for pid, ppid in parents.items():
        children.setdefault(ppid, []).append(pid)
    out: list[int] = []
    todo = list(children.get(root, []))
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo.extend(children.get(pid, []))
    return out


def is_alive(pid: int) -> bool:
    """True while ``pid`` exists and is not a zombie."""
    try:
        state = _stat_fields((PROC / str(pid) / "stat").read_text())[0]
    except (OSError, IndexError):
        return False
    return state not in {"Z", "X"}


def signal_all(pids: Iterable[int], sig: signal.Signals) -> None:
    """Signal each pid; one that already exited is skipped."""
    for pid in pids:
        # Already gone is the state we want.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, sig)


def kill_tree(root: int, *, include_root: bool = True) -> list[int]:
    """Freeze the tree below ``root`` until it stops growing, then SIGKILL all of it."""
    frozen: set[int] = set()
    if include_root:
        signal_all([root], signal.SIGSTOP)
        frozen.add(root)
    while True:
        fresh = [pid for pid in descendants(root) if pid not in frozen]
        if not fresh:
            break
        signal_all(fresh, signal.SIGSTOP)
        frozen.update(fresh)
    signal_all(frozen, signal.SIGKILL)  # SIGKILL also ends stopped processes
    return sorted(frozen)


def _watch_parent(parent: int) -> None:
    while os.getppid() == parent:
        time.sleep(_PARENT_POLL_SECONDS)
    os.kill(os.getpid(), signal.SIGKILL)


def die_with_parent(environ: dict[str, str] | None = None) -> None:
    """SIGKILL this process when the one named by ``ENV_PARENT_PID`` dies, even by SIGKILL.

    Linux: PR_SET_PDEATHSIG, then a check that the parent is still the expected pid (it may
    have died before the call: the race the kernel cannot close). Elsewhere: a thread that
    polls ``getppid``. Shard workers follow by watching this agent (``runner``).
    """
    value = (os.environ if environ is None else environ).get(ENV_PARENT_PID, "")
    if not value.isdigit():
        return
    parent = int(value)
    if sys.platform == "linux":
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(_PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG) failed")
    else:
        threading.Thread(target=_watch_parent, args=(parent,), daemon=True).start()
    if os.getppid() != parent:
        os.kill(os.getpid(), signal.SIGKILL)
