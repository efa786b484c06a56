"""The local cloud's start-up heap, kept out of the garbage collector's full passes.

The local cloud lives in the caller's process: moto's backends, every parsed service model,
the ASL grammar and the deployed stack are ~460,000 objects once a session has started, and
none of them becomes garbage while it runs. Each full (generation 2) collection walked all
of them, with every request thread stopped: 0.3 s, once or twice in a 1,000-shard mission
(seen with ``gc.callbacks``), in the middle of a plan or of the nodes' commits. Frozen, they
are left out of every collection until the session thaws them at its end.
"""

from __future__ import annotations

import gc


class FrozenHeap:
    """``gc.freeze`` for the life of a session, undone by ``thaw``."""

    def __init__(self) -> None:
        self._frozen = False

    def freeze(self) -> None:
        """Move every object alive now out of the collector's reach. A caller that froze
        its own heap already keeps it as it is: thawing later would thaw theirs too."""
        if self._frozen or gc.get_freeze_count():
            return
        gc.freeze()
        self._frozen = True

    def thaw(self) -> None:
        """Give the frozen objects back to the collector (what became garbage is freed)."""
        if self._frozen:
            gc.unfreeze()
            self._frozen = False
