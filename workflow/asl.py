"""Load ``statemachine.asl.json``, substitute its ``${Placeholders}`` and check it.

The CDK (``definition_substitutions``) and the local mode substitute the same placeholders;
this loader refuses a definition that would only fail at run time: malformed JSON, a
``Next``/``Default``/``StartAt`` naming no state, a placeholder left unsupplied, or a
substitution that the definition never uses.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from importlib import resources
from pathlib import Path
from typing import Any

from workflow.errors import AslInvalid

PLACEHOLDER = re.compile(r"\$\{([A-Za-z][A-Za-z0-9_]*)\}")
DEFINITION_FILE = "statemachine.asl.json"


def placeholder_values(arns: Mapping[str, str], topic_arn: str) -> dict[str, str]:
    """The placeholder values of ``statemachine.asl.json``; the CDK stack and the local
    stack both call this, so they substitute exactly the same names."""
    return {
        "LightSchedulerFunctionArn": arns["light_scheduler"],
        "RsltProcFunctionArn": arns["rslt_proc"],
        "MissionTopicArn": topic_arn,
    }


def definition_path() -> Path:
    """The packaged definition (a link to the repository's top-level file in a checkout)."""
    return Path(str(resources.files("workflow").joinpath(DEFINITION_FILE)))


def read_definition(path: Path | None = None) -> str:
    return (path or definition_path()).read_text(encoding="utf-8")


def placeholders(text: str) -> set[str]:
    return set(PLACEHOLDER.findall(text))


def substitute(text: str, values: Mapping[str, str]) -> str:
    """Replace every ``${Name}``; refuse missing and unused names."""
    used = placeholders(text)
    missing = sorted(used - set(values))
    unused = sorted(set(values) - used)
    if missing:
        raise AslInvalid(f"no value for placeholder(s): {', '.join(missing)}")
    if unused:
        raise AslInvalid(f"substitution(s) not used by the definition: {', '.join(unused)}")
    return PLACEHOLDER.sub(lambda m: values[m.group(1)], text)


def load_definition(values: Mapping[str, str], path: Path | None = None) -> dict[str, Any]:
    """Read, substitute and validate; return the parsed definition."""
    text = substitute(read_definition(path), values)
    try:
        definition = json.loads(text)
    except json.JSONDecodeError as exc:
        raise AslInvalid(f"definition is not valid JSON: {exc}") from exc
    validate_structure(definition)
    return definition  # type: ignore[no-any-return]


def validate_structure(definition: Mapping[str, Any]) -> None:
    """Every ``StartAt``/``Next``/``Default`` (also in Choices, Catchers, nested Maps) resolves."""
    problems = list(_dangling(definition, "(root)"))
    if problems:
        raise AslInvalid("; ".join(problems))


def _dangling(machine: Mapping[str, Any], where: str) -> Iterator[str]:
    states = machine.get("States")
    if not isinstance(states, Mapping) or not states:
        yield f"{where}: no States"
        return
    names = set(states)
    if machine.get("StartAt") not in names:
        yield f"{where}: StartAt {machine.get('StartAt')!r} is not a state"
    for name, state in states.items():
        for target in _targets(state):
            if target not in names:
                yield f"{where}.{name}: transition to unknown state {target!r}"
        nested = state.get("ItemProcessor") or state.get("Iterator")
        if nested:
            yield from _dangling(nested, f"{where}.{name}")
        for i, branch in enumerate(state.get("Branches", [])):
            yield from _dangling(branch, f"{where}.{name}[{i}]")


def _targets(state: Mapping[str, Any]) -> Iterator[str]:
    for key in ("Next", "Default"):
        if key in state:
            yield state[key]
    for rule in state.get("Choices", []):
        if "Next" in rule:
            yield rule["Next"]
    for catcher in state.get("Catch", []):
        yield catcher["Next"]


def state_names(definition: Mapping[str, Any]) -> list[str]:
    """All state names, nested ones included (for rendering and tests)."""
    out: list[str] = []
    for name, state in definition["States"].items():
        out.append(name)
        nested = state.get("ItemProcessor") or state.get("Iterator")
        if nested:
            out.extend(state_names(nested))
    return out
