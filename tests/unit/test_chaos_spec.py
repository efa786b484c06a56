"""``--chaos`` parsing: the DynamoDB rates ride beside the node faults, bad items are named."""

from __future__ import annotations

import pytest

from localcloud.chaos import ChaosSpec, ChaosSpecInvalid, parse_chaos


def test_conflict_and_throttle_rates_parse_beside_interrupts() -> None:
    spec = parse_chaos("conflict=0.3,throttle=0.2,interrupt=0.3")
    assert spec == ChaosSpec(interrupt=0.3, conflict=0.3, throttle=0.2)
    assert spec.active and parse_chaos("throttle=0.1").active and not parse_chaos("").active


@pytest.mark.parametrize("bad", ["conflict=1.5", "throttle=-0.1", "conflicts=0.1", "throttle"])
def test_a_bad_rate_is_refused_by_name(bad: str) -> None:
    with pytest.raises(ChaosSpecInvalid):
        parse_chaos(bad)
