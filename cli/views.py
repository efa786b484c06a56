"""What the console shows, rendered for a terminal: mission summary, the execution's states
(status, duration, retries), the Map's per-unit outcomes, and the state graph.

Pure functions over data already fetched, so the CLI, the local mode and tests share them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from rich.table import Table
from rich.tree import Tree

from workflow.budget import stopped_by_budget
from workflow.errors import MissionOverBudget
from workflow.records import MissionRecord, UnitRecord
from workflow.states import MissionStatus

_STYLE = {
    "Succeeded": "green",
    "Failed": "red",
    "Caught": "yellow",
    "Running": "cyan",
    "Not run": "dim",
}
_MISSION_COLOUR: Mapping[str, str] = {
    MissionStatus.SUCCEEDED: "green",
    MissionStatus.PARTIAL: "yellow",
}


@dataclass
class StateRun:
    name: str
    status: str = "Running"
    entered: datetime | None = None
    exited: datetime | None = None
    attempts: int = 0

    @property
    def retries(self) -> int:
        return max(self.attempts - 1, 0)

    @property
    def seconds(self) -> float | None:
        if self.entered is None or self.exited is None:
            return None
        return (self.exited - self.entered).total_seconds()


def state_runs(events: Iterable[Mapping[str, Any]]) -> dict[str, StateRun]:
    """Fold an execution history into one row per state, in the order states were entered."""
    runs: dict[str, StateRun] = {}
    current: StateRun | None = None
    for ev in events:
        kind = str(ev["type"])
        when = ev.get("timestamp")
        if kind.endswith("StateEntered"):
            name = ev["stateEnteredEventDetails"]["name"]
            current = runs.setdefault(name, StateRun(name))
            current.entered = current.entered or when
            current.status = "Failed" if kind == "FailStateEntered" else "Running"
        elif kind.endswith("StateExited") and current is not None:
            current.exited = when
            if current.status == "Running":
                current.status = "Succeeded"
        elif current is not None:
            _task_event(current, kind, when)
    return runs


def _task_event(run: StateRun, kind: str, when: Any) -> None:
    if kind in {"TaskScheduled", "MapRunStarted"}:
        run.attempts += 1
    elif kind in {"TaskFailed", "TaskTimedOut", "MapRunFailed"}:
        run.status = "Caught"
        run.exited = when
    elif kind in {"TaskSucceeded", "MapRunSucceeded"}:
        run.status = "Running"


def execution_table(runs: Mapping[str, StateRun], order: Sequence[str]) -> Table:
    table = Table(title="Execution (as in the Step Functions console)", title_justify="left")
    for col in ("State", "Status", "Duration", "Retries"):
        table.add_column(col, justify="right" if col in {"Duration", "Retries"} else "left")
    for name in order:
        run = runs.get(name)
        if run is None:
            continue
        secs = run.seconds
        table.add_row(
            name,
            f"[{_STYLE.get(run.status, '')}]{run.status}[/]",
            "" if secs is None else f"{secs:.2f} s",
            str(run.retries) if run.attempts else "",
        )
    return table


def units_table(units: Sequence[UnitRecord], shard_counts: Mapping[str, tuple[int, int]]) -> Table:
    """The Map's per-unit outcomes: status, attempts, capacity of the last node, shards done."""
    table = Table(title="RunWorkUnits: one child execution per work unit", title_justify="left")
    for col in ("Unit", "Status", "Attempts", "Interrupted", "Last capacity", "Shards done"):
        table.add_column(col)
    for unit in units:
        done, total = shard_counts.get(unit.unit_id, (0, 0))
        table.add_row(
            unit.unit_id,
            unit.status.value,
            str(unit.attempt),
            ", ".join(str(a) for a in unit.interrupted_attempts) or "-",
            unit.capacity or "-",
            f"{done}/{total}",
        )
    return table


