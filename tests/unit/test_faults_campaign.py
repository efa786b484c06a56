"""The fault campaign's attribution of heartbeat expiries to first node attempts
(``benchmarks/faults.py``, ``spuriousFirstHeartbeatTimeouts``)."""

from __future__ import annotations

from benchmarks.faults import Launch, first_heartbeat_timeouts, sample_key


def launch(unit: str, attempt: int, at: float, token: str | None = None) -> Launch:
    return Launch(
        token=token or f"tok-{unit}-{attempt}",
        mission_id="m-1",
        unit_id=unit,
        attempt=attempt,
        instance_id=f"i-{unit}-{attempt}",
        at=at,
    )


def test_an_expired_first_attempt_is_spurious_unless_a_fault_struck_its_node() -> None:
    launches = [launch("u0", 1, 1.0), launch("u0", 2, 40.0), launch("u1", 1, 2.0)]
    launches += [launch("u1", 2, 41.0), launch("u2", 1, 3.0)]
    expired = [("tok-u0-1", 35.0), ("tok-u1-1", 36.0)]

    timed_out, spurious = first_heartbeat_timeouts(launches, expired, struck={"i-u1-1"})

    assert timed_out == ["u0", "u1"]
    assert spurious == ["u0"]


def test_only_the_first_attempt_counts() -> None:
    launches = [launch("u0", 2, 40.0), launch("u0", 1, 1.0)]

    assert first_heartbeat_timeouts(launches, [("tok-u0-2", 80.0)], set()) == ([], [])


def test_a_reused_token_expires_for_the_launch_it_followed() -> None:
    launches = [launch("u0", 1, 1.0, token="t"), launch("u0", 2, 40.0, token="t")]

    assert first_heartbeat_timeouts(launches, [("t", 80.0)], set()) == ([], [])
    assert first_heartbeat_timeouts(launches, [("t", 30.0)], set()) == (["u0"], ["u0"])


def test_sample_key_of_either_execution_input() -> None:
    s3_event = {"detail": {"bucket": {"name": "b"}, "object": {"key": "incoming/a.txt"}}}
    manual = {"input": {"bucket": "b", "key": "incoming/b.txt"}, "params": {}}

    assert sample_key(s3_event) == "incoming/a.txt"
    assert sample_key(manual) == "incoming/b.txt"
    assert sample_key("not an event") is None
