"""CreateFleet outcomes AWS gives and moto never does: ``Errors[]`` with no instance.

An ``instant`` fleet that EC2 cannot fill answers HTTP 200 with a ``FleetId``, no (or too
few) ``Instances`` and one ``Errors[]`` entry per override it tried, each with an
``ErrorCode`` such as ``InsufficientInstanceCapacity``, ``MaxSpotInstanceCountExceeded`` or
``UnauthorizedOperation`` (the caller may not launch with this template, role or key). moto
always launches. ``FleetErrors`` patches moto's CreateFleet handler (the server runs in this
process) so that chosen calls fail that way: queued outcomes first (``fail_next``), then a
probability per call (chaos ``capacity=P``). Installed for the life of a ``with`` block.
"""

from __future__ import annotations

import random
import threading
from collections import deque
from collections.abc import Iterable
from types import TracebackType
from typing import Any, Final

from moto.core.responses import ActionResult
from moto.ec2.responses.fleets import Fleets
from moto.ec2.utils import random_fleet_id

INSUFFICIENT_CAPACITY: Final = "InsufficientInstanceCapacity"
MAX_SPOT_COUNT: Final = "MaxSpotInstanceCountExceeded"
UNAUTHORIZED: Final = "UnauthorizedOperation"
_MESSAGES: Final = {
    INSUFFICIENT_CAPACITY: "We currently do not have sufficient capacity in the Availability "
    "Zone you requested.",
    MAX_SPOT_COUNT: "Max spot instance count exceeded",
    UNAUTHORIZED: "You are not authorized to perform this operation.",
}
_LOCK = threading.Lock()


class FleetErrors:
    """Makes chosen CreateFleet calls return ``Errors[]`` and no instance."""

    def __init__(self, *, probability: float = 0.0, seed: int = 0) -> None:
        self.probability = probability
        self._rng = random.Random(seed)  # fault injection, not crypto
        self._queue: deque[str] = deque()
        self._original: Any = None
        self.calls = 0
        self.failed: list[str] = []

    def fail_next(self, codes: Iterable[str]) -> FleetErrors:
        """The next CreateFleet calls fail with these codes, in order."""
        with _LOCK:
            self._queue.extend(codes)
        return self

    def _outcome(self) -> str | None:
        with _LOCK:
            self.calls += 1
            if self._queue:
                code: str | None = self._queue.popleft()
            elif self.probability > 0 and self._rng.random() < self.probability:
                code = INSUFFICIENT_CAPACITY
            else:
                code = None
            if code is not None:
                self.failed.append(code)
            return code

    def install(self) -> FleetErrors:
        original = Fleets.create_fleet
        injector = self

        def create_fleet(handler: Fleets) -> ActionResult:
            code = injector._outcome()
            if code is None:
                return original(handler)
            return ActionResult(
                {
                    "FleetId": random_fleet_id(),
                    "Errors": [
                        {
                            "Lifecycle": _lifecycle(handler),
                            "ErrorCode": code,
                            "ErrorMessage": _MESSAGES.get(code, code),
                        }
                    ],
                }
            )

        self._original = original
        Fleets.create_fleet = create_fleet  # type: ignore[method-assign,assignment]
        return self

    def uninstall(self) -> None:
        if self._original is not None:
            Fleets.create_fleet = self._original  # type: ignore[method-assign]
            self._original = None

    def __enter__(self) -> FleetErrors:
        return self.install()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.uninstall()


def _lifecycle(handler: Fleets) -> str:
    spec = handler._get_param("TargetCapacitySpecification", {}) or {}
    return "spot" if str(spec.get("DefaultTargetCapacityType", "")) == "spot" else "on-demand"
