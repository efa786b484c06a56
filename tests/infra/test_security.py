"""cdk-nag, IAM wildcards and cfn-lint on the synthesized template."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from cfnlint.api import ManualArgs, lint

# The complete set of actions allowed on Resource "*", and why none can be scoped.
EC2_DESCRIBE = {"ec2:DescribeInstances", "ec2:DescribeTags"}  # no resource-level permissions
# Added by CDK to the state machine role for X-Ray tracing and CloudWatch Logs delivery
# (required: tracing and logging level ALL); these actions take no resource ARN either.
STATE_MACHINE_TELEMETRY = {
    "xray:PutTraceSegments",
    "xray:PutTelemetryRecords",
    "xray:GetSamplingRules",
    "xray:GetSamplingTargets",
    "logs:CreateLogDelivery",
    "logs:GetLogDelivery",
    "logs:UpdateLogDelivery",
    "logs:DeleteLogDelivery",
    "logs:ListLogDeliveries",
    "logs:PutResourcePolicy",
    "logs:DescribeResourcePolicies",
    "logs:DescribeLogGroups",
}
# cfn-lint warnings accepted, with the reason (also in docs/deploy.md):
# W3005: CDK adds an explicit DependsOn on the role (and its DefaultPolicy) to every Lambda
# function and the state machine, so the policy exists before the first invocation; the
# GetAtt on the role already orders the role itself. Redundant, harmless, not ours to drop.
ACCEPTED_LINT_WARNINGS = {"W3005"}


def statements(template: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """(owner logical id, statement) for every identity policy in the template."""
    for logical_id, resource in template["Resources"].items():
        props = resource.get("Properties", {})
        if resource["Type"] in {"AWS::IAM::Policy", "AWS::IAM::ManagedPolicy"}:
            for s in props["PolicyDocument"]["Statement"]:
                yield logical_id, s
        if resource["Type"] == "AWS::IAM::Role":
            for policy in props.get("Policies", []):
                for s in policy["PolicyDocument"]["Statement"]:
                    yield logical_id, s


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def roles_of(template: dict[str, Any], policy_id: str) -> list[str]:
    resource = template["Resources"][policy_id]
    if resource["Type"] == "AWS::IAM::Role":
        return [policy_id]
    return [r["Ref"] for r in resource["Properties"].get("Roles", [])]


def handler_of_role(template: dict[str, Any], role_id: str) -> str | None:
    for resource in template["Resources"].values():
        props = resource.get("Properties", {})
        if (
            resource["Type"] == "AWS::Lambda::Function"
            and props.get("Role", {}).get("Fn::GetAtt", [None])[0] == role_id
        ):
            return str(props.get("Handler"))
    return None


# ---- cdk-nag ---------------------------------------------------------------------------


def test_cdk_nag_reports_no_unsuppressed_error(synth: Any, variant: Any) -> None:
    # An unsuppressed error fails synthesis (NagFindings lists them); warnings must be 0 too.
    for result in (synth, variant):
        nag = [m for m in result.errors + result.warnings if m.startswith("AwsSolutions-")]
        assert nag == []


def test_every_suppression_is_specific_and_reasoned(synth: Any) -> None:
    from lighthpc_infra.synthesis import nag_suppressions

    assert "Metadata" not in synth.template or "cdk_nag" not in synth.template["Metadata"]
    found = nag_suppressions(synth.template)
    assert found, "expected the documented suppressions"
    for s in found:
        assert len(s["reason"]) >= 60, s
        if s["id"] == "AwsSolutions-IAM5":
            assert len(s["applies_to"]) == 1, s  # one exact wildcard per suppression
            (finding,) = s["applies_to"]
            assert isinstance(finding, str) and finding.startswith("Resource::"), s
            assert synth.template["Resources"][s["resource"]]["Type"] == "AWS::IAM::Policy"
    ids = sorted({s["id"] for s in found})
    assert ids == [
        "AwsSolutions-APIG3",
        "AwsSolutions-COG4",
        "AwsSolutions-IAM4",
        "AwsSolutions-IAM5",
        "AwsSolutions-L1",
        "AwsSolutions-SQS3",  # the dead-letter queue is one (not seen through a redrive)
    ]
    assert len(found) == 39  # + the node role's two write prefixes and its log streams


# ---- IAM -------------------------------------------------------------------------------


@pytest.mark.parametrize("which", ["synth", "variant"])
def test_no_action_wildcard_and_resource_star_only_where_unscopable(
    which: str, request: pytest.FixtureRequest
) -> None:
    template = request.getfixturevalue(which).template
    star_actions: dict[str, set[str]] = {}
    for owner, s in statements(template):
        actions = as_list(s["Action"])
        assert "*" not in actions and not any(a.endswith(":*") for a in actions), (owner, s)
        if "*" in as_list(s.get("Resource")):
            assert s["Effect"] == "Allow"
            for role in roles_of(template, owner):
                star_actions.setdefault(role, set()).update(actions)
    allowed = EC2_DESCRIBE | STATE_MACHINE_TELEMETRY
    assert set().union(*star_actions.values()) == allowed
    for role, unscoped in star_actions.items():
        handler = handler_of_role(template, role)
        if unscoped & STATE_MACHINE_TELEMETRY:
            assert unscoped == STATE_MACHINE_TELEMETRY
            assert template["Resources"][role]["Properties"]["AssumeRolePolicyDocument"][
                "Statement"
            ][0]["Principal"] == {"Service": "states.amazonaws.com"}
        elif handler is None:  # the node instance role
            assert unscoped == {"ec2:DescribeTags"}
        else:
            assert handler in {"lambdas.light_scheduler.handler", "lambdas.node_watch.handler"}
            assert unscoped == EC2_DESCRIBE


def test_ec2_mutations_are_conditioned_on_our_tag_or_template(synth: Any) -> None:
    seen: set[str] = set()
    for _, s in statements(synth.template):
        actions = set(as_list(s["Action"]))
        if "ec2:TerminateInstances" in actions:
            assert s["Condition"] == {"Null": {"ec2:ResourceTag/lighthpc:missionId": "false"}}
            seen.add("terminate")
        if "ec2:CreateTags" in actions:
            assert s["Condition"] == {
                "StringEquals": {"ec2:CreateAction": ["CreateFleet", "RunInstances"]}
            }
            seen.add("tag")
        if actions == {"ec2:CreateFleet", "ec2:RunInstances"} and s.get("Sid") == (
            "LaunchFromOurTemplate"
        ):
            assert any(":launch-template/" in json.dumps(r) for r in as_list(s["Resource"]))
            seen.add("template")
        if "iam:PassRole" in actions:
            assert s["Condition"] == {"StringEquals": {"iam:PassedToService": "ec2.amazonaws.com"}}
            seen.add("pass")
    assert seen == {"terminate", "tag", "template", "pass"}


def test_task_token_calls_are_scoped_to_the_state_machine(synth: Any) -> None:
    scoped = 0
    for _, s in statements(synth.template):
        if any(a.startswith("states:SendTask") for a in as_list(s["Action"])):
            text = json.dumps(s["Resource"])
            assert ":stateMachine:lighthpc-mission" in text and '"*"' not in text
            scoped += 1
    assert scoped == 3  # lightScheduler, node_watch, the node role


# ---- cfn-lint --------------------------------------------------------------------------


@pytest.mark.parametrize("which", ["synth", "variant"])
def test_cfn_lint_finds_no_error(which: str, request: pytest.FixtureRequest) -> None:
    template = request.getfixturevalue(which).template
    matches = lint(json.dumps(template), config=ManualArgs(regions=["us-east-1", "eu-west-1"]))
    errors = [f"{m.rule.id} {m.message}" for m in matches if m.rule.id.startswith("E")]
    assert errors == []
    assert {m.rule.id for m in matches} <= ACCEPTED_LINT_WARNINGS


def test_cdk_nag_bites_when_the_suppressions_are_missing(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    import lighthpc_infra
    from lighthpc_infra.synthesis import NagFindings, offline_context, synthesize

    monkeypatch.setattr(lighthpc_infra, "add_suppressions", lambda stack: None)
    with pytest.raises(NagFindings) as failed:
        synthesize(offline_context(), outdir=tmp_path)
    findings = str(failed.value).splitlines()
    assert "AwsSolutions-L1 at LightHpcSfn/Functions/LightScheduler/Resource" in findings
    assert any(
        f.startswith("AwsSolutions-IAM5[Resource::*] at LightHpcSfn/Compute/NodeRole/")
        for f in findings
    )
