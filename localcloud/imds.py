"""An IMDSv2 emulator per local instance, so the real node agent runs unchanged.

It speaks the parts of the EC2 instance metadata service the agent uses: a session token
from ``PUT /latest/api/token`` (TTL header required), token-checked GETs (401 without a valid
token) for the instance's id, type, lifecycle, zone and tags, and the two Spot notice paths,
which answer 404 until a test or the chaos tooling injects a notice.
"""

from __future__ import annotations

import json
import secrets
import sys
import threading
import time
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Final
from urllib.parse import unquote

LOCAL_HOST: Final = "127.0.0.1"
TOKEN_PATH: Final = "/latest/api/token"  # noqa: S105 - an HTTP path, not a secret
TTL_HEADER: Final = "X-aws-ec2-metadata-token-ttl-seconds"
TOKEN_HEADER: Final = "X-aws-ec2-metadata-token"  # noqa: S105 - a header name, not a secret
META: Final = "/latest/meta-data/"
MAX_TTL_SECONDS: Final = 21600
SPOT_NOTICE_LEAD: Final = timedelta(minutes=2)


def _iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


class ImdsEmulator:
    """One instance's metadata service on 127.0.0.1 and a free port (``endpoint``)."""

    def __init__(
        self,
        instance_id: str,
        *,
        instance_type: str = "c6i.large",
        tags: Mapping[str, str] | None = None,
        life_cycle: str = "spot",
        availability_zone: str = "us-east-1a",
        tags_in_metadata: bool = True,
    ) -> None:
        self.instance_id = instance_id
        self.instance_type = instance_type
        self.tags = dict(tags or {})
        self.life_cycle = life_cycle
        self.availability_zone = availability_zone
        self.tags_in_metadata = tags_in_metadata
        self._lock = threading.Lock()
        self._tokens: dict[str, float] = {}
        self._instance_action: str | None = None
        self._rebalance: str | None = None
        self.requests: dict[str, int] = {}
        self._server = _QuietServer((LOCAL_HOST, 0), _handler_for(self))
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, name=f"imds-{instance_id}", daemon=True
        )
        self._thread.start()

    @property
    def endpoint(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    # ---- injection -----------------------------------------------------------------------

    def inject_interruption(self, action: str = "terminate") -> None:
        """Post a Spot ``instance-action`` notice (two minutes ahead, as EC2 does)."""
        when = datetime.now(tz=UTC) + SPOT_NOTICE_LEAD
        with self._lock:
            self._instance_action = json.dumps({"action": action, "time": _iso(when)})

    def inject_rebalance(self) -> None:
        with self._lock:
            self._rebalance = json.dumps({"noticeTime": _iso(datetime.now(tz=UTC))})

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> ImdsEmulator:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # ---- protocol ------------------------------------------------------------------------

    def issue_token(self, ttl_header: str | None) -> tuple[int, str]:
        if ttl_header is None or not ttl_header.strip().isdigit():
            return 400, "missing or invalid " + TTL_HEADER
        ttl = int(ttl_header)
        if not 1 <= ttl <= MAX_TTL_SECONDS:
            return 400, f"{TTL_HEADER} must be 1..{MAX_TTL_SECONDS}"
        token = secrets.token_urlsafe(32)
        with self._lock:
            self._tokens[token] = time.monotonic() + ttl
        return 200, token

    def token_valid(self, token: str | None) -> bool:
        with self._lock:
            expires = self._tokens.get(token or "")
        return expires is not None and time.monotonic() < expires

    def metadata(self, path: str) -> str | None:
        """The body for a ``/latest/meta-data/...`` path, or None (404)."""
        with self._lock:
            self.requests[path] = self.requests.get(path, 0) + 1
            action, rebalance = self._instance_action, self._rebalance
        fixed = {
            "instance-id": self.instance_id,
            "instance-type": self.instance_type,
            "instance-life-cycle": self.life_cycle,
            "placement/availability-zone": self.availability_zone,
            "spot/instance-action": action,
            "events/recommendations/rebalance": rebalance,
        }
        key = path.removeprefix(META).rstrip("/")
        if key in fixed:
            return fixed[key]
        if key == "tags/instance" and self.tags_in_metadata:
            return "\n".join(self.tags)
        if key.startswith("tags/instance/") and self.tags_in_metadata:
            return self.tags.get(unquote(key.removeprefix("tags/instance/")))
        return None


class _QuietServer(ThreadingHTTPServer):
    """A client that hangs up mid-reply (an agent exiting) is normal, not an error to print."""

    def handle_error(self, request: object, client_address: object) -> None:
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)  # type: ignore[arg-type]


def _handler_for(imds: ImdsEmulator) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        server_version = "EC2ws"

        def _reply(self, status: int, body: str) -> None:
            data = body.encode()
            self.send_response(status)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_PUT(self) -> None:
            if self.path != TOKEN_PATH:
                self._reply(404, "Not Found")
                return
            self._reply(*imds.issue_token(self.headers.get(TTL_HEADER)))

        def do_GET(self) -> None:
            if not imds.token_valid(self.headers.get(TOKEN_HEADER)):
                self._reply(401, "Unauthorized")
                return
            body = imds.metadata(self.path) if self.path.startswith(META) else None
            if body is None:
                self._reply(404, "Not Found")
            else:
                self._reply(200, body)

        def log_message(self, format: str, *args: object) -> None:
            """Quiet: the agent's own logs say what it asked."""

    return Handler
