"""Fixtures that run the real statemachine.asl.json on the embedded moto with real handlers."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest

from localcloud.emulator import EmbeddedCloud
from localcloud.stack import LocalStack, deploy
from tests.waiting import wait_for
from workflow.states import TERMINAL_EXECUTION


@pytest.fixture
def cloud() -> Iterator[EmbeddedCloud]:
    with EmbeddedCloud() as c:
        yield c


@pytest.fixture
def stack(cloud: EmbeddedCloud) -> LocalStack:
    return deploy(cloud)


@pytest.fixture(scope="module")
def shared_stack() -> Iterator[LocalStack]:
    """One emulator for a module whose tests leave no state behind (e.g. rejections)."""
    with EmbeddedCloud() as c:
        yield deploy(c)


def wait_execution(stack: LocalStack, arn: str, timeout: float = 60) -> dict[str, Any]:
    sfn = stack.services.sfn

    def done() -> dict[str, Any] | None:
        desc: dict[str, Any] = sfn.describe_execution(executionArn=arn)
        return desc if desc["status"] in TERMINAL_EXECUTION else None

    return wait_for(done, timeout, f"execution {arn} to end")


def executions(stack: LocalStack) -> list[dict[str, Any]]:
    resp = stack.services.sfn.list_executions(stateMachineArn=stack.state_machine_arn)
    return list(resp["executions"])


def upload_sample(stack: LocalStack, key: str, body: bytes) -> None:
    stack.services.s3.put_object(Bucket=stack.settings.source_bucket, Key=key, Body=body)


def start_manual(stack: LocalStack, payload: Any) -> str:
    resp = stack.services.sfn.start_execution(
        stateMachineArn=stack.state_machine_arn, input=json.dumps(payload)
    )
    return str(resp["executionArn"])


def notices(stack: LocalStack) -> list[str]:
    sqs = stack_client(stack, "sqs")
    out: list[str] = []
    while True:
        resp = sqs.receive_message(QueueUrl=stack.notice_queue_url, MaxNumberOfMessages=10)
        msgs = resp.get("Messages", [])
        if not msgs:
            return out
        for m in msgs:
            out.append(m["Body"])
            sqs.delete_message(QueueUrl=stack.notice_queue_url, ReceiptHandle=m["ReceiptHandle"])


def stack_client(stack: LocalStack, name: str) -> Any:
    import boto3

    session = boto3.session.Session(
        aws_access_key_id="testing", aws_secret_access_key="testing", region_name="us-east-1"
    )
    return session.client(name, endpoint_url=stack.services.s3.meta.endpoint_url)


@pytest.fixture(autouse=True)
def _quiet_emulator_logs(caplog: pytest.LogCaptureFixture) -> None:
    """The emulator's per-request access log drowns the useful lines of a failing test."""
    caplog.set_level(logging.WARNING, logger="werkzeug")
