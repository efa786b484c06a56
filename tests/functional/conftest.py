"""Fixtures that run the real statemachine.asl.json on the embedded moto with real handlers.

``stack`` is the session's deployed stack (``tests/conftest.py``), reset before each test: a
test sees no other test's missions, executions, instances, objects or notices. A module whose
tests share state through a module fixture uses ``shared_stack`` (reset once per module)
instead, never both: ``stack`` would wipe what the module fixture wrote.
"""

from __future__ import annotations

import copy
import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from localcloud.emulator import EmbeddedCloud
from localcloud.iam import principal_key
from localcloud.stack import LocalStack, _bind_iam, local_services
from tests.conftest import SharedCloud
from tests.waiting import wait_for
from workflow.states import TERMINAL_EXECUTION


def as_principal(cloud: EmbeddedCloud, stack: LocalStack, principal: str) -> Any:
    """Services that act as ``principal`` (``node``, ``light_scheduler``…) under its grants."""
    return local_services(cloud, stack.settings, principal_key(principal))


@contextmanager
def without_grant(
    cloud: EmbeddedCloud, stack: LocalStack, principal: str, action: str
) -> Iterator[None]:
    """The deployed grants minus ``action`` for ``principal``, as if the stack lacked it."""
    assert cloud.iam is not None, "IAM enforcement is off"
    saved = copy.deepcopy(cloud.iam.snapshot)
    for statement in cloud.iam.snapshot["principals"][principal]["statements"]:
        statement["Action"] = [a for a in statement["Action"] if a != action]
    _bind_iam(cloud, stack.settings, stack.state_machine_arn)
    try:
        yield
    finally:
        cloud.iam.snapshot = saved
        _bind_iam(cloud, stack.settings, stack.state_machine_arn)


@pytest.fixture
def stack(shared_cloud: SharedCloud) -> LocalStack:
    return shared_cloud.fresh()


@pytest.fixture
def cloud(shared_cloud: SharedCloud, stack: LocalStack) -> EmbeddedCloud:
    """The cloud ``stack`` runs in (e.g. to reset it with other settings)."""
    del stack
    return shared_cloud.deployed()[0]


@pytest.fixture(scope="module")
def shared_stack(shared_cloud: SharedCloud) -> LocalStack:
    """The stack reset once, for a module whose tests share state on purpose (e.g. the files
    the rejection cases read) and leave no execution running."""
    return shared_cloud.fresh()


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
