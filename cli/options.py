"""What every ``lighthpc`` command shares: exit codes, the one-line error, ``--param``."""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from typing import Any, NoReturn

from rich.console import Console

from workflow.errors import MissionInvalidInput

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
err_console = Console(stderr=True, soft_wrap=True)
out_console = Console()


def fail(error: str, message: str, code: int = EXIT_USAGE) -> NoReturn:
    err_console.print(f"lighthpc: {error}: {message}", markup=False, highlight=False)
    sys.exit(code)


def parse_param_options(items: Sequence[str]) -> dict[str, Any]:
    """``k=v`` pairs; ``v`` is JSON when it parses (numbers, lists), else a plain string."""
    out: dict[str, Any] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise MissionInvalidInput(f"--param needs key=value, got {item!r}")
        try:
            out[key] = json.loads(raw)
        except json.JSONDecodeError:
            out[key] = raw
    return out
