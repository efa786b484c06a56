"""The pace rule (``workflow.progress.pace_of``): shards/s and an ETA from the observed rate,
shown by ``lighthpc status``, the local progress bar and the SNS notice."""

from __future__ import annotations

from hypothesis import assume, given
from hypothesis import strategies as st

from workflow.progress import Pace, Progress, pace_of


def progress(shards: int, done: int, failed: int = 0) -> Progress:
    return Progress(shards, done, failed, 0, shards - done - failed, 1, 0, 0, 0)


counts = st.integers(min_value=0, max_value=100_000)
seconds = st.floats(min_value=0, max_value=1e7, allow_nan=False)


@given(shards=counts, elapsed=seconds)
def test_no_rate_and_no_eta_before_a_shard_is_done(shards: int, elapsed: float) -> None:
    assert pace_of(progress(shards, 0), elapsed) == Pace(None, None)
    assert "ETA: unknown" in pace_of(progress(shards, 0), elapsed).line()


@given(done=st.integers(min_value=1, max_value=1000), elapsed=st.floats(max_value=0))
def test_no_division_by_zero_at_or_before_the_start(done: int, elapsed: float) -> None:
    assert pace_of(progress(done, done), elapsed) == Pace(None, None)


@given(
    shards=st.integers(min_value=1, max_value=100_000),
    data=st.data(),
    elapsed=st.floats(min_value=1e-3, max_value=1e7, allow_nan=False),
)
def test_the_eta_is_the_open_shards_at_the_observed_rate(
    shards: int, data: st.DataObject, elapsed: float
) -> None:
    done = data.draw(st.integers(min_value=1, max_value=shards))
    failed = data.draw(st.integers(min_value=0, max_value=shards - done))
    pace = pace_of(progress(shards, done, failed), elapsed)
    assert pace.shards_per_second is not None and pace.eta_seconds is not None
    assert abs(pace.shards_per_second * elapsed - done) <= 1e-9 * done
    open_shards = shards - done - failed
    assert abs(pace.eta_seconds * pace.shards_per_second - open_shards) <= 1e-6 * (open_shards + 1)
    assert (pace.eta_seconds == 0) == (open_shards == 0)


@given(
    shards=st.integers(min_value=2, max_value=100_000),
    data=st.data(),
    elapsed=st.floats(min_value=1e-3, max_value=1e6, allow_nan=False),
    more_time=st.floats(min_value=0, max_value=1e6, allow_nan=False),
)
def test_more_done_never_lengthens_the_eta_and_more_time_never_raises_the_rate(
    shards: int, data: st.DataObject, elapsed: float, more_time: float
) -> None:
    done = data.draw(st.integers(min_value=1, max_value=shards - 1))
    more = data.draw(st.integers(min_value=done, max_value=shards))
    before, after = (
        pace_of(progress(shards, done), elapsed),
        pace_of(progress(shards, more), elapsed),
    )
    assert before.eta_seconds is not None and after.eta_seconds is not None
    assert after.eta_seconds <= before.eta_seconds
    slower = pace_of(progress(shards, done), elapsed + more_time)
    assert before.shards_per_second is not None and slower.shards_per_second is not None
    assume(more_time > 0)
    assert slower.shards_per_second <= before.shards_per_second


def test_the_line_says_rate_eta_and_the_spend_against_the_cap() -> None:
    pace = pace_of(progress(10, 4), 8.0)
    assert pace.line() == "0.5 shards/s · ETA 12 s"
    assert pace.line(0.0123, 0.05) == "0.5 shards/s · ETA 12 s · spent $0.012300 of $0.05"
    assert pace.line(0.0123) == "0.5 shards/s · ETA 12 s · spent $0.012300"
    assert "ETA 2 h 00 min" in pace_of(progress(7201, 1), 1.0).line()
    assert pace.as_json() == {"shardsPerSecond": 0.5, "etaSeconds": 12.0}
