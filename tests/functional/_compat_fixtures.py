"""Helpers for the moto-compat and mock-config tests: small state machines on EmbeddedCloud."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from localcloud.emulator import EmbeddedCloud
from localcloud.lambda_runtime import Handler
from tests.waiting import wait_for
from workflow.states import TERMINAL_EXECUTION

_TRUST = {
    "Version": "2012-10-17",
    "Statement": [
        {
            "Effect": "Allow",
            "Principal": {"Service": "states.amazonaws.com"},
            "Action": "sts:AssumeRole",
        }
    ],
}


@dataclass
class Harness:
    """One EmbeddedCloud plus the clients and a role the tests share."""

    cloud: EmbeddedCloud
    sfn: Any
    role_arn: str
    clients: dict[str, Any] = field(default_factory=dict)

    def client(self, service: str) -> Any:
        if service not in self.clients:
            self.clients[service] = self.cloud.client(service)
        return self.clients[service]

    @staticmethod
    def unique(prefix: str) -> str:
        return f"{prefix}-{uuid.uuid4().hex[:10]}"

    def function(self, handler: Handler, prefix: str = "fn") -> str:
        return self.cloud.deploy_function(self.unique(prefix), handler)

    def state_machine(self, definition: dict[str, Any], name: str | None = None) -> str:
        created = self.sfn.create_state_machine(
            name=name or self.unique("sm"),
            definition=json.dumps(definition),
            roleArn=self.role_arn,
        )
        return str(created["stateMachineArn"])

    def start(self, state_machine_arn: str, payload: Any = None) -> str:
        started = self.sfn.start_execution(
            stateMachineArn=state_machine_arn, input=json.dumps(payload or {})
        )
        return str(started["executionArn"])

    def wait(self, execution_arn: str, timeout: float = 15.0) -> dict[str, Any]:
        def ended() -> dict[str, Any] | None:
            described: dict[str, Any] = self.sfn.describe_execution(executionArn=execution_arn)
            return described if described["status"] in TERMINAL_EXECUTION else None

        return wait_for(ended, timeout, f"execution {execution_arn} to end")

    def run(
        self, state_machine_arn: str, payload: Any = None, timeout: float = 15.0
    ) -> dict[str, Any]:
        return self.wait(self.start(state_machine_arn, payload), timeout)

    def history(self, execution_arn: str) -> list[dict[str, Any]]:
        events: list[dict[str, Any]] = self.sfn.get_execution_history(
            executionArn=execution_arn, maxResults=1000
        )["events"]
        return events


def state_machine_role(cloud: EmbeddedCloud) -> str:
    role = cloud.client("iam").create_role(
        RoleName="lighthpc-compat-tests", AssumeRolePolicyDocument=json.dumps(_TRUST)
    )
    return str(role["Role"]["Arn"])


def open_harness() -> Iterator[Harness]:
    """Generator for a module-scoped fixture: one cloud for a whole test module."""
    with EmbeddedCloud() as cloud:
        yield Harness(cloud, cloud.client("stepfunctions"), state_machine_role(cloud))


def output_of(described: dict[str, Any]) -> Any:
    assert described["status"] == "SUCCEEDED", described
    return json.loads(described["output"])


def keyed_table(harness: Harness, prefix: str) -> str:
    """A new table keyed like tblTrans (hash ``pk`` string + range ``sk`` number)."""
    name = harness.unique(prefix)
    harness.client("dynamodb").create_table(
        TableName=name,
        KeySchema=[
            {"AttributeName": "pk", "KeyType": "HASH"},
            {"AttributeName": "sk", "KeyType": "RANGE"},
        ],
        AttributeDefinitions=[
            {"AttributeName": "pk", "AttributeType": "S"},
            {"AttributeName": "sk", "AttributeType": "N"},
        ],
        BillingMode="PAY_PER_REQUEST",
    )
    return name
