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


class _Pool:
    """Records when the unit's workers are shut down (``ShardPool``'s place)."""

    events: list[str] = []

    def __init__(self, slots: int) -> None:
        self.slots = slots

    def warm(self) -> None:
        return None

    def request_stop(self) -> None:
        return None

    def close(self) -> None:
        self.events.append("workers closed")


class _Pump:
    def __init__(self, pool: _Pool, handle: Any) -> None:
        del pool, handle

    def start(self) -> None:
        return None

    def stop(self) -> None:
        return None

    def join(self) -> None:
        return None


class _Run:
    def __init__(self, **kwargs: Any) -> None:
        del kwargs
        self.on_event = None

    def run(self, shards: Any) -> UnitReport:
        return UnitReport()


def test_the_node_reports_before_it_closes_its_workers_and_closes_them_before_it_ends(
    tmp_path: Path, monkeypatch: Any
) -> None:
    """Closing the pool waits for every worker process to exit (~0.3 s): the mission must not
    wait for it, and no worker may outlive the agent."""
    import node_agent.agent as agent_module

    cloud = FakeCloud()
    cloud.store.create_mission(mission_record(MISSION, params={"workload": "noop", "shards": 2}))
    cloud.store.put_plan(MISSION, [WorkUnit("u0000", 0, tuple(plan_shards(2, 2)))])
    cloud.store.begin_attempt(MISSION, "u0000", 1, "token-1", "spot")
    events = _Pool.events = []
    monkeypatch.setattr(agent_module, "ShardPool", _Pool)
    monkeypatch.setattr(agent_module, "EventPump", _Pump)
    monkeypatch.setattr(agent_module, "UnitRun", _Run)
    monkeypatch.setattr(
        agent_module,
        "stage_inputs",
        lambda *a, **k: SimpleNamespace(bytes_downloaded=0, inputs=None, library_cached=False),
    )
    svc: Any = SimpleNamespace(store=cloud.store, tokens=cloud.tokens, settings=cloud.settings)
    svc.objects = cloud.objects
    svc.ec2 = SimpleNamespace(terminate_instances=lambda **k: events.append("terminated"))
    agent = NodeAgent(svc, _NoNotice(), AgentConfig(poll_seconds=0.05, work_dir=tmp_path))  # type: ignore[arg-type]

    def conclude(ident: NodeIdentity, unit: UnitRecord, report: UnitReport) -> ExitCode:
        events.append("reported")
        return ExitCode.SUCCEEDED

    agent._conclude = conclude  # type: ignore[method-assign]
    monkeypatch.setattr(agent_module, "resolve_identity", lambda *a: _IDENT)
    assert agent.run() == ExitCode.SUCCEEDED
    assert events == ["reported", "workers closed", "terminated"]


_IDENT = NodeIdentity("i-0", "c6i.large", MISSION, "u0000", 1)
