"""``lighthpc``: run missions locally, and watch or start them on a deployed stack.

Exit codes: 0 success, 1 the mission (or request) failed, 2 bad usage or input.
Errors are one readable line on stderr: ``lighthpc: <Error.Name>: <what and why>``.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click

from cli.mission_verbs import cancel, get, logs, ls, rerun
from cli.options import (
    EXIT_FAILED,
    EXIT_USAGE,
    check_file_name,
    check_out_dir,
    check_workers,
    err_console,
    fail,
    out_console,
    parse_param_options,
)
from cli.remote import is_execution_arn
from cli.remote_commands import config, cost, remote_options, start, status
from localcloud.pool import DEFAULT_BOOT_SECONDS, REALISTIC_BOOT_SECONDS
from workflow.errors import LightHpcError, MissionInvalidInput, MissionNotFound


@contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """SIGTERM cleans up like Ctrl-C (no orphan emulator or node processes)."""

    def raise_interrupt(_signum: int, _frame: Any) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, raise_interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


boot_seconds_option = click.option(
    "--boot-seconds",
    default=DEFAULT_BOOT_SECONDS,
    show_default=True,
    type=float,
    help="Modelled node start: the instance exists this long before its node boots "
    f"(AWS: ~{REALISTIC_BOOT_SECONDS:.0f} s, then the install).",
)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="lighthpc-sfn")
def main() -> None:
    """lightHPC-SFN: event-driven HPC missions on Step Functions and EC2 Spot."""


@main.group()
def local() -> None:
    """Run missions on this machine: embedded AWS emulator + real node processes."""


@local.command("run")
@click.argument("sample", type=click.Path(path_type=Path))
@click.option("--workload", default="molsim", show_default=True, help="Workload name.")
@click.option("--library", type=click.Path(path_type=Path), help="Reference library (.smi).")
@click.option(
    "--bundle",
    type=click.Path(path_type=Path),
    help="Job bundle: a directory or .zip/.tar.gz with lighthpc-job.json (workload command).",
)
@click.option("--param", "params", multiple=True, metavar="K=V", help="Mission param (repeat).")
@click.option("--workers", default=2, show_default=True, type=int, help="Local nodes at once.")
@click.option("--out", type=click.Path(path_type=Path), help="Result directory.")
@click.option("--chaos", default=None, metavar="SPEC", help="e.g. interrupt=0.3,kill=1,dup=1")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON on stdout.")
@boot_seconds_option
@click.option("--no-iam", is_flag=True, help="Do not enforce the deployed IAM grants locally.")
@click.option(
    "--iam-report", type=click.Path(path_type=Path), help="Write the IAM call matrix to FILE."
)
def local_run(
    sample: Path,
    workload: str,
    library: Path | None,
    bundle: Path | None,
    params: tuple[str, ...],
    workers: int,
    out: Path | None,
    chaos: str | None,
    as_json: bool,
    boot_seconds: float,
    no_iam: bool,
    iam_report: Path | None,
) -> None:
    """Upload SAMPLE to the local source bucket and run the mission it starts."""
    _iam_switches(no_iam=no_iam, report=iam_report)
    from cli.local_run import run_local
    from localcloud.chaos import parse_chaos
    from localcloud.session import MissionRequestLocal

    try:
        check_workers(workers)
        check_file_name(sample)
        check_out_dir(out)
        request = MissionRequestLocal(
            sample=sample,
            workload=workload,
            library=library,
            params=parse_param_options(params),
            workers=workers,
            chaos=parse_chaos(chaos),
            boot_seconds=boot_seconds,
            bundle=bundle,
        )
        request.validate()
    except LightHpcError as exc:
        fail(type(exc).__name__, str(exc), as_json=as_json)
    try:
        with sigterm_as_interrupt():
            code = run_local(request, out, as_json=as_json, console=out_console, err=err_console)
    except KeyboardInterrupt:  # before run_local took the signals over: nothing started yet
        err_console.print("lighthpc: Interrupted: before the local stack started")
        sys.exit(130)
    except LightHpcError as exc:
        fail(type(exc).__name__, str(exc), EXIT_FAILED, as_json=as_json)
    sys.exit(code)


def _iam_switches(*, no_iam: bool, report: Path | None = None) -> None:
    """The local cloud reads these at start (``localcloud.iam``, ``localcloud.session``)."""
    from localcloud.iam import ENV_SWITCH
    from localcloud.session import IAM_REPORT_ENV

    if no_iam:
        os.environ[ENV_SWITCH] = "0"
    if report is not None:
        os.environ[IAM_REPORT_ENV] = str(report.resolve())


@local.command("up")
@click.option("--workers", default=2, show_default=True, type=int, help="Local nodes at once.")
@boot_seconds_option
@click.option("--no-iam", is_flag=True, help="Do not enforce the deployed IAM grants locally.")
def local_up(workers: int, boot_seconds: float, no_iam: bool) -> None:
    """Run the emulator and node pool until Ctrl-C; drive it with the stock AWS CLI."""
    from localcloud.session import LocalSession

    _iam_switches(no_iam=no_iam)
    try:
        check_workers(workers)
    except LightHpcError as exc:
        fail(type(exc).__name__, str(exc))
    try:
        with (
            sigterm_as_interrupt(),
            LocalSession(workers=workers, boot_seconds=boot_seconds) as session,
        ):
            stack = session.stack
            assert stack is not None
            endpoint = session.cloud.endpoint_url
            out_console.print(f"[bold]lightHPC local stack is up[/] at {endpoint}")
            out_console.print(
                f"  export AWS_ENDPOINT_URL={endpoint} AWS_DEFAULT_REGION={session.cloud.region} "
                "AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing",
                markup=False,
                soft_wrap=True,  # one line to paste, even when stdout is not a terminal
            )
            out_console.print(f"  source bucket : s3://{stack.settings.source_bucket}/incoming/")
            out_console.print(f"  state machine : {stack.state_machine_arn}", markup=False)
            out_console.print("  Ctrl-C to stop (everything started here stops with it)")
            while True:
                time.sleep(1)
    except KeyboardInterrupt:
        err_console.print("lighthpc: stopped; emulator and nodes shut down")


@main.command("show")
@click.argument("ref", metavar="MISSION|EXECUTION_ARN")
@click.option(
    "--timeline",
    type=click.Path(path_type=Path),
    help="Draw the mission's timeline to FILE (.png or .svg): a row per node attempt.",
)
@click.option("--svg", "svg", type=click.Path(path_type=Path), help="Write the graph as SVG.")
@remote_options
def show(
    *,
    ref: str,
    timeline: Path | None,
    svg: Path | None,
    stack_name: str,
    endpoint_url: str | None,
    region: str | None,
) -> None:
    """Render an execution's state graph with per-state status, and the mission's timeline.

    An execution ARN alone needs only Step Functions; a mission id (or --timeline) reads the
    mission's records too, from the stack found as `lighthpc status` finds it.
    """
    from cli.timeline import image_format, require_matplotlib

    if timeline is not None:
        try:
            image_format(timeline)
            require_matplotlib()
        except LightHpcError as exc:
            fail(type(exc).__name__, str(exc))
    if is_execution_arn(ref) and timeline is None:
        _show_execution(ref, endpoint_url, region, svg)
        return
    _show_mission(ref, stack_name, endpoint_url, region, svg=svg, timeline=timeline)


def _show_execution(
    arn: str, endpoint_url: str | None, region: str | None, svg: Path | None
) -> None:
    import boto3
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        sfn = boto3.client("stepfunctions", endpoint_url=endpoint_url, region_name=region)
        events = sfn.get_execution_history(executionArn=arn, maxResults=1000)["events"]
        machine = sfn.describe_state_machine_for_execution(executionArn=arn)
    except (BotoCoreError, ClientError) as exc:
        fail("Show.Unavailable", str(exc), EXIT_FAILED)
    _print_graph(json.loads(machine["definition"]), events, svg)


def _show_mission(
    ref: str,
    stack_name: str,
    endpoint_url: str | None,
    region: str | None,
    *,
    svg: Path | None,
    timeline: Path | None,
) -> None:
    from cli.remote import connect, mission_view
    from cli.timeline import TimelineUnwritable, draw
    from workflow.timeline import build_timeline

    try:
        _, svc = connect(stack_name, endpoint_url=endpoint_url, region=region)
        view = mission_view(svc, ref)
        if view.mission is None:
            raise MissionNotFound(f"no mission recorded for {ref} (yet)")
        if view.definition is not None:
            _print_graph(view.definition, view.history, svg)
        if timeline is not None:
            model = build_timeline(view.mission, view.units, view.shards, now=time.time())
            draw(model, timeline)
            out_console.print(
                f"timeline written to {timeline} ({len(model.rows)} node attempts)",
                markup=False,
                soft_wrap=True,  # a path to copy stays on one line
            )
    except LightHpcError as exc:
        usage = isinstance(exc, (MissionInvalidInput, TimelineUnwritable))
        fail(type(exc).__name__, str(exc), EXIT_USAGE if usage else EXIT_FAILED)


def _print_graph(
    definition: dict[str, Any], events: list[dict[str, Any]], svg: Path | None
) -> None:
    from cli.views import dot_source, execution_table, state_graph, state_runs

    runs = state_runs(events)
    out_console.print(state_graph(definition, runs))
    out_console.print(execution_table(runs, list(runs)))
    if svg is not None:
        write_svg(dot_source(definition, runs), svg)


def write_svg(dot: str, target: Path) -> None:
    exe = shutil.which("dot")
    if exe is None:
        fail("Show.NoGraphviz", "Graphviz 'dot' is not installed; install graphviz for --svg")
    svg = subprocess.run([exe, "-Tsvg"], input=dot.encode(), capture_output=True, check=True)
    target.write_bytes(svg.stdout)
    out_console.print(f"graph written to {target}")


main.add_command(start)
main.add_command(status)
main.add_command(config)
main.add_command(cost)
for verb in (ls, cancel, logs, rerun, get):
    main.add_command(verb)
