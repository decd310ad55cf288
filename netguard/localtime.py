"""The operators' local time zone: named in the config, checked once, used for display
and for schedules written in wall-clock time.

netguard stores and compares UTC instants; a zone only turns them into what people in
the district read and write ("18:00 Beijing time").
"""

from __future__ import annotations

import re
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
