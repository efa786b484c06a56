"""Every boto3 call made with a principal's credentials is authorized against its statements
before it leaves the process; a refused call raises the ``ClientError`` botocore raises for
AWS's refusal (same code, HTTP status and message form), and nothing reaches the emulator.

Principals are told apart by their access key (``principal_key``): the local stack builds
each handler's clients with its function's key, the pool starts each node with the node
key, and moto's Step Functions interpreter signs its service integrations with ``ak``, which
is therefore the state machine role. Any other key (the test harness, the CLI, the pool's
own EC2 watcher: the account's administrator) is not evaluated.

The check runs in ``BaseClient._make_api_call`` (patched once per process while an
``Enforcer`` is installed) and not in moto's server: it sees the call's parameters as the
API defines them, for every protocol (S3 REST, JSON, query), where moto's own access control
evaluates actions only (its resources are ``*``, its conditions trust-policy-only).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from botocore.client import BaseClient
from botocore.exceptions import ClientError

from localcloud.iam.policy import Decision, Statement, evaluate, statement_of
from localcloud.iam.requests import ArnContext, Facts, checks

KEY_PREFIX: Final = "LOCALIAM"
SFN_INTERPRETER_KEY: Final = "ak"  # moto.stepfunctions.parser.asl.utils.boto_client
STATE_MACHINE: Final = "state_machine"
# (error code, HTTP status) of an authorization failure, per signing name.
_REFUSALS: Final = {
    "dynamodb": ("AccessDeniedException", 400),
    "states": ("AccessDeniedException", 400),
    "events": ("AccessDeniedException", 400),
    "logs": ("AccessDeniedException", 400),
    "lambda": ("AccessDeniedException", 403),
    "ec2": ("UnauthorizedOperation", 403),
    "sns": ("AuthorizationError", 403),
}
_DEFAULT_REFUSAL: Final = ("AccessDenied", 403)


def principal_key(principal: str) -> str:
    """The access key id the local cloud hands ``principal``'s clients."""
    return KEY_PREFIX + principal.upper().replace("_", "")


@dataclass(frozen=True)
class Observed:
    principal: str
    action: str
    resource: str
    sid: str | None
    allowed: bool

    def as_json(self) -> dict[str, Any]:
        return {
            "principal": self.principal,
            "action": self.action,
            "resource": self.resource,
            "sid": self.sid,
            "allowed": self.allowed,
        }


@dataclass
class Recorder:
    """The distinct decisions taken; ``sink`` (a JSON-lines file) also gets each new one,
    so a node process's decisions reach the report of the process that started it."""

    sink: Path | None = None
    seen: set[Observed] = field(default_factory=set)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def record(self, principal: str, decision: Decision) -> None:
        item = Observed(
            principal,
            decision.check.action,
            decision.check.resource,
            decision.sid,
            decision.allowed,
        )
        with self._lock:
            if item in self.seen:
                return
            self.seen.add(item)
            if self.sink is not None:
                with self.sink.open("a", encoding="utf-8") as out:
                    out.write(json.dumps(item.as_json()) + "\n")

    def observed(self) -> list[Observed]:
        with self._lock:
            found = set(self.seen)
        if self.sink is not None and self.sink.exists():
            for line in self.sink.read_text(encoding="utf-8").splitlines():
                if line.strip():
                    found.add(Observed(**json.loads(line)))
        return sorted(found, key=lambda o: (o.principal, o.action, o.resource, str(o.sid)))


