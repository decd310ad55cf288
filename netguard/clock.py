"""Time as an injectable seam: logic takes ``now``; services take a :class:`Clock`."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Protocol


class Clock(Protocol):
    """Something that tells the current time."""

    def now(self) -> datetime:
        """The current time, timezone-aware UTC."""
        ...

    def monotonic(self) -> float:
        """Seconds on a clock that never goes back."""
        ...


class SystemClock:
    """The real clock."""

    def now(self) -> datetime:
        """The current time, timezone-aware UTC."""
        return datetime.now(UTC)

    def monotonic(self) -> float:
        """``time.monotonic()``."""
        return time.monotonic()


class ManualClock:
    """A clock that moves only when told to (for tests and simulations)."""

    def __init__(self, start: datetime | None = None) -> None:
        self._now = start or datetime(2026, 1, 1, tzinfo=UTC)
        if self._now.tzinfo is None:
            raise ValueError("ManualClock needs a timezone-aware start")
        self._mono = 0.0

    def now(self) -> datetime:
        """The clock's current time."""
        return self._now

    def monotonic(self) -> float:
        """Seconds advanced so far."""
        return self._mono

    def advance(self, seconds: float) -> datetime:
        """Move the clock forward and return the new time."""
        self._now += timedelta(seconds=seconds)
        self._mono += seconds
        return self._now

    def step_wall(self, seconds: float) -> datetime:
        """Step only the wall clock (as ``date -s`` would), backwards for negative values."""
        self._now += timedelta(seconds=seconds)
        return self._now


def utcnow() -> datetime:
    """The current time, timezone-aware UTC."""
    return datetime.now(UTC)


def as_utc(value: datetime) -> datetime:
    """Interpret a naive datetime (as SQLite returns them) as UTC; convert aware ones."""
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


class ClockWatch:
    """Notices when the wall clock steps relative to the monotonic clock.

    Intervals and timeouts run on the monotonic clock, so a step of the wall clock (a
    manual ``date -s``, a VM resumed from a snapshot, NTP correcting a large offset) does
    not stall or hurry them. Records are still stamped with wall time, and decisions that
    compare stamps with "now" (sensor heartbeats, retention) must hear about a step so
    they can re-baseline instead of acting on it.

    Args:
        clock: Where both times come from (injected, so tests can step the wall clock).
        threshold_seconds: Disagreement between the two clocks that counts as a step;
            smaller drifts (NTP slewing, scheduling delay) are ignored.
    """

    def __init__(self, clock: Clock, threshold_seconds: float = 30.0) -> None:
        if threshold_seconds <= 0:
            raise ValueError("threshold_seconds must be positive")
        self._clock = clock
        self._threshold = threshold_seconds
        self._wall = clock.now()
        self._mono = clock.monotonic()
        self.forward = 0
        self.backward = 0
        self.last_step_seconds = 0.0

    def check(self) -> float:
        """Compare both clocks since the last check.

        Returns:
            The step in seconds (positive: the wall clock jumped forward), or 0.0 when the
            clocks agree within the threshold.
        """
        wall, mono = self._clock.now(), self._clock.monotonic()
        step = (wall - self._wall).total_seconds() - (mono - self._mono)
        self._wall, self._mono = wall, mono
        if abs(step) < self._threshold:
            return 0.0
        if step > 0:
            self.forward += 1
        else:
            self.backward += 1
        self.last_step_seconds = step
        return step
