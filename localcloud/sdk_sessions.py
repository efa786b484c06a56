"""boto3 sessions at the local cloud that share one botocore loader.

The local cloud makes a session per client (clients are thread-safe, sessions are not),
and each new session re-read and re-parsed every service model it used: 80-190 ms per
client, ec2's model the largest. On the mission's path that was the Lambdas' cold starts,
the IAM check of the first launch and the stack's start-up: seconds no AWS user pays.
One loader caches each parsed model once per process.
"""

from __future__ import annotations

import threading
from typing import Any

import boto3
import botocore.loaders
import botocore.session

_LOADER: Any = None
_GUARD = threading.Lock()


def _loader() -> Any:
    global _LOADER  # noqa: PLW0603 - one model cache per process, made on first use
    with _GUARD:
        if _LOADER is None:
            _LOADER = botocore.loaders.create_loader()
        return _LOADER


def session(access_key: str, secret_key: str, region: str) -> boto3.session.Session:
    """A new boto3 session with these credentials whose service models come from the
    process's one loader (a concurrent first load of a model is only done twice)."""
    core = botocore.session.Session()
    core.register_component("data_loader", _loader())
    return boto3.session.Session(
        aws_access_key_id=access_key,
        aws_secret_access_key=secret_key,
        region_name=region,
        botocore_session=core,
    )


def share_with_every_session() -> None:
    """Make every botocore session created from now on in this process read its models
    through the process's one loader, sessions made by code that knows nothing of this one
    included. A node under the emulator's IAM (``localcloud.iam.node``) has two: the
    agent's own and the enforcer's administrator, which parsed ec2's model a second time
    (~0.2 s of CPU) at the node's end, while RsltProc runs. A configured ``data_path``
    still gets a loader of its own."""

    def create_loader(search_path_string: str | None = None) -> Any:
        if search_path_string is None:
            return _loader()
        return botocore.loaders.create_loader(search_path_string)

    botocore.session.create_loader = create_loader
