"""``localcloud/function_limits.json`` is the template's Lambda limits, not a guess."""

from __future__ import annotations

import json
from typing import Any

from lighthpc_infra.limits_snapshot import SNAPSHOT, function_limits, render


def test_the_local_limits_snapshot_matches_the_template(synth: Any) -> None:
    expected = render(function_limits(synth.template))
    assert SNAPSHOT.read_text(encoding="utf-8") == expected, (
        "the template's Lambda limits changed: regenerate the snapshot with "
        "`PYTHONPATH=.:infra python -m lighthpc_infra.limits_snapshot`"
    )


def test_the_snapshot_has_every_function_with_aws_defaults_filled_in(synth: Any) -> None:
    limits: dict[str, Any] = json.loads(SNAPSHOT.read_text(encoding="utf-8"))
    assert set(limits) == {"light_scheduler", "rslt_proc", "mission_cfg", "node_watch"}
    assert all(v["ephemeralStorage"] == 512 for v in limits.values())  # none sets /tmp yet
    assert function_limits(synth.template) == limits
