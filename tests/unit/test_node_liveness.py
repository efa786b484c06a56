"""Heartbeat interval and the superseded signal (a dead token), transient errors tolerated."""

from __future__ import annotations

import threading

import pytest
from botocore.exceptions import ClientError

from node_agent.liveness import Heartbeat, heartbeat_interval
from node_agent.shutdown import Shutdown, StopCause
from workflow.aws.tokens import StepFunctionsTaskReporter


@pytest.mark.parametrize(
    ("heartbeat_seconds", "interval"), [(3, 1.0), (120, 40.0), (1, 1.0), (2, 1.0), (4.5, 1.5)]
)
def test_interval_is_a_third_never_below_one_second(
    heartbeat_seconds: float, interval: float
) -> None:
    assert heartbeat_interval(heartbeat_seconds) == interval


def _error(code: str) -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": code}}, "SendTaskHeartbeat")


class ScriptedSfn:
    """Answers heartbeats from a script: None = ok, else the error code to raise."""

    def __init__(self, script: list[str | None]) -> None:
        self.script = script
        self.calls = 0

    def send_task_heartbeat(self, **_: str) -> None:
        self.calls += 1
        outcome = self.script.pop(0) if self.script else None
        if outcome is not None:
            raise _error(outcome)


def test_a_dead_token_supersedes_once_after_transient_errors() -> None:
    sfn = ScriptedSfn([None, "ThrottlingException", None, "TaskTimedOut", None])
    gone = threading.Event()
    calls: list[int] = []

    def superseded() -> None:
        calls.append(1)
        gone.set()

    beat = Heartbeat(StepFunctionsTaskReporter(sfn), "token", 0.001, superseded)
    beat.start()
    assert gone.wait(10)
    beat.join(10)
    assert not beat.is_alive()
    assert calls == [1] and sfn.calls == 4  # the throttled beat was just retried


def test_stop_ends_the_loop_without_superseding() -> None:
    sfn = ScriptedSfn([])
    beat = Heartbeat(
        StepFunctionsTaskReporter(sfn), "token", 60, lambda: pytest.fail("not superseded")
    )
    beat.start()
    beat.stop()
    beat.join(10)
    assert not beat.is_alive() and sfn.calls >= 1


def test_shutdown_keeps_the_first_cause_but_supersession_always_sticks() -> None:
    stops: list[int] = []
    shutdown = Shutdown(lambda: stops.append(1))
    assert shutdown.request(StopCause.INTERRUPTED, "spot notice")
    assert not shutdown.request(StopCause.SUPERSEDED, "token gone")
    assert (shutdown.cause, shutdown.detail) == (StopCause.INTERRUPTED, "spot notice")
    assert shutdown.superseded and shutdown.stopping and len(stops) == 2
    late: list[int] = []
    shutdown.set_on_stop(lambda: late.append(1))
    assert late == [1]  # a pool created after the notice is stopped at once
