"""Performance fix to moto's HTTP server: the same dispatch, without a directory walk per request.

Found by ``benchmarks/overhead.py --profile`` (fix 19 of the package's list).
"""

from __future__ import annotations

import threading
from collections.abc import Iterable

from localcloud.moto_compat.machinery import Fix, Impl, Patch


def _wrap_module_list(inner: Impl) -> Impl:
    listed: list[tuple[str, ...]] = []
    lock = threading.Lock()

    def list_of_moto_modules() -> Iterable[str]:
        """moto's server listed its package directory (an ``isdir`` per entry, ~200) on
        every request, inside the dispatcher lock that every request thread takes: a tenth
        of the emulator's busy time at 1,000 shards. The installed package does not change
        while it runs, so one listing serves every request."""
        if not listed:
            with lock:
                if not listed:
                    listed.append(tuple(inner()))
        return listed[0]

    return list_of_moto_modules


MOTO_SERVER_MODULE_LIST = Fix(
    name="moto_server_module_list",
    design_ref="DESIGN §6 (found by benchmarks/overhead.py --profile)",
    description=(
        "The moto server lists its backend modules once, not on every request inside the "
        "lock that serialises its request threads (same dispatch)."
    ),
    patches=(Patch("moto.backends", "list_of_moto_modules", _wrap_module_list, ()),),
)
