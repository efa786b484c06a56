"""``lighthpc start|status|config|cost``: the CLI against a deployed stack.

The stack is found by its CloudFormation outputs (``--stack``, default ``LightHpcSfn``) or
from the environment (``LIGHTHPC_STATE_MACHINE_ARN`` plus the ``LIGHTHPC_*`` settings).
``--endpoint-url`` (or ``AWS_ENDPOINT_URL``) points every call elsewhere, e.g. at
``lighthpc local up``. Exit codes: 0 success, 1 the mission or an AWS request failed,
2 bad usage or input. Errors are one line on stderr: ``lighthpc: <Error.Name>: <why>``.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import click
from rich.console import Console
from rich.table import Table

from cli.options import EXIT_FAILED, EXIT_OK, EXIT_USAGE
from cli.remote import (
    MissionCost,
    MissionView,
    RemoteStack,
    connect,
    mission_cost,
    mission_view,
    start_mission,
    wait_view,
)
from workflow import profiles
from workflow.aws.services import Services
from workflow.budget import spend_of
from workflow.errors import LightHpcError, MissionInvalidInput, ProfileInvalid
from workflow.progress import Pace, pace_of
from workflow.stack_outputs import DEFAULT_STACK_NAME, ENV_STACK_NAME

# Input errors (exit 2); every other LightHpcError is a failed request (exit 1).
_USAGE_ERRORS: tuple[type[LightHpcError], ...] = (MissionInvalidInput, ProfileInvalid)

F = TypeVar("F", bound=Callable[..., Any])

__all__ = ["config", "cost", "start", "status"]


def _fail(exc: LightHpcError) -> NoReturn:
    message = " ".join(str(exc).split())  # one line, whatever the cause said
    click.echo(f"lighthpc: {exc.error_name}: {message}", err=True)
    sys.exit(EXIT_USAGE if isinstance(exc, _USAGE_ERRORS) else EXIT_FAILED)


def _emit_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, sort_keys=True, default=str))


def remote_options(fn: F) -> F:
    """``--stack``, ``--endpoint-url`` and ``--region``, shared by every remote command."""
    fn = click.option(
        "--region",
        envvar=["AWS_REGION", "AWS_DEFAULT_REGION"],
        help="AWS region (default: the SDK's configuration).",
    )(fn)
    fn = click.option(
        "--endpoint-url",
        envvar="AWS_ENDPOINT_URL",
        help="Send every AWS call here (e.g. the `lighthpc local up` endpoint).",
    )(fn)
    return click.option(
        "--stack",
        "stack_name",
        default=DEFAULT_STACK_NAME,
        envvar=ENV_STACK_NAME,
        show_default=True,
        help="CloudFormation stack whose outputs name the resources.",
    )(fn)


def _connect(
    stack_name: str, endpoint_url: str | None, region: str | None
) -> tuple[RemoteStack, Services]:
    try:
        return connect(stack_name, endpoint_url=endpoint_url, region=region)
    except LightHpcError as exc:
        _fail(exc)


# ---- start ------------------------------------------------------------------------------


@click.command("start")
@click.argument("uri", metavar="s3://BUCKET/KEY")
@click.option("--param", "params", multiple=True, metavar="K=V", help="Mission param (repeat).")
@click.option("--profile", help="MissionCfg profile to merge the params over.")
@click.option("--name", "execution_name", help="Execution name (default: manual-<time>-<id>).")
@remote_options
@click.option("--json", "as_json", is_flag=True, help="Print the started execution as JSON.")
def start(
    *,
    uri: str,
    params: tuple[str, ...],
    profile: str | None,
    execution_name: str | None,
    stack_name: str,
    endpoint_url: str | None,
    region: str | None,
    as_json: bool,
) -> None:
    """Start a mission on an uploaded sample (manual StartExecution with custom params).

    The params are validated here, merged over the profile exactly as PlanMission will merge
    them, so a typo fails at once instead of in the execution.
    """
    from cli.options import parse_param_options

    try:
        parsed = parse_param_options(params)
    except LightHpcError as exc:
        _fail(exc)
    stack, svc = _connect(stack_name, endpoint_url, region)
    try:
        started = start_mission(stack, svc, uri, parsed, profile=profile, name=execution_name)
    except LightHpcError as exc:
        _fail(exc)
    if as_json:
        _emit_json(started.as_json())
        return
    click.echo(f"started {started.name}")
    click.echo(f"  execution : {started.execution_arn}")
    click.echo(f"  sample    : {uri}")
    if parsed:
        click.echo(f"  params    : {json.dumps(parsed, sort_keys=True)}")
    click.echo(f"  follow    : lighthpc status {started.execution_arn}")


# ---- status -----------------------------------------------------------------------------


@click.command("status")
@click.argument("ref", metavar="MISSION|EXECUTION_ARN")
@click.option("--wait", is_flag=True, help="Poll until the execution ends.")
@click.option("--timeout", default=3600.0, show_default=True, type=float, help="Seconds to --wait.")
@click.option("--interval", default=2.0, show_default=True, type=float, help="Poll period.")
@remote_options
@click.option("--json", "as_json", is_flag=True, help="Print the status as JSON.")
def status(
    *,
    ref: str,
    wait: bool,
    timeout: float,
    interval: float,
    stack_name: str,
    endpoint_url: str | None,
    region: str | None,
    as_json: bool,
) -> None:
    """Show a mission's progress (from tblTrans) and its execution, as the local run does.

    Exit status 1 when the execution or the mission failed (also on --wait timeout).
    """
    if not interval > 0 or not timeout >= 0:
        _fail(
            MissionInvalidInput(
                f"--interval must be > 0 and --timeout >= 0 (got {interval:g}, {timeout:g})"
            )
        )
    _, svc = _connect(stack_name, endpoint_url, region)
    try:
        if wait:
            view, ended = wait_view(svc, ref, timeout=timeout, interval=interval)
        else:
            view, ended = mission_view(svc, ref), True
    except LightHpcError as exc:
        _fail(exc)
    if as_json:
        _emit_json({**view.as_json(), "pace": _pace_json(view), "waitTimedOut": not ended})
    else:
        _print_view(view)
    if not ended:
        click.echo(
            f"lighthpc: Status.Timeout: still {view.execution_status} after {timeout:.0f} s",
            err=True,
        )
    sys.exit(EXIT_FAILED if view.failed or not ended else EXIT_OK)


def _print_view(view: MissionView) -> None:
    from cli.views import execution_table, state_runs, summary_table, units_table
    from workflow.asl import state_names

    console = Console(width=max(Console().width, 100))
    ex = view.execution
    if ex is not None:
        line = f"Execution {ex.get('name')}: {ex.get('status')}"
        if ex.get("error"):
            line += f" — {ex.get('error')}: {ex.get('cause', '')}"
        console.print(line, markup=False, highlight=False)
    if view.mission is None:
        console.print(
            "No mission recorded for this execution (still planning, a duplicate, "
            "or a rejected input).",
            markup=False,
        )
    else:
        console.print(summary_table(view.mission))
        console.print(f"Progress: {view.progress.line()}", markup=False, highlight=False)
        console.print(f"Pace: {_pace_line(view)}", markup=False, highlight=False)
        if view.units:
            console.print(units_table(view.units, view.shard_counts()))
    if view.history and view.definition is not None:
        console.print(execution_table(state_runs(view.history), state_names(view.definition)))


def _pace_parts(view: MissionView) -> tuple[Pace, float, float | None]:
    """The pace since planning (until RsltProc finished, once it has), the spend now (the
    running nodes' accrual included) and the mission's cap."""
    assert view.mission is not None
    now = time.time()
    mission = view.mission
    pace = pace_of(view.progress, (mission.finished_at or now) - mission.created_at)
    spent = spend_of(mission, view.units, now).total
    return pace, spent, mission.mission_params().max_cost_usd


def _pace_line(view: MissionView) -> str:
    pace, spent, cap = _pace_parts(view)
    return pace.line(spent, cap)


def _pace_json(view: MissionView) -> dict[str, Any] | None:
    if view.mission is None:
        return None
    pace, spent, cap = _pace_parts(view)
    return {**pace.as_json(), "spentUsd": round(spent, 6), "maxCostUsd": cap}


# ---- config -----------------------------------------------------------------------------


@click.group("config")
def config() -> None:
    """MissionCfg profiles: named params stored in tblMission (get | put | list | delete)."""


@config.command("get")
@click.argument("name")
@remote_options
def config_get(*, name: str, stack_name: str, endpoint_url: str | None, region: str | None) -> None:
    """Print one profile as JSON."""
    _, svc = _connect(stack_name, endpoint_url, region)
    _profile_call(lambda: profiles.get_profile(svc.store, name))


@config.command("put")
@click.argument("name")
@click.option("--param", "params", multiple=True, metavar="K=V", help="Profile param (repeat).")
@click.option(
    "--file",
    "params_file",
    type=click.Path(path_type=Path, exists=True, dir_okay=False),
    help="A JSON object of params (the --param values are applied over it).",
)
@remote_options
def config_put(
    *,
    name: str,
    params: tuple[str, ...],
    params_file: Path | None,
    stack_name: str,
    endpoint_url: str | None,
    region: str | None,
) -> None:
    """Create or replace a profile (validated as a mission would see it)."""
    from cli.options import parse_param_options

    try:
        body = _read_params_file(params_file)
        body.update(parse_param_options(params))
    except LightHpcError as exc:
        _fail(exc)
    stack, svc = _connect(stack_name, endpoint_url, region)
    floor = stack.settings.min_heartbeat_seconds
    _profile_call(lambda: profiles.put_profile(svc.store, name, body, min_heartbeat_seconds=floor))


@config.command("list")
@remote_options
def config_list(*, stack_name: str, endpoint_url: str | None, region: str | None) -> None:
    """Print every profile as JSON."""
    _, svc = _connect(stack_name, endpoint_url, region)
    _profile_call(lambda: profiles.list_profiles(svc.store))


@config.command("delete")
@click.argument("name")
@remote_options
def config_delete(
    *, name: str, stack_name: str, endpoint_url: str | None, region: str | None
) -> None:
    """Delete a profile."""
    _, svc = _connect(stack_name, endpoint_url, region)
    _profile_call(lambda: profiles.delete_profile(svc.store, name))


def _read_params_file(path: Path | None) -> dict[str, Any]:
    if path is None:
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ProfileInvalid(f"{path}: not a readable JSON file ({exc})") from exc
    if not isinstance(data, Mapping):
        raise ProfileInvalid(f"{path}: must hold a JSON object of params")
    return dict(data)


def _profile_call(call: Callable[[], Mapping[str, Any]]) -> None:
    from botocore.exceptions import BotoCoreError, ClientError

    from cli.remote import aws_error

    try:
        result = call()
    except LightHpcError as exc:
        _fail(exc)
    except (BotoCoreError, ClientError) as exc:
        _fail(aws_error(exc, "MissionCfg request"))
    _emit_json(dict(result))


# ---- cost -------------------------------------------------------------------------------


@click.command("cost")
@click.argument("mission_id", metavar="MISSION")
@remote_options
@click.option("--json", "as_json", is_flag=True, help="Print the breakdown as JSON.")
def cost(
    *,
    mission_id: str,
    stack_name: str,
    endpoint_url: str | None,
    region: str | None,
    as_json: bool,
) -> None:
    """Modelled cost of a mission: orchestration vs compute (public list prices)."""
    _, svc = _connect(stack_name, endpoint_url, region)
    try:
        breakdown = mission_cost(svc.store, mission_id)
    except LightHpcError as exc:
        _fail(exc)
    if as_json:
        _emit_json(breakdown.as_json())
    else:
        Console().print(_cost_table(breakdown))


def _cost_table(c: MissionCost) -> Table:
    table = Table(title=f"Mission {c.mission_id}: modelled cost (USD)", title_justify="left")
    table.add_column("Item")
    table.add_column("Detail")
    table.add_column("USD", justify="right")
    table.add_row("Step Functions", "state transitions", f"{c.step_functions:.6f}")
    table.add_row("Lambda", "requests + GB-seconds", f"{c.lambda_:.6f}")
    table.add_row("DynamoDB", "on-demand reads/writes", f"{c.dynamodb:.6f}")
    table.add_row("[bold]Orchestration[/]", "", f"[bold]{c.orchestration:.6f}[/]")
    for (itype, capacity), usd in sorted(c.instances.items()):
        hours = c.instance_hours[(itype, capacity)]
        table.add_row(f"EC2 {itype}", f"{capacity}, {hours:.3f} h", f"{usd:.6f}")
    for itype in c.unpriced:
        table.add_row(f"EC2 {itype}", "no list price known", "-")
    table.add_row(
        "[bold]Compute[/]", "billed by ended nodes, all attempts", f"[bold]{c.compute:.6f}[/]"
    )
    table.add_row("[bold]Total[/]", "", f"[bold]{c.total:.6f}[/]")
    if c.shards:
        table.add_row("Per shard", f"{c.shards} shards", f"{c.total / c.shards:.6f}")
    if c.recorded is not None:
        table.add_row("Recorded by RsltProc", "same model, when it ran", f"{c.recorded:.6f}")
    return table
