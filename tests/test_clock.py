"""ClockWatch: steps of the wall clock against the monotonic clock."""

from __future__ import annotations

import pytest

from netguard.clock import ClockWatch, ManualClock


def test_agreeing_clocks_and_small_drift_are_no_step() -> None:
    clock = ManualClock()
    watch = ClockWatch(clock, threshold_seconds=30)
    clock.advance(600)
    assert watch.check() == 0.0
    clock.step_wall(29)  # NTP-sized correction
    assert watch.check() == 0.0
    assert (watch.forward, watch.backward) == (0, 0)


@pytest.mark.parametrize("step", [3600.0, -3600.0, 45.0, -45.0])
def test_a_step_either_way_is_reported_once(step: float) -> None:
    clock = ManualClock()
    watch = ClockWatch(clock, threshold_seconds=30)
    clock.advance(15)
    clock.step_wall(step)
    clock.advance(15)
    assert watch.check() == pytest.approx(step)
    assert (watch.forward, watch.backward) == ((1, 0) if step > 0 else (0, 1))
    assert watch.last_step_seconds == pytest.approx(step)
    clock.advance(15)
    assert watch.check() == 0.0  # the new wall time is the baseline from now on


def test_threshold_must_be_positive() -> None:
    with pytest.raises(ValueError, match="positive"):
        ClockWatch(ManualClock(), threshold_seconds=0)
