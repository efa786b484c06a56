"""The emulator's EC2 tells the local node pool when instances are launched or end.

The pool (the local cloud's hypervisor) found new and terminated instances by listing them
with DescribeInstances every 0.2 s: ~70 listings in a 1,000-shard mission, about a second
of the emulator's CPU on a machine whose two cores the nodes need, and a new instance waited
up to a poll before its boot began. In the emulator's process, moto's EC2 backend now sets
each subscriber's event when it launches, starts, stops or terminates instances. The pool
still reads the instances through the API, as any client would; it is only told when to.
"""

from __future__ import annotations

import threading
from typing import Any, Final

from localcloud.moto_compat.machinery import Fix, Impl, Patch

_SUBSCRIBERS: set[threading.Event] = set()
_GUARD = threading.Lock()
_INSTANCE_BACKEND: Final = "moto.ec2.models.instances:InstanceBackend"


def subscribe(event: threading.Event) -> bool:
    """Set ``event`` at every instance change from now on; False when no emulator in this
    process reports them (the caller then polls)."""
    with _GUARD:
        if not INSTANCE_CHANGES.is_applied():
            return False
        _SUBSCRIBERS.add(event)
        return True


def unsubscribe(event: threading.Event) -> None:
    with _GUARD:
        _SUBSCRIBERS.discard(event)


def _notify() -> None:
    with _GUARD:
        subscribers = list(_SUBSCRIBERS)
    for event in subscribers:
        event.set()


def _wrap(inner: Impl) -> Impl:
    def changed(self: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return inner(self, *args, **kwargs)
        finally:
            _notify()  # a refused call changed nothing: one needless listing, no harm

    return changed


INSTANCE_CHANGES = Fix(
    name="ec2_instance_change_events",
    design_ref="DESIGN §6 (the local pool is told of instance changes)",
    description="moto's EC2 backend sets the subscribed events when instances change state.",
    patches=tuple(
        Patch(_INSTANCE_BACKEND, name, _wrap, ("self",))
        for name in ("run_instances", "start_instances", "stop_instances", "terminate_instances")
    ),
)
