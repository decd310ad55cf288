"""Domain value objects shared by probes and tickets."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from netguard.clock import ManualClock, as_utc
from netguard.faults import FaultCleared, FaultKey, FaultOpened

part = st.text(min_size=1, max_size=20).filter(lambda s: "|" not in s)


@given(part, part, part)
def test_fault_key_round_trips(target: str, component: str, condition: str) -> None:
    key = FaultKey(target, component, condition)
    assert FaultKey.parse(str(key)) == key


@pytest.mark.parametrize("bad", [("", "if:1", "down"), ("a", "x|y", "down")])
def test_fault_key_rejects_bad_parts(bad: tuple[str, str, str]) -> None:
    with pytest.raises(ValueError, match="FaultKey"):
        FaultKey(*bad)


def test_events_need_aware_times() -> None:
    key = FaultKey("a", "agent", "unreachable")
    with pytest.raises(ValueError, match="timezone-aware"):
        FaultCleared(key, datetime(2026, 1, 1))
    opened = FaultOpened(key, "fiber", None, "major", "s", ("r",), datetime(2026, 1, 1, tzinfo=UTC))
    assert opened.suppressed_by is None


def test_manual_clock_and_as_utc() -> None:
    clock = ManualClock()
    start = clock.now()
    assert (clock.advance(90) - start).total_seconds() == 90
    assert clock.monotonic() == 90
    assert as_utc(datetime(2026, 1, 1)).tzinfo is UTC