@dataclass(frozen=True)
class ResolvedPolicies:
    """Everything a process needs to enforce: written to a file for the node processes."""

    statements: Mapping[str, Sequence[Statement]]
    roles: Mapping[str, str]  # principal -> role name used in messages
    arns: ArnContext
    state_machine_arn: str

    def to_json(self) -> dict[str, Any]:
        return {
            "statements": {p: [s.as_json() for s in ss] for p, ss in self.statements.items()},
            "roles": dict(self.roles),
            "arns": [self.arns.partition, self.arns.region, self.arns.account],
            "state_machine_arn": self.state_machine_arn,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ResolvedPolicies:
        partition, region, account = data["arns"]
        return cls(
            statements={p: [statement_of(s) for s in ss] for p, ss in data["statements"].items()},
            roles=dict(data["roles"]),
            arns=ArnContext(partition, region, account),
            state_machine_arn=str(data["state_machine_arn"]),
        )


class EmulatorFacts:
    """Facts read from the emulator with the administrator's (unevaluated) credentials."""

    def __init__(self, admin_client: Any, state_machine_arn: str) -> None:
        self._client = admin_client  # (service name) -> boto3 client
        self._state_machine_arn = state_machine_arn

    def instance_tags(self, instance_ids: Sequence[str]) -> dict[str, dict[str, str]]:
        if not instance_ids:
            return {}
        resp = self._client("ec2").describe_tags(
            Filters=[{"Name": "resource-id", "Values": list(instance_ids)}]
        )
        out: dict[str, dict[str, str]] = {}
        for tag in resp.get("Tags", []):
            out.setdefault(str(tag["ResourceId"]), {})[str(tag["Key"])] = str(tag["Value"])
        return out

    def launch_template(self, spec: Mapping[str, Any]) -> tuple[str, str, list[str]]:
        query = (
            {"LaunchTemplateIds": [spec["LaunchTemplateId"]]}
            if "LaunchTemplateId" in spec
            else {"LaunchTemplateNames": [spec["LaunchTemplateName"]]}
        )
        ec2 = self._client("ec2")
        template = ec2.describe_launch_templates(**query)["LaunchTemplates"][0]
        template_id = str(template["LaunchTemplateId"])
        versions = ec2.describe_launch_template_versions(
            LaunchTemplateId=template_id, Versions=[str(spec.get("Version", "$Latest"))]
        )["LaunchTemplateVersions"]
        data = versions[0]["LaunchTemplateData"] if versions else {}
        return template_id, str(data.get("ImageId", "")), list(data.get("SecurityGroupIds", []))

    def task_token_resource(self, token: str) -> str:
        """Every token in the local cloud is issued by the one mission state machine (a Map
        child's token is its parent's: the statement names both forms)."""
        del token
        return self._state_machine_arn


class Enforcer:
    def __init__(
        self,
        policies: ResolvedPolicies,
        facts: Facts,
        *,
        recorder: Recorder | None = None,
    ) -> None:
        self.policies = policies
        self.facts = facts
        self.recorder = recorder or Recorder()
        self.keys = {principal_key(p): p for p in policies.statements}
        if STATE_MACHINE in policies.statements:
            self.keys[SFN_INTERPRETER_KEY] = STATE_MACHINE

    def principal_of(self, client: BaseClient) -> str | None:
        signer = getattr(client, "_request_signer", None)
        credentials = getattr(signer, "_credentials", None)
        key = getattr(credentials, "access_key", None)
        return self.keys.get(key) if isinstance(key, str) else None

    def authorize(self, client: BaseClient, operation: str, params: Mapping[str, Any]) -> None:
        principal = self.principal_of(client)
        if principal is None:
            return
        model = client.meta.service_model
        prefix = str(model.signing_name or model.endpoint_prefix)
        statements = self.policies.statements[principal]
        for check in checks(prefix, operation, params, self.policies.arns, self.facts):
            decision = evaluate(statements, check)
            self.recorder.record(principal, decision)
            if not decision.allowed:
                raise self.refusal(client, operation, principal, decision)

    def refusal(
        self, client: BaseClient, operation: str, principal: str, decision: Decision
    ) -> ClientError:
        prefix = str(client.meta.service_model.signing_name)
        code, status = _REFUSALS.get(prefix, _DEFAULT_REFUSAL)
        arns = self.policies.arns
        role = self.policies.roles.get(principal, principal)
        user = f"arn:{arns.partition}:sts::{arns.account}:assumed-role/{role}/{principal}"
        why = (
            "with an explicit deny in an identity-based policy"
            if decision.explicit_deny
            else f"because no identity-based policy allows the {decision.check.action} action"
        )
        message = (
            f"User: {user} is not authorized to perform: {decision.check.action} "
            f"on resource: {decision.check.resource} {why}"
        )
        if code == "UnauthorizedOperation":
            message = f"You are not authorized to perform this operation. {message}"
        response: Any = {
            "Error": {"Code": code, "Message": message},
            "ResponseMetadata": {"HTTPStatusCode": status},
        }
        error_class: type[ClientError] = client.exceptions.from_code(code)
        return error_class(response, operation)


# ---- the process-wide hook --------------------------------------------------------------

_LOCK = threading.Lock()
_ACTIVE: list[Enforcer] = []
_ORIGINAL: list[Any] = []


def _make_api_call(client: BaseClient, operation_name: str, api_params: Any) -> Any:
    with _LOCK:
        enforcer = _ACTIVE[0] if _ACTIVE else None
    if enforcer is not None:
        enforcer.authorize(client, operation_name, api_params or {})
    return _ORIGINAL[0](client, operation_name, api_params)


def install(enforcer: Enforcer) -> None:
    with _LOCK:
        if _ACTIVE:
            raise RuntimeError("an IAM enforcer is already installed in this process")
        if not _ORIGINAL:
            _ORIGINAL.append(BaseClient._make_api_call)
            BaseClient._make_api_call = _make_api_call
        _ACTIVE.append(enforcer)


def uninstall(enforcer: Enforcer) -> None:
    with _LOCK:
        if enforcer in _ACTIVE:
            _ACTIVE.remove(enforcer)
        if not _ACTIVE and _ORIGINAL:
            BaseClient._make_api_call = _ORIGINAL.pop()


def active() -> Enforcer | None:
    with _LOCK:
        return _ACTIVE[0] if _ACTIVE else None


@contextmanager
def installed(enforcer: Enforcer) -> Iterator[Enforcer]:
    install(enforcer)
    try:
        yield enforcer
    finally:
        uninstall(enforcer)
