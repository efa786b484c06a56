#!/usr/bin/env python3
"""Synthesize the stack offline (no bundling, no AWS account) and report on it:
synth time, resource counts, cdk-nag errors and suppressions, cfn-lint findings.

    JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION=20 python infra/synth_report.py
"""

from __future__ import annotations

import json
import sys
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from cfnlint.api import ManualArgs, lint
from lighthpc_infra.synthesis import (
    NagFindings,
    nag_suppressions,
    offline_context,
    synthesize,
)


def _say(line: str) -> None:
    sys.stdout.write(line + "\n")


def main() -> int:
    try:
        result = synthesize(offline_context())
    except NagFindings as exc:
        sys.stderr.write(f"cdk-nag errors:\n{exc}\n")
        return 1
    counts = Counter(r["Type"] for r in result.template["Resources"].values())
    _say(f"synth: {result.seconds:.1f} s, {result.resource_count} resources")
    for type_name, n in sorted(counts.items()):
        _say(f"  {n:3d} {type_name}")
    suppressions = nag_suppressions(result.template)
    _say(f"cdk-nag: {len(result.errors)} errors, {len(suppressions)} suppressions")
    for s in suppressions:
        _say(f"  {s['id']} {s.get('applies_to', '')} on {s['resource']}")
    matches = lint(json.dumps(result.template), config=ManualArgs(regions=["us-east-1"]))
    _say(f"cfn-lint: {len(matches)} findings")
    for m in matches:
        _say(f"  {m.rule.id} {m.message}")
    return 0 if not result.errors else 1


if __name__ == "__main__":
    raise SystemExit(main())
