"""The IAM snapshot the embedded cloud enforces is the synthesized template's, not a copy
that drifted: regenerate with ``python -m lighthpc_infra.policy_snapshot``."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

PRINCIPALS = {"light_scheduler", "rslt_proc", "mission_cfg", "node_watch", "node", "state_machine"}


def test_snapshot_in_the_repository_matches_the_synthesized_template(synth: Any) -> None:
    from lighthpc_infra.policy_snapshot import SNAPSHOT_PATH, render, snapshot

    expected = render(snapshot(synth.template))
    committed = SNAPSHOT_PATH.read_text(encoding="utf-8")
    assert committed == expected, (
        "localcloud/iam/policies.json drifted from the template: run "
        "`PYTHONPATH=.:infra python -m lighthpc_infra.policy_snapshot`"
    )


def test_snapshot_has_every_runtime_principal_and_no_unresolved_intrinsic(synth: Any) -> None:
    from lighthpc_infra.policy_snapshot import snapshot

    document = snapshot(synth.template)
    assert set(document["principals"]) == PRINCIPALS
    text = json.dumps(document)
    assert "Fn::" not in text and '"Ref"' not in text
    node = document["principals"]["node"]["statements"]
    assert any("states:SendTaskSuccess" in s["Action"] for s in node)


def test_a_removed_grant_in_the_template_shows_as_drift(synth: Any) -> None:
    from lighthpc_infra.policy_snapshot import SNAPSHOT_PATH, render, snapshot

    template = copy.deepcopy(synth.template)
    for resource in template["Resources"].values():
        if resource["Type"] == "AWS::IAM::Policy":
            for statement in resource["Properties"]["PolicyDocument"]["Statement"]:
                if statement.get("Sid") == "TaskTokens":
                    statement["Action"] = ["states:SendTaskFailure"]
    assert render(snapshot(template)) != SNAPSHOT_PATH.read_text(encoding="utf-8")


def test_a_statement_the_evaluator_cannot_represent_is_refused(synth: Any) -> None:
    from lighthpc_infra.policy_snapshot import SnapshotError, snapshot

    template = copy.deepcopy(synth.template)
    policy = next(r for r in template["Resources"].values() if r["Type"] == "AWS::IAM::Policy")
    policy["Properties"]["PolicyDocument"]["Statement"][0]["NotAction"] = "s3:*"
    with pytest.raises(SnapshotError, match="NotAction"):
        snapshot(template)