def summary_table(mission: MissionRecord, wall_seconds: float | None = None) -> Table:
    table = Table(title=f"Mission {mission.mission_id}", title_justify="left", show_header=False)
    table.add_column("what", style="bold")
    table.add_column("value", overflow="fold")
    status = mission.status.value
    colour = _MISSION_COLOUR.get(status, "red")
    rows = [
        ("Status", f"[{colour}]{status}[/]"),
        (
            "Shards",
            f"{mission.shards_done}/{mission.shards} done, {mission.shards_failed} failed",
        ),
        ("Work units (nodes)", str(mission.units)),
        ("Retries / relaunches", str(mission.retries or 0)),
        ("Spot interruptions", str(mission.interruptions or 0)),
        ("Result", mission.result or "-"),
        ("Modelled AWS cost", f"${mission.cost or 0.0:.6f}" + _cap_text(mission)),
    ]
    if stopped_by_budget(mission):
        rows.append(("Stopped by", "its budget (maxCostUsd): launches refused, shards not run"))
    if wall_seconds is not None:
        rows.append(("Wall time", f"{wall_seconds:.1f} s"))
    invalid = mission.invalid_sample_count
    if invalid:
        lines = ", ".join(str(n) for n in mission.invalid_sample_lines[:20])
        rows.append(("Invalid sample lines", f"{invalid} (lines {lines})"))
    for what, value in rows:
        table.add_row(what, value)
    return table


def _cap_text(mission: MissionRecord) -> str:
    cap = mission.mission_params().max_cost_usd
    return "" if cap is None else f" (maxCostUsd ${cap:g})"


FAILURE_TAIL_LINES = 3  # the last lines of the first failed shard's error (its stderr tail)
FAILURE_LINE_CHARS = 600


def failure_line(mission: MissionRecord, desc: Mapping[str, Any]) -> tuple[str, str]:
    """A failed mission as one ``(error name, message)``: how many shards failed, the first
    one's id and the last lines of its error (a command's stderr tail), else the execution's
    own cause. One line, so it reads as the CLI's other named errors do."""
    error = str(desc.get("error") or "Mission.Failed")
    if stopped_by_budget(mission):
        error = MissionOverBudget.error_name
    failed = mission.failed_shards or ()
    if failed:
        first = failed[0]
        lines = [ln.strip() for ln in first.error.splitlines() if ln.strip()]
        tail = " | ".join(lines[-FAILURE_TAIL_LINES:]) or "no error text"
        count = max(mission.shards_failed, len(failed))
        message = f"{count} shard(s) failed; first {first.shard_id}: {tail}"
    else:
        cause = " ".join(str(desc.get("cause") or "").split())
        message = cause or f"mission ended {mission.status.value}"
    if len(message) > FAILURE_LINE_CHARS:
        message = message[: FAILURE_LINE_CHARS - 1] + "…"
    return error, message


def state_graph(definition: Mapping[str, Any], runs: Mapping[str, StateRun]) -> Tree:
    """The definition as a tree in StartAt/Next order, each state with its status."""
    tree = Tree("[bold]State machine[/]")
    _graph(definition, runs, tree)
    return tree


def _graph(machine: Mapping[str, Any], runs: Mapping[str, StateRun], parent: Tree) -> None:
    for name, state in machine["States"].items():
        status = runs[name].status if name in runs else "Not run"
        label = f"{name} [dim]({state['Type']})[/] [{_STYLE.get(status, '')}]{status}[/]"
        branch = parent.add(label)
        exits = _exits(state)
        if exits:
            branch.add("[dim]→ " + ", ".join(exits) + "[/]")
        nested = state.get("ItemProcessor") or state.get("Iterator")
        if nested:
            _graph(nested, runs, branch)


def _exits(state: Mapping[str, Any]) -> list[str]:
    out = [c["Next"] for c in state.get("Choices", []) if "Next" in c]
    out += [state[k] for k in ("Next", "Default") if k in state]
    out += [f"{c['Next']} (on {'/'.join(c['ErrorEquals'])})" for c in state.get("Catch", [])]
    return out


def dot_source(definition: Mapping[str, Any], runs: Mapping[str, StateRun]) -> str:
    """Graphviz source of the state graph, coloured by status."""
    colours = {
        "Succeeded": "palegreen",
        "Failed": "salmon",
        "Caught": "khaki",
        "Running": "lightblue",
    }
    lines = ["digraph mission {", '  rankdir=TB; node [shape=box, style="rounded,filled"];']

    def walk(machine: Mapping[str, Any]) -> None:
        for name, state in machine["States"].items():
            status = runs[name].status if name in runs else "Not run"
            fill = colours.get(status, "white")
            lines.append(f'  "{name}" [label="{name}\\n{status}", fillcolor="{fill}"];')
            for target in _exits(state):
                lines.append(f'  "{name}" -> "{target.split(" (on ")[0]}";')
            nested = state.get("ItemProcessor") or state.get("Iterator")
            if nested:
                lines.append(f'  "{name}" -> "{nested["StartAt"]}" [style=dashed];')
                walk(nested)

    walk(definition)
    lines.append("}")
    return "\n".join(lines) + "\n"
