"""AWS's own ASL tooling on the real definition, before any deploy.

``tools/asl-lint/validate.mjs`` runs amazon-states-language-service (the language service
behind the AWS Toolkit) and asl-validator on each file and prints each tool's findings.
``make test`` installs them first (``npm ci --prefix tools/asl-lint``, once per lockfile).
Without node or those packages these tests fail, never skip: the gate must not lose them.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from workflow.asl import placeholder_values, read_definition, substitute

ASL_LINT = Path(__file__).resolve().parents[2] / "tools" / "asl-lint"
VALIDATE = ASL_LINT / "validate.mjs"
LANGUAGE_SERVICE, ASL_VALIDATOR = "amazon-states-language-service", "asl-validator"
# Made-up, well-formed ARNs in the places the stack substitutes real ones.
VALUES = placeholder_values(
    {
        "light_scheduler": "arn:aws:lambda:us-east-1:123456789012:function:lighthpc-scheduler",
        "rslt_proc": "arn:aws:lambda:us-east-1:123456789012:function:lighthpc-rsltproc",
    },
    "arn:aws:sns:us-east-1:123456789012:lighthpc-missions",
)

# file -> tool -> findings
Reports = dict[str, dict[str, list[dict[str, Any]]]]


@pytest.fixture(scope="module")
def node() -> str:
    found = shutil.which("node")
    if found is None:
        pytest.fail("node is not on PATH: the ASL static validation needs Node.js 20")
    for package in (LANGUAGE_SERVICE, ASL_VALIDATOR):
        if not (ASL_LINT / "node_modules" / package).is_dir():
            pytest.fail(
                f"{package} is not installed in {ASL_LINT / 'node_modules'}: run "
                "`make tools/asl-lint/node_modules/.installed` (`make check` does it)"
            )
    return found


def substituted() -> dict[str, Any]:
    definition: dict[str, Any] = json.loads(substitute(read_definition(), VALUES))
    return definition


def validate(node: str, definitions: dict[Path, dict[str, Any]]) -> tuple[int, Reports]:
    """One node process for all files: loading the tools costs more than validating."""
    for path, definition in definitions.items():
        path.write_text(json.dumps(definition, indent=2), encoding="utf-8")
    done = subprocess.run(
        [node, str(VALIDATE), *map(str, definitions)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if done.returncode not in (0, 1):
        pytest.fail(f"validate.mjs crashed (exit {done.returncode}):\n{done.stderr}")
    reports: Reports = {}
    for entry in json.loads(done.stdout):
        reports.setdefault(entry["file"], {})[entry["tool"]] = entry["findings"]
    return done.returncode, reports


def test_aws_tooling_finds_nothing_wrong_in_the_real_definition(node: str, tmp_path: Path) -> None:
    path = tmp_path / "statemachine.json"
    status, reports = validate(node, {path: substituted()})
    assert reports == {str(path): {LANGUAGE_SERVICE: [], ASL_VALIDATOR: []}}
    assert status == 0


def _aggregate(definition: dict[str, Any]) -> dict[str, Any]:
    state: dict[str, Any] = definition["States"]["AggregateResults"]
    return state


def _launch(definition: dict[str, Any]) -> dict[str, Any]:
    state: dict[str, Any] = definition["States"]["RunWorkUnits"]["ItemProcessor"]["States"][
        "LaunchNode"
    ]
    return state


@dataclass(frozen=True)
class Breakage:
    """One defect put into a copy of the definition, and how each tool must name it."""

    break_it: Callable[[dict[str, Any]], None]
    # The language service points at the offending JSON text.
    service_points_at: str
    # asl-validator gives an error code, and names the target or the state's JSON pointer.
    validator_code: str
    validator_names: str


BREAKAGES = {
    "dangling_next": Breakage(
        lambda d: _aggregate(d).update(Next="NoSuchState"),
        '"NoSuchState"',
        "MISSING_TRANSITION_TARGET",
        "NoSuchState",
    ),
    "dangling_catch_next_inside_the_map": Breakage(
        lambda d: _launch(d)["Catch"][0].update(Next="Nowhere"),
        '"Nowhere"',
        "MISSING_TRANSITION_TARGET",
        "Nowhere",
    ),
    "unknown_field": Breakage(
        lambda d: _aggregate(d).update(TimeoutSecs=30),
        '"TimeoutSecs"',
        "SCHEMA_VALIDATION_FAILED",
        "/States/AggregateResults",
    ),
    "unknown_field_inside_the_map": Breakage(
        lambda d: _launch(d).update(HeartbeatSecs=30),
        '"HeartbeatSecs"',
        "SCHEMA_VALIDATION_FAILED",
        "/States/RunWorkUnits/ItemProcessor/States/LaunchNode",
    ),
}


@pytest.fixture(scope="module")
def broken_reports(node: str, tmp_path_factory: pytest.TempPathFactory) -> Reports:
    """Every broken copy validated in one run, keyed by the breakage's name."""
    folder = tmp_path_factory.mktemp("broken")
    copies: dict[Path, dict[str, Any]] = {}
    for name, breakage in BREAKAGES.items():
        definition = substituted()
        breakage.break_it(definition)
        copies[folder / f"{name}.json"] = definition
    status, reports = validate(node, copies)
    assert status == 1
    return {Path(file).stem: tools for file, tools in reports.items()}


@pytest.mark.parametrize("name", BREAKAGES)
def test_each_tool_reports_a_broken_copy(broken_reports: Reports, name: str) -> None:
    breakage, findings = BREAKAGES[name], broken_reports[name]
    assert any(f["text"] == breakage.service_points_at for f in findings[LANGUAGE_SERVICE]), (
        findings[LANGUAGE_SERVICE]
    )
    assert any(
        f["code"] == breakage.validator_code
        and breakage.validator_names in f"{f['message']} {f['where']}"
        for f in findings[ASL_VALIDATOR]
    ), findings[ASL_VALIDATOR]
