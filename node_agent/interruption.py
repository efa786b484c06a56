"""The Spot notice watcher: polls IMDS for an interruption or a rebalance recommendation.

EC2 posts ``spot/instance-action`` two minutes before reclaiming a Spot instance and
``events/recommendations/rebalance`` when the instance is at elevated risk. Either is a
reason to checkpoint now and hand the unit to a new attempt (DESIGN §5).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from node_agent.identity import META, ImdsClient, ImdsError
from node_agent.logs import get_logger

INSTANCE_ACTION_PATH: Final = META + "spot/instance-action"
REBALANCE_PATH: Final = META + "events/recommendations/rebalance"
DEFAULT_POLL_SECONDS: Final = 5.0
log = get_logger("interruption")


@dataclass(frozen=True)
class Notice:
    """What IMDS announced: ``kind`` is ``instance-action`` or ``rebalance``."""

    kind: str
    action: str
    time: str

    def describe(self) -> str:
        if self.kind == "rebalance":
            return f"rebalance recommendation at {self.time}"
        return f"spot instance-action {self.action} at {self.time}"


def parse_instance_action(body: str) -> Notice:
    """``{"action": "terminate", "time": "..."}``; a garbled body is still a notice."""
    try:
        doc = json.loads(body)
    except ValueError:
        return Notice("instance-action", "terminate", body.strip()[:64])
    if not isinstance(doc, dict):
        return Notice("instance-action", "terminate", "")
    return Notice("instance-action", str(doc.get("action", "terminate")), str(doc.get("time", "")))


def parse_rebalance(body: str) -> Notice:
    try:
        doc = json.loads(body)
    except ValueError:
        return Notice("rebalance", "rebalance", body.strip()[:64])
    when = doc.get("noticeTime", "") if isinstance(doc, dict) else ""
    return Notice("rebalance", "rebalance", str(when))


def check_notice(imds: ImdsClient) -> Notice | None:
    """One poll of both paths; the instance-action wins when both are present."""
    action = imds.get(INSTANCE_ACTION_PATH)
    if action is not None:
        return parse_instance_action(action)
    rebalance = imds.get(REBALANCE_PATH)
    if rebalance is not None:
        return parse_rebalance(rebalance)
    return None


class InterruptionWatcher(threading.Thread):
    """Polls every ``poll_seconds``; calls ``on_notice`` once, then ends."""

    def __init__(
        self, imds: ImdsClient, poll_seconds: float, on_notice: Callable[[Notice], None]
    ) -> None:
        super().__init__(name="spot-watch", daemon=True)
        self._imds = imds
        self.poll_seconds = poll_seconds
        self._on_notice = on_notice
        self._halt = threading.Event()

    def stop(self) -> None:
        self._halt.set()

    def run(self) -> None:
        while not self._halt.is_set():
            try:
                notice = check_notice(self._imds)
            except ImdsError as exc:
                log.warning("spot notice poll failed", extra={"error": str(exc)})
                notice = None
            if notice is not None:
                log.warning("interruption notice", extra={"notice": notice.describe()})
                self._on_notice(notice)
                return
            self._halt.wait(self.poll_seconds)
