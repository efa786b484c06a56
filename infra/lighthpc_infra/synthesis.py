"""In-process synthesis for tests and ``synth_report.py``: no AWS account, no bundling.

``aws:cdk:bundling-stacks = []`` tells CDK to bundle no stack: the assets keep their source
path and a placeholder hash, pip never runs, and synth takes seconds, not minutes. A real
``cdk synth``/``cdk deploy`` leaves the context unset, so every asset is bundled.
"""

from __future__ import annotations

import json
import re
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import aws_cdk as cdk

from lighthpc_infra import build_stack
from lighthpc_infra.stack import PROJECT_ROOT

CDK_JSON: Final = PROJECT_ROOT / "infra" / "cdk.json"
SKIP_BUNDLING: Final[dict[str, list[str]]] = {"aws:cdk:bundling-stacks": []}
NAG_PREFIX: Final = "AwsSolutions-"


class NagFindings(RuntimeError):
    """Synthesis failed on unsuppressed cdk-nag errors (one line per finding)."""


def cdk_json_context() -> dict[str, Any]:
    return dict(json.loads(CDK_JSON.read_text(encoding="utf-8"))["context"])


def offline_context(**overrides: Any) -> dict[str, Any]:
    """cdk.json's context, bundling off, then ``overrides``."""
    return {**cdk_json_context(), **SKIP_BUNDLING, **overrides}


@dataclass
class Synthesized:
    stack_name: str
    template: dict[str, Any]
    seconds: float
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    outdir: Path | None = None

    @property
    def resource_count(self) -> int:
        return len(self.template.get("Resources", {}))

    def resources(self, type_name: str) -> dict[str, dict[str, Any]]:
        return {
            logical_id: resource
            for logical_id, resource in self.template["Resources"].items()
            if resource["Type"] == type_name
        }


def synthesize(
    context: Mapping[str, Any],
    *,
    env: cdk.Environment | None = None,
    outdir: Path | None = None,
) -> Synthesized:
    """Build the app with ``context`` and synthesize it; raise ``NagFindings`` on nag errors."""
    out = outdir or Path(tempfile.mkdtemp(prefix="lighthpc-cdk-"))
    started = time.monotonic()
    app = cdk.App(context=dict(context), outdir=str(out))
    stack = build_stack(app, env=env)
    try:
        assembly = app.synth()
    except RuntimeError as exc:
        if "ValidationFailed" not in str(exc):
            raise
        report = out / "validation-report.json"
        found = _violations(report) if report.exists() else _violations_in(str(exc))
        raise NagFindings("\n".join(found) or str(exc)) from None
    seconds = time.monotonic() - started
    artifact = assembly.get_stack_artifact(stack.artifact_id)
    messages = [(m.level.value, str(m.entry.data)) for m in artifact.messages]
    return Synthesized(
        stack_name=stack.stack_name,
        template=artifact.template,
        seconds=seconds,
        errors=[d for level, d in messages if level == "error"],
        warnings=[d for level, d in messages if level == "warning"],
        outdir=out,
    )


def _violations(report: Path) -> list[str]:
    data = json.loads(report.read_text(encoding="utf-8"))
    lines: list[str] = []
    for plugin in data.get("pluginReports", []):
        for violation in plugin.get("violations", []):
            finding = violation["description"].split(": ", 1)[0]
            for construct in violation.get("violatingConstructs", []):
                lines.append(f"{finding} at {construct['constructPath']}")
    return lines


_MESSAGE_FINDING = re.compile(r"ERROR ([^\n]+?): [^\n]*\n\s+(\S+) \(")


def _violations_in(message: str) -> list[str]:
    """The same lines from the exception text (when no report file was written)."""
    return [f"{finding} at {path}" for finding, path in _MESSAGE_FINDING.findall(message)]


def nag_suppressions(template: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Every cdk-nag suppression in the template, with the logical id it is attached to."""
    found: list[dict[str, Any]] = []
    for logical_id, resource in template.get("Resources", {}).items():
        rules = resource.get("Metadata", {}).get("cdk_nag", {}).get("rules_to_suppress", [])
        found.extend({"resource": logical_id, **rule} for rule in rules)
    return found
