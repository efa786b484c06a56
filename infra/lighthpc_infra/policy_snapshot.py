"""The IAM policy snapshot: each runtime principal's statements, read from the synthesized
template, with CloudFormation intrinsics turned into ``${...}`` placeholders.

The embedded cloud (``localcloud/iam``) enforces these statements, so the local mode runs
under the grants the CDK app deploys, without Node.js or a synth at run time. Regenerate
after changing a grant (``tests/infra/test_policy_snapshot.py`` fails until you do)::

    PYTHONPATH=.:infra python -m lighthpc_infra.policy_snapshot

Placeholders (the local cloud substitutes them; an unknown one matches nothing):

* ``${AWS::Partition}``, ``${AWS::Region}``, ``${AWS::AccountId}``: pseudo parameters;
* ``${<settings field>}`` (``mission_table``, ``source_bucket``, ``topic_arn``, ...): a
  resource whose name the stack hands the functions through ``workflow.settings``;
* ``${function:<principal>}``, ``${role:<principal>}``: a principal's function or role name;
* ``${launch_template_id}``: the node launch template's id;
* ``${cdk_assets_bucket}/${node_package_key}``: the node package object;
* ``${<LogicalId>}``: any other resource (log groups, the topic key, the security group).
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Mapping
from dataclasses import fields
from pathlib import Path
from typing import Any, Final

from workflow.settings import Settings

SNAPSHOT_PATH: Final = Path(__file__).resolve().parents[2] / "localcloud" / "iam" / "policies.json"
NODE: Final = "node"
STATE_MACHINE: Final = "state_machine"
_HANDLER: Final = re.compile(r"^lambdas\.(\w+)\.handler$")
_SUB_VAR: Final = re.compile(r"\$\{([^}!][^}]*)\}")
# as_env() lists the fields in order: env var -> Settings field
_ENV_FIELDS: Final = {
    env: f.name for f, env in zip(fields(Settings), Settings().as_env(), strict=True)
}
_ARN: Final = "arn:${AWS::Partition}"
# The node package in the CDK assets bucket: its key is a content hash that changes with every
# source edit, so the snapshot names it by role, not by hash.
_ASSET: Final = re.compile(
    r"cdk-[a-z0-9]+-assets-\$\{AWS::AccountId\}-\$\{AWS::Region\}/[0-9a-f]{64}"
)
_REGIONAL: Final = "${AWS::Region}:${AWS::AccountId}"


class SnapshotError(ValueError):
    """The template holds something the snapshot cannot represent faithfully."""


def _ref_id(value: Any) -> str | None:
    if isinstance(value, Mapping):
        if "Ref" in value:
            return str(value["Ref"])
        if "Fn::GetAtt" in value:
            return str(value["Fn::GetAtt"][0])
    return None


class _Resolver:
    """Intrinsics -> strings with placeholders, from what the template itself says."""

    def __init__(self, template: Mapping[str, Any], principals: Mapping[str, str]) -> None:
        self.resources: Mapping[str, Any] = template["Resources"]
        self.names: dict[str, str] = {}  # logical id -> placeholder of its name/id
        for resource in self.resources.values():
            props = resource.get("Properties", {})
            if resource["Type"] == "AWS::Lambda::Function":
                variables = props.get("Environment", {}).get("Variables", {})
                for env, value in variables.items():
                    target = _ref_id(value)
                    if env in _ENV_FIELDS and target and "Ref" in value:
                        self.names[target] = "${" + _ENV_FIELDS[env] + "}"
        for principal, function_id in _functions(self.resources).items():
            self.names.setdefault(function_id, "${function:" + principal + "}")
        for principal, role_id in principals.items():
            self.names.setdefault(role_id, "${role:" + principal + "}")
        for logical_id, resource in self.resources.items():
            if resource["Type"] == "AWS::EC2::LaunchTemplate":
                self.names.setdefault(logical_id, "${launch_template_id}")

    def name(self, logical_id: str) -> str:
        return self.names.get(logical_id, "${" + logical_id + "}")

    def ref(self, logical_id: str) -> str:
        if logical_id.startswith("AWS::"):
            return "${" + logical_id + "}"
        kind = self.resources[logical_id]["Type"]
        props = self.resources[logical_id].get("Properties", {})
        name = self.name(logical_id)
        if kind == "AWS::SNS::Topic" and not name.endswith("_arn}"):
            return f"{_ARN}:sns:{_REGIONAL}:{name}"
        if kind == "AWS::StepFunctions::StateMachine":
            machine = props.get("StateMachineName") or name
            return f"{_ARN}:states:{_REGIONAL}:stateMachine:{machine}"
        return name

    def get_att(self, logical_id: str, attribute: str) -> str:
        kind = self.resources[logical_id]["Type"]
        name = self.name(logical_id)
        if attribute != "Arn":
            return name  # GroupId and the like: the resource's id
        arns = {
            "AWS::DynamoDB::Table": f"{_ARN}:dynamodb:{_REGIONAL}:table/{name}",
            "AWS::S3::Bucket": f"{_ARN}:s3:::{name}",
            "AWS::Lambda::Function": f"{_ARN}:lambda:{_REGIONAL}:function:{name}",
            "AWS::IAM::Role": f"{_ARN}:iam::${{AWS::AccountId}}:role/{name}",
            "AWS::KMS::Key": f"{_ARN}:kms:{_REGIONAL}:key/{name}",
            "AWS::Logs::LogGroup": f"{_ARN}:logs:{_REGIONAL}:log-group:{name}:*",
            "AWS::SQS::Queue": f"{_ARN}:sqs:{_REGIONAL}:{name}",
        }
        if kind not in arns:
            raise SnapshotError(f"no ARN form for {kind} ({logical_id})")
        return arns[kind]

    def resolve(self, value: Any) -> str:
        if isinstance(value, str):
            return value
        if not isinstance(value, Mapping) or len(value) != 1:
            raise SnapshotError(f"cannot resolve {value!r}")
        ((fn, arg),) = value.items()
        if fn == "Ref":
            return self.ref(str(arg))
        if fn == "Fn::GetAtt":
            return self.get_att(str(arg[0]), str(arg[1]))
        if fn == "Fn::Join":
            separator, parts = arg
            return str(separator).join(self.resolve(part) for part in parts)
        if fn == "Fn::Sub" and isinstance(arg, str):
            return _SUB_VAR.sub(lambda m: self._sub_var(m.group(1)), arg)
        raise SnapshotError(f"unsupported intrinsic {fn}")

    def _sub_var(self, name: str) -> str:
        if "." in name:
            logical_id, attribute = name.split(".", 1)
            return self.get_att(logical_id, attribute)
        return self.ref(name)


def _functions(resources: Mapping[str, Any]) -> dict[str, str]:
    """principal -> logical id of its function (``lambdas.<principal>.handler``)."""
    found: dict[str, str] = {}
    for logical_id, resource in resources.items():
        if resource["Type"] != "AWS::Lambda::Function":
            continue
        match = _HANDLER.match(str(resource.get("Properties", {}).get("Handler", "")))
        if match:
            found[match.group(1)] = logical_id
    return found


def principal_roles(template: Mapping[str, Any]) -> dict[str, str]:
    """principal -> logical id of its role: each handler's function role, the node role (the
    launch template's instance profile), the state machine's role."""
    resources = template["Resources"]
    roles = {
        principal: str(resources[fid]["Properties"]["Role"]["Fn::GetAtt"][0])
        for principal, fid in _functions(resources).items()
    }
    for resource in resources.values():
        props = resource.get("Properties", {})
        if resource["Type"] == "AWS::EC2::LaunchTemplate":
            profile_id = _ref_id(props["LaunchTemplateData"]["IamInstanceProfile"]["Arn"])
            assert profile_id is not None
            roles[NODE] = str(resources[profile_id]["Properties"]["Roles"][0]["Ref"])
        if resource["Type"] == "AWS::StepFunctions::StateMachine":
            role_id = _ref_id(props["RoleArn"])
            assert role_id is not None
            roles[STATE_MACHINE] = role_id
    return roles


def _listed(value: Any) -> list[Any]:
    return list(value) if isinstance(value, list) else [value]


def _statement(resolver: _Resolver, raw: Mapping[str, Any], label: str) -> dict[str, Any]:
    if "NotAction" in raw or "NotResource" in raw or "Principal" in raw:
        raise SnapshotError(f"{label}: NotAction/NotResource/Principal are not evaluated locally")
    out: dict[str, Any] = {
        "Sid": str(raw.get("Sid") or label),
        "Effect": str(raw["Effect"]),
        "Action": sorted(str(a) for a in _listed(raw["Action"])),
        "Resource": [
            _ASSET.sub("${cdk_assets_bucket}/${node_package_key}", resolver.resolve(r))
            for r in _listed(raw["Resource"])
        ],
    }
    if "Condition" in raw:
        out["Condition"] = {
            op: {key: [resolver.resolve(v) for v in _listed(vals)] for key, vals in block.items()}
            for op, block in raw["Condition"].items()
        }
    return out


def snapshot(template: Mapping[str, Any]) -> dict[str, Any]:
    """The snapshot document for ``template`` (deterministic: sorted, no timestamps)."""
    roles = principal_roles(template)
    resolver = _Resolver(template, roles)
    resources = template["Resources"]
    principals: dict[str, Any] = {}
    for principal, role_id in sorted(roles.items()):
        role = resources[role_id].get("Properties", {})
        if role.get("ManagedPolicyArns") or role.get("Policies"):
            raise SnapshotError(f"{role_id}: managed or inline role policies are not snapshotted")
        statements: list[dict[str, Any]] = []
        for policy_id, policy in sorted(resources.items()):
            if policy["Type"] != "AWS::IAM::Policy":
                continue
            if {"Ref": role_id} not in policy["Properties"].get("Roles", []):
                continue
            raw_statements = policy["Properties"]["PolicyDocument"]["Statement"]
            for index, raw in enumerate(raw_statements):
                statements.append(_statement(resolver, raw, f"{policy_id}[{index}]"))
        principals[principal] = {"role": role_id, "statements": statements}
    return {
        "generator": "python -m lighthpc_infra.policy_snapshot (do not edit by hand)",
        "principals": principals,
    }


def render(document: Mapping[str, Any]) -> str:
    return json.dumps(document, indent=1, sort_keys=True) + "\n"


def main(argv: list[str] | None = None) -> int:
    """Synthesize the default stack offline and write the snapshot (path: argv[0])."""
    from lighthpc_infra.synthesis import offline_context, synthesize

    args = sys.argv[1:] if argv is None else argv
    target = Path(args[0]) if args else SNAPSHOT_PATH
    result = synthesize(offline_context())
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(render(snapshot(result.template)), encoding="utf-8")
    sys.stdout.write(f"wrote {target}\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
