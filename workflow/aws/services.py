"""The AWS clients a handler or node needs, built once (at cold start) and passed in.

Nothing is created at import time; tests and the local mode hand in clients pointed at the
emulator (boto3 also honours ``AWS_ENDPOINT_URL`` on its own).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import boto3
from botocore.config import Config

from workflow.aws.dynamodb import DynamoMissionStore
from workflow.settings import Settings

# 16 connections: RsltProc fetches shard results 16 at a time (aggregation.FETCH_WORKERS).
_CLIENT_CONFIG = Config(retries={"mode": "standard", "max_attempts": 5}, max_pool_connections=16)


@dataclass(frozen=True)
class Services:
    settings: Settings
    s3: Any
    ddb: Any
    sfn: Any
    ec2: Any
    events: Any
    store: DynamoMissionStore


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

    ddb = client("dynamodb")
    return Services(
        settings=settings,
        s3=client("s3"),
        ddb=ddb,
        sfn=client("stepfunctions"),
        ec2=client("ec2"),
        events=client("events"),
        store=DynamoMissionStore(ddb, settings.mission_table, settings.trans_table),
    )
