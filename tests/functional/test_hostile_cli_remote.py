"""The remote CLI given careless arguments: one ``lighthpc: Name: message`` line, exit 2 or 1.

Mission ids and profile names live in separate key spaces: ``status``/``cost`` of a profile's
key (``CONFIG#default``) is ``Mission.NotFound``, never a profile shown as a mission.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest
from click.testing import CliRunner, Result

from cli.remote_commands import cost, status
from localcloud.emulator import EmbeddedCloud
from localcloud.stack import LocalStack
from workflow.stack_outputs import ENV_STATE_MACHINE_ARN

pytestmark = pytest.mark.functional


def _run(cloud: EmbeddedCloud, command: Any, args: Sequence[str]) -> Result:
    env: dict[str, str | None] = {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": cloud.region,
        "AWS_ENDPOINT_URL": None,
        ENV_STATE_MACHINE_ARN: None,
    }
    return CliRunner().invoke(command, [*args, "--endpoint-url", cloud.endpoint_url], env=env)


CASES: list[tuple[str, Any, list[str], str, int]] = [
    ("status of a profile", status, ["CONFIG#default"], "Mission.NotFound", 1),
    ("status --wait of a profile", status, ["CONFIG#default", "--wait"], "Mission.NotFound", 1),
    ("cost of a profile", cost, ["CONFIG#default"], "Mission.NotFound", 1),
    (
        "status --interval -1",
        status,
        ["m-1", "--wait", "--interval", "-1"],
        "Mission.InvalidInput",
        2,
    ),
    (
        "status --interval 0",
        status,
        ["m-1", "--wait", "--interval", "0"],
        "Mission.InvalidInput",
        2,
    ),
    (
        "status --timeout -5",
        status,
        ["m-1", "--wait", "--timeout", "-5"],
        "Mission.InvalidInput",
        2,
    ),
]


@pytest.mark.parametrize(
    ("case", "command", "args", "error", "code"), CASES, ids=[c[0] for c in CASES]
)
def test_careless_remote_arguments_get_one_named_line(
    *,
    stack: LocalStack,
    cloud: EmbeddedCloud,
    case: str,
    command: Any,
    args: list[str],
    error: str,
    code: int,
) -> None:
    stack.services.store.put_profile("default", {"workload": "noop"}, 0.0)
    result = _run(cloud, command, args)
    assert result.exit_code == code, (case, result.output)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"lighthpc: {error}: "), result.stderr
    assert "Traceback" not in result.output
    assert result.stdout == ""
