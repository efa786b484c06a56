"""``lighthpc ls|cancel|logs|rerun|get``: the everyday mission verbs, against a deployed stack
or ``lighthpc local up`` (``--endpoint-url``), found as ``start``/``status`` find it.

With ``--json`` stdout always carries one JSON object, errors included
(``{"error", "message", "exitCode"}``); errors are one line on stderr.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import click
from rich.console import Console
from rich.table import Table

from cli.missions import (
    DEFAULT_LIST_LIMIT,
    MissionLogs,
    MissionRow,
    cancel_mission,
    get_result,
    list_missions,
    mission_logs,
    rerun_failed,
)
from cli.options import EXIT_FAILED, EXIT_USAGE, fail
from cli.remote import RemoteStack, connect
from cli.remote_commands import remote_options
from workflow.aws.services import Services
from workflow.errors import LightHpcError, MissionInvalidInput

__all__ = ["cancel", "get", "logs", "ls", "rerun"]

T = TypeVar("T")
json_option = click.option("--json", "as_json", is_flag=True, help="Print a JSON object.")


def _fail(exc: LightHpcError, as_json: bool) -> NoReturn:
    code = EXIT_USAGE if isinstance(exc, MissionInvalidInput) else EXIT_FAILED
    fail(exc.error_name, str(exc), code, as_json=as_json)


def _call(as_json: bool, action: Callable[[], T]) -> T:
    try:
        return action()
    except LightHpcError as exc:
        _fail(exc, as_json)


def _connect(
    stack_name: str, endpoint_url: str | None, region: str | None, as_json: bool
) -> tuple[RemoteStack, Services]:
    return _call(as_json, lambda: connect(stack_name, endpoint_url=endpoint_url, region=region))


def _emit(data: dict[str, Any]) -> None:
    click.echo(json.dumps(data, indent=2, sort_keys=True, default=str))


def _age(seconds: float) -> str:
    for unit, size in (("d", 86_400), ("h", 3_600), ("m", 60)):
        if seconds >= size:
            return f"{seconds / size:.0f}{unit}"
    return f"{seconds:.0f}s"


# ---- ls ---------------------------------------------------------------------------------


@click.command("ls")
@click.option("--limit", default=DEFAULT_LIST_LIMIT, show_default=True, type=int)
@remote_options
@json_option
def ls(
    *, limit: int, stack_name: str, endpoint_url: str | None, region: str | None, as_json: bool
) -> None:
    """Missions, newest first: status, shards done/failed, cost, age."""
    _, svc = _connect(stack_name, endpoint_url, region, as_json)
    rows = _call(as_json, lambda: list_missions(svc, limit))
    now = time.time()
    if as_json:
        _emit({"missions": [r.as_json(now) for r in rows], "limit": limit})
        return
    Console(width=max(Console().width, 120)).print(_missions_table(rows, now))


def _missions_table(rows: list[MissionRow], now: float) -> Table:
    table = Table(title="Missions (newest first)", title_justify="left")
    for name, justify in (
        ("Mission", "left"),  # never cropped: it is what the other verbs take
        ("Status", "left"),
        ("Done", "right"),
        ("Failed", "right"),
        ("Shards", "right"),
        ("Cost USD", "right"),
        ("Age", "right"),
        ("Sample", "left"),
    ):
        table.add_column(name, justify=justify, no_wrap=name == "Mission")  # type: ignore[arg-type]
    for r in rows:
        cost = "-" if r.cost is None else f"{r.cost:.6f}"
        sample = r.sample + (f" (rerun of {r.rerun_of})" if r.rerun_of else "")
        table.add_row(
            r.mission_id,
            r.status,
            str(r.done),
            str(r.failed),
            str(r.shards),
            cost,
            _age(r.age_seconds(now)),
            sample,
        )
    return table


# ---- cancel -----------------------------------------------------------------------------


@click.command("cancel")
@click.argument("mission_id", metavar="MISSION")
@click.option(
    "--timeout", default=120.0, show_default=True, type=float, help="Seconds to wait for it."
)
@remote_options
@json_option
def cancel(
    *,
    mission_id: str,
    timeout: float,
    stack_name: str,
    endpoint_url: str | None,
    region: str | None,
    as_json: bool,
) -> None:
    """Stop a running mission: its nodes are terminated, it ends CANCELLED, DONE shards kept.

    Exit status 1 when the mission had already finished (Mission.AlreadyFinished) or did not
    settle within --timeout.
    """
    if not timeout >= 0:
        _fail(MissionInvalidInput(f"--timeout must be >= 0, got {timeout:g}"), as_json)
    _, svc = _connect(stack_name, endpoint_url, region, as_json)
    outcome = _call(as_json, lambda: cancel_mission(svc, mission_id, timeout=timeout))
    if as_json:
        _emit(outcome.as_json())
    else:
        m = outcome.mission
        click.echo(f"mission {m.mission_id}: {m.status.value}")
        click.echo(f"  shards  : {m.shards_done} done (kept), {m.shards_failed} not done")
        click.echo(f"  nodes   : {len(outcome.instances_left)} left")
        click.echo(f"  rerun   : lighthpc rerun {m.mission_id} --failed")
    if not outcome.settled:
        fail(
            "Cancel.Timeout",
            f"stopped, but still settling after {timeout:.0f} s "
            f"({len(outcome.instances_left)} node(s) left)",
            EXIT_FAILED,
        )


# ---- logs -------------------------------------------------------------------------------


@click.command("logs")
@click.argument("mission_id", metavar="MISSION")
@click.option("--unit", help="Only this work unit's nodes (e.g. u0001).")
@remote_options
@json_option
def logs(
    *,
    mission_id: str,
    unit: str | None,
    stack_name: str,
    endpoint_url: str | None,
    region: str | None,
    as_json: bool,
) -> None:
    """Node and Lambda logs of a mission (local files; CloudWatch Logs on AWS)."""
    stack, svc = _connect(stack_name, endpoint_url, region, as_json)
    found = _call(as_json, lambda: mission_logs(stack, svc, mission_id, unit=unit))
    if as_json:
        _emit(found.as_json())
        return
    _print_logs(found)


def _print_logs(found: MissionLogs) -> None:
    click.echo(f"# mission {found.mission_id}: logs from {found.location}", err=True)
    for line in found.lines:
        click.echo(f"{line.source}  {line.text}")
    if found.truncated:
        click.echo(f"# truncated after {len(found.lines)} lines", err=True)


# ---- rerun ------------------------------------------------------------------------------


@click.command("rerun")
@click.argument("mission_id", metavar="MISSION")
@click.option("--failed", "failed_only", is_flag=True, help="Run only the failed shards again.")
@remote_options
@json_option
def rerun(
    *,
    mission_id: str,
    failed_only: bool,
    stack_name: str,
    endpoint_url: str | None,
    region: str | None,
    as_json: bool,
) -> None:
    """A new mission over the failed shards of MISSION (same pinned inputs and params); its
    result merges MISSION's DONE shards with its own."""
    if not failed_only:
        _fail(
            MissionInvalidInput("rerun needs --failed (only failed shards can be rerun)"), as_json
        )
    stack, svc = _connect(stack_name, endpoint_url, region, as_json)
    started = _call(as_json, lambda: rerun_failed(stack, svc, mission_id))
    if as_json:
        _emit(started.as_json())
        return
    click.echo(f"rerun of {mission_id}: {len(started.failed_shards)} failed shard(s)")
    click.echo(f"  execution : {started.started.execution_arn}")
    click.echo(f"  follow    : lighthpc status {started.started.execution_arn}")


# ---- get --------------------------------------------------------------------------------


@click.command("get")
@click.argument("mission_id", metavar="MISSION")
@click.argument("directory", required=False, default=".", type=click.Path(path_type=Path))
@remote_options
@json_option
def get(
    *,
    mission_id: str,
    directory: Path,
    stack_name: str,
    endpoint_url: str | None,
    region: str | None,
    as_json: bool,
) -> None:
    """Download a mission's result and summary to DIR/<missionId>/ (default: .)."""
    _, svc = _connect(stack_name, endpoint_url, region, as_json)
    fetched = _call(as_json, lambda: get_result(svc, mission_id, directory))
    if as_json:
        _emit(fetched.as_json())
        return
    click.echo(f"result  : {fetched.result}")
    click.echo(f"summary : {fetched.summary}")
