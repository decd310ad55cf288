"""Recurring allowed windows: "every day 18:00-18:30" in the district's local time.

A household's door may open without an alert during a window. One-off windows are
absolute spans (:class:`netguard.iot.rules.Period`); real schedules repeat (a daily PCR
test visit, deliveries at 18:00-18:30 on weekdays), so a :class:`RecurringWindow` is
given in local wall-clock time and a time zone, and is turned into the concrete span that
contains an instant only when the rules ask.

Pure: no store, no clock. Wall-clock times follow :mod:`zoneinfo`:

- a window whose end is not after its start crosses midnight (22:00-06:00 runs into the
  next day);
- on a day a daylight-saving change skips the start or end time, the time is read with
  the offset in force before the change (``fold=0``), as :mod:`zoneinfo` does, so the
  span is one hour shorter or longer that day and is never lost;
- on a day a time occurs twice, the first occurrence is meant.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from netguard.iot.rules import Period

DAY_NAMES = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
EVERY_DAY = frozenset(range(7))
_CLOCK = re.compile(r"(?P<h>[01]\d|2[0-3]):(?P<m>[0-5]\d)\Z")
# Bounds what one spec may hold: it ends up in the store and in CSV cells.
SPEC_MAX = 120


class ScheduleError(ValueError):
    """A recurring-window spec, day list, clock time or time zone is not valid."""


def parse_clock(text: str) -> time:
    """``HH:MM`` (24-hour) as a :class:`~datetime.time`.

    Raises:
        ScheduleError: Anything else.
    """
    match = _CLOCK.match(text.strip())
    if match is None:
        raise ScheduleError(f"not a HH:MM time: {text[:20]!r}")
    return time(int(match["h"]), int(match["m"]))


def parse_days(text: str) -> frozenset[int]:
    """``daily``, or day names (``mon,thu`` or ``mon-fri``) as weekday numbers (Monday 0).

    Raises:
        ScheduleError: An unknown day name or an empty list.
    """
    text = text.strip().lower()
    if text in ("daily", "every day", "*"):
        return EVERY_DAY
    days: set[int] = set()
    for part in filter(None, (p.strip() for p in text.split(","))):
        first, _, last = part.partition("-")
        if first not in DAY_NAMES or (last and last not in DAY_NAMES):
            raise ScheduleError(f"unknown day {part[:20]!r} (use daily or {','.join(DAY_NAMES)})")
        a = DAY_NAMES.index(first)
        b = DAY_NAMES.index(last) if last else a
        # mon-fri, or fri-mon wrapping over the weekend.
        days.update((a + i) % 7 for i in range(((b - a) % 7) + 1))
    if not days:
        raise ScheduleError("no days given")
    return frozenset(days)


def format_days(days: frozenset[int]) -> str:
    """The inverse of :func:`parse_days`: ``daily`` or ``mon,thu``."""
    return "daily" if days == EVERY_DAY else ",".join(DAY_NAMES[d] for d in sorted(days))


@dataclass(frozen=True, slots=True)
class RecurringWindow:
    """A window that repeats on some weekdays, in local time, over a validity span.

    Attributes:
        days: Weekdays (Monday 0) on which a window *starts*.
        start: Local start time.
        end: Local end time; not after ``start`` means the window ends the next day.
        tz: The zone the times are read in.
        valid: The instants in which windows may start (usually the quarantine).
    """

    days: frozenset[int]
    start: time
    end: time
    tz: ZoneInfo
    valid: Period

    def __post_init__(self) -> None:
        if not self.days or not self.days <= EVERY_DAY:
            raise ScheduleError("a recurring window needs weekdays 0-6")
        if self.start == self.end:
            raise ScheduleError("a recurring window must not start and end at the same time")

    @property
    def spec(self) -> str:
        """``daily 18:00-18:30`` or ``mon,thu 09:00-09:30``."""
        return f"{format_days(self.days)} {self.start:%H:%M}-{self.end:%H:%M}"

    def occurrence(self, day: date) -> Period:
        """The span of the window that starts on local ``day`` (whether or not it runs)."""
        begin = datetime.combine(day, self.start, tzinfo=self.tz)
        end_day = day if self.end > self.start else day + timedelta(days=1)
        finish = datetime.combine(end_day, self.end, tzinfo=self.tz)
        return Period(begin.astimezone(UTC), finish.astimezone(UTC))

    def window_at(self, now: datetime) -> Period | None:
        """The occurrence that contains ``now`` (timezone-aware), if any."""
        today = now.astimezone(self.tz).date()
        # A window that crossed midnight started yesterday.
        for day in (today, today - timedelta(days=1)):
            if day.weekday() not in self.days:
                continue
            span = self.occurrence(day)
            if span.contains(now) and self.valid.contains(span.start):
                return span
        return None

    def contains(self, now: datetime) -> bool:
        """True when ``now`` lies in one of the window's occurrences."""
        return self.window_at(now) is not None


def parse_spec(spec: str, tz: ZoneInfo, valid: Period) -> RecurringWindow:
    """``daily 18:00-18:30`` / ``mon-fri 22:00-06:00`` as a :class:`RecurringWindow`.

    Raises:
        ScheduleError: Any part is malformed; the message names it.
    """
    if len(spec) > SPEC_MAX:
        raise ScheduleError(f"a window spec is at most {SPEC_MAX} characters")
    days_text, _, times = spec.strip().rpartition(" ")
    start_text, dash, end_text = times.partition("-")
    if not dash:
        raise ScheduleError(f"expected 'DAYS HH:MM-HH:MM' (daily 18:00-18:30), got {spec[:40]!r}")
    return RecurringWindow(parse_days(days_text or "daily"), parse_clock(start_text),
                           parse_clock(end_text), tz, valid)


def parse_specs(text: str, tz: ZoneInfo, valid: Period) -> list[RecurringWindow]:
    """Several specs separated by ``;`` (one CSV cell may list a household's windows)."""
    return [parse_spec(part, tz, valid) for part in text.split(";") if part.strip()]
