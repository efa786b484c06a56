"""Ship the node's own JSON log lines to its deployment's CloudWatch Logs group.

A node logs to stderr (the instance's journal, or the local pool's file); the journal dies
with the instance. ``ShippingHandler`` copies each formatted line into a bounded queue and a
daemon thread sends them with ``PutLogEvents`` to one stream per node attempt,
``<missionId>/<unitId>/<attempt>/<instanceId>``. Shipping must never slow the agent down:
``emit`` never waits; when the queue is full the line is dropped and counted, and the count
is logged once a batch gets through again. Without a configured group nothing is shipped.
"""

from __future__ import annotations

import logging
import queue
import random
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final

from botocore.exceptions import BotoCoreError, ClientError

from node_agent import logs

# PutLogEvents limits (CloudWatch Logs quotas): events per call, bytes per call counted as
# the UTF-8 message plus 26 bytes per event, bytes per event, and the time one call may span.
MAX_BATCH_EVENTS: Final = 10_000
MAX_BATCH_BYTES: Final = 1_048_576
EVENT_OVERHEAD_BYTES: Final = 26
MAX_EVENT_BYTES: Final = 262_144
MAX_BATCH_SPAN_MS: Final = 24 * 3600 * 1000
# 10,000 lines of ~300 bytes: minutes of a chatty node, ~3 MB of memory at most in practice.
MAX_QUEUED_LINES: Final = 10_000
SEND_INTERVAL_SECONDS: Final = 1.0
# A normal end waits at most this long for the last lines; after a Spot notice the agent's
# stop grace (90 s) plus this stays inside the two minutes the notice gives.
FLUSH_SECONDS: Final = 5.0
BACKOFF_BASE_SECONDS: Final = 0.2
BACKOFF_CAP_SECONDS: Final = 5.0
RETRYABLE: Final = frozenset(
    {"ThrottlingException", "ServiceUnavailableException", "LimitExceededException"}
)
TRUNCATED: Final = "...[truncated]"

log = logs.get_logger("log_shipping")


@dataclass(frozen=True)
class LogEvent:
    timestamp_ms: int
    message: str

    @property
    def size(self) -> int:
        """What the event counts against ``MAX_BATCH_BYTES``."""
        return len(self.message.encode("utf-8")) + EVENT_OVERHEAD_BYTES


def clip(message: str) -> str:
    """Cut a line to what one event may hold (a long traceback), keeping valid UTF-8."""
    limit = MAX_EVENT_BYTES - EVENT_OVERHEAD_BYTES
    raw = message.encode("utf-8")
    if len(raw) <= limit:
        return message
    keep = limit - len(TRUNCATED.encode("utf-8"))
    return raw[:keep].decode("utf-8", errors="ignore") + TRUNCATED


def take_batch(pending: deque[LogEvent]) -> list[LogEvent]:
    """Pop the longest prefix of ``pending`` that one PutLogEvents call accepts.

    Events are in time order already (``ShippingHandler`` never lets a timestamp go back),
    so a prefix is in order too; every event fits alone (``clip``).
    """
    batch: list[LogEvent] = []
    size = 0
    while pending and len(batch) < MAX_BATCH_EVENTS:
        event = pending[0]
        if batch and (
            size + event.size > MAX_BATCH_BYTES
            or event.timestamp_ms - batch[0].timestamp_ms > MAX_BATCH_SPAN_MS
        ):
            break
        batch.append(pending.popleft())
        size += event.size
    return batch


def stream_of_bound() -> str | None:
    """``<missionId>/<unitId>/<attempt>/<instanceId>`` once the agent bound its identity."""
    context = logs.bound()
    parts = [context.get(key) for key in ("missionId", "unitId", "attempt", "instanceId")]
    if any(part is None for part in parts):
        return None
    return "/".join(str(part) for part in parts)


class ShippingHandler(logging.Handler):
    """Formats a record as the stderr line and queues it; never waits, never raises."""

    def __init__(self, shipper: LogShipper) -> None:
        super().__init__()
        self.setFormatter(logs.JsonFormatter())
        self.shipper = shipper
        self._last_ms = 0

    def emit(self, record: logging.LogRecord) -> None:
        try:
            # Threads create records before taking the handler lock: keep the stream's time
            # order (AWS refuses a batch out of order) without reordering lines.
            self._last_ms = max(self._last_ms, int(record.created * 1000))
            self.shipper.offer(LogEvent(self._last_ms, clip(self.format(record))))
        except Exception:  # noqa: BLE001 - as logging's own handlers: a log call never fails the agent
            self.handleError(record)


