"""The AWS clients a handler or node needs, built once (at cold start) and passed in.

Nothing is created at import time; tests and the local mode hand in clients pointed at the
emulator (boto3 also honours ``AWS_ENDPOINT_URL`` on its own). The use cases get
``Services.ports`` (the typed ports); the raw clients stay for the hosts (CLI, local cloud,
node agent) that need more than the ports offer.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import boto3
from botocore.config import Config

from workflow.aws.dynamodb import DynamoMissionStore
from workflow.aws.ec2 import Ec2Launcher
from workflow.aws.s3 import S3ObjectStore
from workflow.aws.tokens import StepFunctionsTaskReporter
from workflow.ports import Ports
from workflow.settings import Settings

# 16 connections: RsltProc fetches shard results 16 at a time (aggregation.FETCH_WORKERS).
_CLIENT_CONFIG = Config(retries={"mode": "standard", "max_attempts": 5}, max_pool_connections=16)


class ClientOnFirstUse:
    """A client made when first used. A node calls EC2 only at its end (its identity comes
    from IMDS) and never calls EventBridge, PlanMission neither; ec2's model alone takes
    ~0.15 s to parse, on the node's path to its first shard."""

    def __init__(self, make: Callable[[], Any]) -> None:
        self._make = make
        self._client: Any = None
        self._lock = threading.Lock()

    def __getattr__(self, name: str) -> Any:
        with self._lock:
            if self._client is None:
                self._client = self._make()
        return getattr(self._client, name)


@dataclass(frozen=True)
class Services:
    settings: Settings
    s3: Any
    ddb: Any
    sfn: Any
    ec2: Any
    events: Any
    store: DynamoMissionStore
    objects: S3ObjectStore
    compute: Ec2Launcher
    tokens: StepFunctionsTaskReporter

    @property
    def ports(self) -> Ports:
        return Ports(self.settings, self.store, self.objects, self.compute, self.tokens)


def make_services(
    settings: Settings | None = None,
    session: boto3.session.Session | None = None,
    endpoint_url: str | None = None,
) -> Services:
    """Build clients for ``settings`` (default: from the environment)."""
    settings = settings or Settings.from_env()
    session = session or boto3.session.Session()

    factory: Any = session  # clients are typed Any here: service names are data, not literals

    def client(name: str) -> Any:
        return factory.client(name, endpoint_url=endpoint_url, config=_CLIENT_CONFIG)

    ddb, s3, sfn = client("dynamodb"), client("s3"), client("stepfunctions")
    ec2 = ClientOnFirstUse(lambda: client("ec2"))
    return Services(
        settings=settings,
        s3=s3,
        ddb=ddb,
        sfn=sfn,
        ec2=ec2,
        events=ClientOnFirstUse(lambda: client("events")),
        store=DynamoMissionStore(ddb, settings.mission_table, settings.trans_table),
        objects=S3ObjectStore(s3),
        compute=Ec2Launcher(ec2),
        tokens=StepFunctionsTaskReporter(sfn),
    )
