"""Write ``localcloud/function_limits.json``: each Lambda's limits as the template sets them.

The embedded cloud must not import the CDK at run time (the import contract), yet its
in-process Lambda runtime has to apply the deployed timeout, memory and ``/tmp`` size. So the
synthesized template is the source, this snapshot the copy, and
``tests/infra/test_function_limits.py`` fails when the two drift apart.

    PYTHONPATH=.:infra python -m lighthpc_infra.limits_snapshot
"""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final

from lighthpc_infra.functions import SPECS

SNAPSHOT: Final = Path(__file__).resolve().parents[2] / "localcloud" / "function_limits.json"
LAMBDA_DEFAULT_TIMEOUT_SECONDS: Final = 3  # what CloudFormation means by an absent property
LAMBDA_DEFAULT_MEMORY_MB: Final = 128
LAMBDA_DEFAULT_EPHEMERAL_MB: Final = 512


def function_limits(template: Mapping[str, Any]) -> dict[str, dict[str, int]]:
    """``SPECS`` key -> ``{"timeout", "memorySize", "ephemeralStorage"}`` from the template."""
    by_handler = {spec.handler: key for key, spec in SPECS.items()}
    limits: dict[str, dict[str, int]] = {}
    for resource in template.get("Resources", {}).values():
        if resource.get("Type") != "AWS::Lambda::Function":
            continue
        props = resource.get("Properties", {})
        key = by_handler.get(str(props.get("Handler")))
        if key is None:
            continue  # a CDK helper function (e.g. log retention), not one of ours
        storage = props.get("EphemeralStorage", {}).get("Size", LAMBDA_DEFAULT_EPHEMERAL_MB)
        limits[key] = {
            "timeout": int(props.get("Timeout", LAMBDA_DEFAULT_TIMEOUT_SECONDS)),
            "memorySize": int(props.get("MemorySize", LAMBDA_DEFAULT_MEMORY_MB)),
            "ephemeralStorage": int(storage),
        }
    missing = set(SPECS) - set(limits)
    if missing:
        raise ValueError(f"the template has no function for {sorted(missing)}")
    return dict(sorted(limits.items()))


def render(limits: Mapping[str, Any]) -> str:
    return json.dumps(limits, indent=2, sort_keys=True) + "\n"


def main() -> int:
    from lighthpc_infra.synthesis import offline_context, synthesize

    result = synthesize(offline_context())
    SNAPSHOT.write_text(render(function_limits(result.template)), encoding="utf-8")
    sys.stdout.write(f"wrote {SNAPSHOT}\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