class LogShipper:
    """The sending thread: ``offer`` lines, ``close`` to flush for at most ``FLUSH_SECONDS``."""

    def __init__(
        self,
        client: Any,
        group: str,
        stream: Callable[[], str | None] = stream_of_bound,
        *,
        max_queued: int = MAX_QUEUED_LINES,
        interval: float = SEND_INTERVAL_SECONDS,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.client = client
        self.group = group
        self._stream_of = stream
        self._stream: str | None = None
        self._max_queued = max_queued
        self._queue: queue.Queue[LogEvent] = queue.Queue(maxsize=max_queued)
        self._pending: deque[LogEvent] = deque()
        self._interval = interval
        self._sleep = sleep
        self._lock = threading.Lock()
        self._dropped = 0  # since the last report
        self._failing = False
        self._deadline: float | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="log-shipper", daemon=True)
        self.shipped = 0

    def start(self) -> LogShipper:
        self._thread.start()
        return self

    def offer(self, event: LogEvent) -> bool:
        """Queue ``event``; False (and counted) when the queue is full."""
        try:
            self._queue.put_nowait(event)
        except queue.Full:
            self._count_dropped(1)
            return False
        return True

    @property
    def dropped(self) -> int:
        with self._lock:
            return self._dropped

    def close(self, timeout: float = FLUSH_SECONDS) -> None:
        """Send what is queued, giving up after ``timeout`` seconds (the rest is lost)."""
        self._deadline = time.monotonic() + timeout
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout)

    # ---- the thread ----------------------------------------------------------------------

    def _run(self) -> None:
        while True:
            stopping = self._stop.wait(self._interval)
            self._drain()
            sent = True
            while sent and self._pending and not self._past_deadline():
                sent = self._send(take_batch(self._pending))
            if stopping and (not sent or not self._pending or self._past_deadline()):
                return

    def _drain(self) -> None:
        """Move queued lines to the send list, which holds at most ``max_queued`` too: while
        nothing can be sent, the queue fills and ``offer`` counts what it drops."""
        while len(self._pending) < self._max_queued:
            try:
                self._pending.append(self._queue.get_nowait())
            except queue.Empty:
                return

    def _past_deadline(self) -> bool:
        return self._deadline is not None and time.monotonic() >= self._deadline

    def _count_dropped(self, count: int) -> None:
        with self._lock:
            self._dropped += count

    def _send(self, batch: list[LogEvent]) -> bool:
        """Put ``batch``, retrying throttling; False leaves the rest for the next round."""
        if self._stream is None:
            self._stream = self._stream_of()
            if self._stream is None or not self._call_with_backoff(self._create_stream):
                self._pending.extendleft(reversed(batch))  # no identity yet: wait for it
                self._stream = None
                return False
        events = [{"timestamp": e.timestamp_ms, "message": e.message} for e in batch]
        outcome: dict[str, Any] = {}

        def put() -> None:
            outcome.update(
                self.client.put_log_events(
                    logGroupName=self.group, logStreamName=self._stream, logEvents=events
                )
            )

        if not self._call_with_backoff(put):
            self._count_dropped(len(batch))
            return True
        self.shipped += len(batch) - _rejected(outcome.get("rejectedLogEventsInfo"), len(batch))
        self._count_dropped(_rejected(outcome.get("rejectedLogEventsInfo"), len(batch)))
        self._report_recovery()
        return True

    def _create_stream(self) -> None:
        try:
            self.client.create_log_stream(logGroupName=self.group, logStreamName=self._stream)
        except ClientError as exc:
            if _code(exc) != "ResourceAlreadyExistsException":  # a retried call that landed
                raise

    def _call_with_backoff(self, call: Callable[[], None]) -> bool:
        """Run ``call``; retry throttling with jittered backoff until it works or the flush
        deadline passes. False on a refusal: logged once, until shipping works again."""
        attempt = 0
        while True:
            try:
                call()
                return True
            except (ClientError, BotoCoreError) as exc:
                retryable = isinstance(exc, BotoCoreError) or _code(exc) in RETRYABLE
                if not retryable or self._past_deadline():
                    self._note_failure(exc)
                    return False
            attempt += 1
            ceiling = min(BACKOFF_CAP_SECONDS, BACKOFF_BASE_SECONDS * 2**attempt)
            self._sleep(random.uniform(0, ceiling))

    def _note_failure(self, exc: Exception) -> None:
        if not self._failing:
            self._failing = True
            log.warning("node log lines not shipped", extra={"error": str(exc)})

    def _report_recovery(self) -> None:
        self._failing = False
        with self._lock:
            dropped, self._dropped = self._dropped, 0
        if dropped:
            log.warning("node log lines were dropped", extra={"droppedLines": dropped})


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def _rejected(info: Mapping[str, int] | None, total: int) -> int:
    """Events AWS took but will not store (too old, too new, expired)."""
    if not info:
        return 0
    below = max(info.get("tooOldLogEventEndIndex", -1), info.get("expiredLogEventEndIndex", -1))
    above = info.get("tooNewLogEventStartIndex", total)
    return (below + 1) + (total - above)
