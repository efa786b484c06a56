"""The periodic daemon thread that ``Sampler`` and ``ProcessMemory`` both sample on."""

from __future__ import annotations

import threading
from typing import Self


class Periodic:
    """A daemon thread calling ``_sample()`` every ``interval`` seconds inside a ``with``."""

    def __init__(self, interval: float, name: str) -> None:
        self.interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self._sample()

    def _sample(self) -> None:
        raise NotImplementedError
