"""The operators' local time zone: named in the config, checked once, used for display
and for schedules written in wall-clock time.

netguard stores and compares UTC instants; a zone only turns them into what people in
the district read and write ("18:00 Beijing time").
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

_ZONE_NAME = re.compile(r"[A-Za-z0-9_+\-]+(/[A-Za-z0-9_+\-]+)*\Z")


class TimeZoneError(ValueError):
    """Not the name of an IANA time zone this machine knows."""


def zone(name: str) -> ZoneInfo:
    """The IANA time zone ``name`` (``Asia/Shanghai``).

    Raises:
        TimeZoneError: Unknown, or not a plain zone name (no paths, at most 64 characters).
    """
    if not name or len(name) > 64 or not _ZONE_NAME.match(name):
        raise TimeZoneError(f"not an IANA time zone name: {name[:64]!r}")
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise TimeZoneError(f"unknown time zone {name!r} (is the tzdata package installed?)"
                            ) from None


def as_local(value: datetime, tz: tzinfo) -> datetime:
    """``value`` (aware; a naive one is taken as UTC, as the store hands them out) in
    ``tz``."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(tz)


def _instant(value: datetime | str | None) -> datetime | None:
    if value is None or isinstance(value, datetime):
        return value
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed


def wall_text(value: datetime | str | None, tz: tzinfo) -> str | None:
    """An instant as the wall-clock time people in ``tz`` read in a table:
    ``2026-03-05 18:15:07`` (no zone: the table names it once in its header).

    ``value`` may be an ISO 8601 string, as the JSON-ready record dicts carry them; a
    string that is not one is returned as it is (shown, never refused), None stays None.
    """
    instant = _instant(value)
    if instant is None:
        return None if value is None else str(value)
    return as_local(instant, tz).strftime("%Y-%m-%d %H:%M:%S")


def iso_local(value: datetime | str | None, tz: tzinfo) -> str | None:
    """An instant as ISO 8601 with the offset of ``tz`` (``2026-03-05T18:15:07+08:00``),
    for CSV exports: a spreadsheet reader sees the local time, a program the instant."""
    instant = _instant(value)
    if instant is None:
        return None if value is None else str(value)
    return as_local(instant, tz).isoformat()


class TimeInputError(ValueError):
    """A time typed by an operator that is not an ISO 8601 date or time."""


def parse_wall(text: str, tz: tzinfo, what: str = "time") -> datetime:
    """An operator's ISO 8601 date or time as an aware instant.

    A date is its midnight and a time without offset is wall-clock time, both in ``tz``
    (the district's zone, ``display.timezone``); a time with an offset (``Z``,
    ``+08:00``) is that instant.

    Raises:
        TimeInputError: Empty, longer than 64 characters or not ISO 8601; the message
            names ``what`` (the option) and shows the value.
    """
    value = text.strip()
    if not value or len(value) > _TEXT_MAX:
        raise TimeInputError(f"{what}: expected an ISO 8601 date or time like 2026-11-29 "
                             f"or 2026-11-29T08:00 (got {text[:_TEXT_MAX]!r})")
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise TimeInputError(f"{what}: not an ISO 8601 date or time: {value!r} (e.g. "
                             "2026-11-29 or 2026-11-29T08:00, read in "
                             f"{getattr(tz, 'key', tz)}, or with an offset like +08:00)"
                             ) from None
    return parsed.replace(tzinfo=tz) if parsed.tzinfo is None else parsed


_TEXT_MAX = 64
