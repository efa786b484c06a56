"""The mission survives a work unit whose failure cannot even be recorded (issue 12 §1).

With AWS's Distributed Map semantics (moto_compat fix 11) a failed child execution fails the
whole Map Run and aborts the units still running, so RsltProc never gets to apply
``maxFailedShardPercent``. ``RunWorkUnits`` therefore tolerates every child failure and
leaves the judgement to RsltProc.
"""

from __future__ import annotations

from typing import Any

from localcloud.emulator import EmbeddedCloud
from localcloud.stack import LocalStack, real_handlers, wire
from tests.functional.conftest import wait_execution
from tests.functional.simnode import NodeSim, unit_scripted
from tests.functional.test_mission_flow import _upload, manual, mission_of, noop_profile


class ThrottlingException(Exception):
    """What a throttled tblTrans write raises once the SDK's retries are spent."""


def _record_unit_failure_throttled(event: dict[str, Any], context: Any) -> Any:
    if event.get("action") == "unitFailed":
        raise ThrottlingException("Rate of requests exceeds the allowed throughput")
    return real_handlers()["light_scheduler"](event, context)


def test_a_unit_whose_failure_cannot_be_recorded_does_not_abort_the_others(
    cloud: EmbeddedCloud, stack: LocalStack
) -> None:
    wire(cloud, stack, {"light_scheduler": _record_unit_failure_throttled})
    noop_profile(stack, shards=4, maxNodes=4, maxFailedShardPercent=25)
    # u0001 fails for good while u0002 and u0003 are between a Spot interruption and
    # their second attempt: a strict Map Run would abort them.
    plan = {("u0001", 1): "fail", ("u0002", 1): "interrupt", ("u0003", 1): "interrupt"}
    with NodeSim(stack.services, unit_scripted(plan)):  # type: ignore[arg-type]
        _upload(stack, "incoming/unrecorded.txt")
        arn = manual(stack, "incoming/unrecorded.txt")
        desc = wait_execution(stack, arn, timeout=90)
    mission = mission_of(stack, arn)
    assert desc["status"] == "SUCCEEDED", desc
    assert (mission.status, mission.shards_done, mission.shards_failed) == ("PARTIAL", 3, 1)
