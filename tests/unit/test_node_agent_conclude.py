"""The node keeps beating while it concludes: reading back a unit of thousands of shards can
outlast ``heartbeatSeconds`` in a busy cloud, and a beat that stops before the report makes
Step Functions time out an attempt that has finished (seen at 10,000 shards: both units
relaunched after their last shard)."""

from __future__ import annotations

import threading
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from node_agent.agent import ExitCode, NodeAgent
from node_agent.config import AgentConfig
from node_agent.identity import NodeIdentity
from node_agent.interruption import InterruptionWatcher
from node_agent.liveness import Heartbeat
from node_agent.unit_run import UnitReport
from tests.fakes import FakeCloud, mission_record
from workflow.planner import WorkUnit, plan_shards
from workflow.records import UnitRecord

MISSION = "m-conclude"


class _NoNotice:
    def get(self, path: str) -> None:
        return None


def test_the_heartbeat_goes_on_while_the_node_concludes_and_stops_after(tmp_path: Path) -> None:
    cloud = FakeCloud()
    cloud.store.create_mission(
        mission_record(MISSION, params={"workload": "noop", "shards": 3, "heartbeatSeconds": 3})
    )
    cloud.store.put_plan(MISSION, [WorkUnit("u0000", 0, tuple(plan_shards(3, 3)))])
    cloud.store.begin_attempt(MISSION, "u0000", 1, "token-1", "spot")
    svc: Any = SimpleNamespace(store=cloud.store, tokens=cloud.tokens, settings=cloud.settings)
    agent = NodeAgent(svc, _NoNotice(), AgentConfig(poll_seconds=0.05, work_dir=tmp_path))  # type: ignore[arg-type]
    seen: dict[str, Any] = {}

    def conclude(ident: NodeIdentity, unit: UnitRecord, report: UnitReport) -> ExitCode:
        alive = [t for t in agent._threads if t.is_alive()]
        seen["beating"] = any(isinstance(t, Heartbeat) for t in alive)
        seen["watching"] = any(isinstance(t, InterruptionWatcher) for t in alive)
        seen["timers"] = any(isinstance(t, threading.Timer) for t in alive)
        return ExitCode.SUCCEEDED

    agent._run_shards = lambda *args: UnitReport()  # type: ignore[method-assign]
    agent._conclude = conclude  # type: ignore[method-assign]
    ident = NodeIdentity("i-0", "c6i.large", MISSION, "u0000", 1)
    assert agent._run_attempt(ident) is ExitCode.SUCCEEDED
    # The stop cause is final (no notice or lifetime may change it), the beat goes on.
    assert seen == {"beating": True, "watching": False, "timers": False}
    agent._stop_threads()
    assert agent._threads == []
