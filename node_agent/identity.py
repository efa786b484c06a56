"""Who this node is: IMDSv2 (token PUT, then instance-id, instance-type and instance tags).

Tags carry only missionId/unitId/attempt (the task token is in DynamoDB). When tags in
instance metadata are not enabled (404), the same tags come from EC2 ``DescribeTags``.
``AWS_EC2_METADATA_SERVICE_ENDPOINT`` points the client at another IMDS (the local emulator).
"""

from __future__ import annotations

import os
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final

from workflow.aws.ec2 import TAG_ATTEMPT, TAG_MISSION, TAG_UNIT, Ec2Launcher

ENV_IMDS_ENDPOINT: Final = "AWS_EC2_METADATA_SERVICE_ENDPOINT"
DEFAULT_IMDS_ENDPOINT: Final = "http://169.254.169.254"
# IMDSv2 protocol names (an HTTP path and header names, not secrets).
TOKEN_PATH: Final = "/latest/api/token"  # noqa: S105
TOKEN_TTL_HEADER: Final = "X-aws-ec2-metadata-token-ttl-seconds"  # noqa: S105
TOKEN_HEADER: Final = "X-aws-ec2-metadata-token"  # noqa: S105
TOKEN_TTL_SECONDS: Final = 21600
META: Final = "/latest/meta-data/"
TAGS_PATH: Final = META + "tags/instance"
# Tag keys may hold ':' (ours do); keep the characters EC2 allows in metadata tag keys.
_TAG_KEY_SAFE: Final = ":@+=,._-"


class IdentityError(Exception):
    """The node cannot tell which unit attempt it belongs to (missing or malformed tags)."""


class ImdsError(Exception):
    """The metadata service did not answer as IMDSv2 should."""


@dataclass(frozen=True)
class NodeIdentity:
    instance_id: str
    instance_type: str
    mission_id: str
    unit_id: str
    attempt: int


def parse_identity(instance_id: str, instance_type: str, tags: Mapping[str, str]) -> NodeIdentity:
    """Our three tags → identity; ``IdentityError`` names what is missing or malformed."""
    missing = [k for k in (TAG_MISSION, TAG_UNIT, TAG_ATTEMPT) if not tags.get(k)]
    if missing:
        raise IdentityError(f"instance {instance_id} lacks tag(s) {', '.join(missing)}")
    raw_attempt = tags[TAG_ATTEMPT].strip()
    if not raw_attempt.isdigit() or int(raw_attempt) < 1:
        raise IdentityError(f"tag {TAG_ATTEMPT}={raw_attempt!r} is not a positive integer")
    return NodeIdentity(
        instance_id=instance_id.strip(),
        instance_type=instance_type.strip(),
        mission_id=tags[TAG_MISSION].strip(),
        unit_id=tags[TAG_UNIT].strip(),
        attempt=int(raw_attempt),
    )


def parse_tag_keys(listing: str) -> list[str]:
    """The ``tags/instance`` listing: one key per line."""
    return [line.strip() for line in listing.splitlines() if line.strip()]


def imds_endpoint(env: Mapping[str, str] | None = None) -> str:
    source = os.environ if env is None else env
    return (source.get(ENV_IMDS_ENDPOINT) or DEFAULT_IMDS_ENDPOINT).rstrip("/")


class ImdsClient:
    """A small IMDSv2 client: one session token, renewed on 401 or before it expires."""

    def __init__(
        self,
        endpoint: str | None = None,
        *,
        timeout: float = 2.0,
        retries: int = 3,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.endpoint = (endpoint or imds_endpoint()).rstrip("/")
        if not self.endpoint.startswith(("http://", "https://")):
            raise ImdsError(f"IMDS endpoint {self.endpoint!r} is not an http(s) URL")
        self.timeout = timeout
        self.retries = retries
        self._clock = clock
        self._token: str | None = None
        self._token_expires = 0.0
        # IMDS is link-local: never send it through an HTTP(S)_PROXY from the environment.
        self._opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))

    def _open(self, request: urllib.request.Request) -> tuple[int, str]:
        try:
            with self._opener.open(request, timeout=self.timeout) as resp:
                return int(resp.status), resp.read().decode("utf-8")
        except urllib.error.HTTPError as exc:
            return int(exc.code), exc.read().decode("utf-8", errors="replace")

    def _send(self, request: urllib.request.Request) -> tuple[int, str]:
        """Retry connection-level errors briefly (IMDS can be slow right after boot)."""
        delay = 0.2
        for attempt in range(self.retries + 1):
            try:
                return self._open(request)
            except (urllib.error.URLError, TimeoutError, ConnectionError) as exc:
                if attempt == self.retries:
                    raise ImdsError(f"IMDS at {self.endpoint} unreachable: {exc}") from exc
                time.sleep(delay)
                delay *= 2
        raise ImdsError("unreachable")  # pragma: no cover - the loop returns or raises

    def token(self) -> str:
        if self._token is None or self._clock() >= self._token_expires:
            request = urllib.request.Request(  # noqa: S310 - scheme checked in __init__
                self.endpoint + TOKEN_PATH,
                method="PUT",
                headers={TOKEN_TTL_HEADER: str(TOKEN_TTL_SECONDS)},
            )
            status, body = self._send(request)
            if status != 200 or not body:
                raise ImdsError(f"IMDSv2 token request answered HTTP {status}")
            self._token = body.strip()
            self._token_expires = self._clock() + TOKEN_TTL_SECONDS - 60
        return self._token

    def get(self, path: str) -> str | None:
        """The text at ``path`` (e.g. ``/latest/meta-data/instance-id``); None on 404."""
        for _ in range(2):
            request = urllib.request.Request(  # noqa: S310 - scheme checked in __init__
                self.endpoint + path, headers={TOKEN_HEADER: self.token()}
            )
            status, body = self._send(request)
            if status == 200:
                return body
            if status == 404:
                return None
            if status != 401:
                raise ImdsError(f"IMDS GET {path} answered HTTP {status}")
            self._token = None  # expired or rotated: fetch a new one once
        raise ImdsError(f"IMDS GET {path} refused the session token")

    def require(self, path: str) -> str:
        value = self.get(path)
        if value is None:
            raise ImdsError(f"IMDS has no {path}")
        return value

    def tags(self) -> dict[str, str] | None:
        """Instance tags from metadata, or None when tags in metadata are not enabled."""
        listing = self.get(TAGS_PATH)
        if listing is None:
            return None
        out: dict[str, str] = {}
        for key in parse_tag_keys(listing):
            value = self.get(f"{TAGS_PATH}/{urllib.parse.quote(key, safe=_TAG_KEY_SAFE)}")
            if value is not None:
                out[key] = value
        return out


def resolve_identity(imds: ImdsClient, ec2: Any) -> NodeIdentity:
    """Instance id/type from IMDS; tags from IMDS, else from EC2 ``DescribeTags``."""
    instance_id = imds.require(META + "instance-id").strip()
    instance_type = (imds.get(META + "instance-type") or "unknown").strip()
    tags = imds.tags()
    if tags is None:
        tags = Ec2Launcher(ec2).instance_tags(instance_id)
    return parse_identity(instance_id, instance_type, tags)
