"""Which routes an event takes, and when a message may go out (quiet hours). Pure.

Alertmanager's semantics, flattened: routes are tried in order; the first that matches
takes the event and ends the search unless it has ``continue: true``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, time, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

from netguard.faults import Severity
from netguard.notify.config import QuietHours, RouteMatch, TicketRoute


@dataclass(frozen=True, slots=True)
class RouteFacts:
    """What routes match on, for one ticket or one Alertmanager alert group."""

    source: str  # "ticket" or "alertmanager"
    severity: Severity
    site: str | None = None
    category: str | None = None
    labels: Mapping[str, str] = field(default_factory=dict)


@lru_cache(maxsize=256)
def _pattern(text: str) -> re.Pattern[str]:
    return re.compile(text)


def _label_fits(pattern: str, value: str | None) -> bool:
    if value is None:
        return False
    if pattern.startswith("~"):
        return _pattern(pattern[1:]).fullmatch(value) is not None
    return value == pattern


def matches(match: RouteMatch, facts: RouteFacts) -> bool:
    """Whether every field ``match`` gives fits ``facts``."""
    if match.source is not None and facts.source not in match.source:
        return False
    if match.severity is not None and facts.severity not in match.severity:
        return False
    if match.site is not None and facts.site not in match.site:
        return False
    if match.category is not None and facts.category not in match.category:
        return False
    return all(_label_fits(p, facts.labels.get(name)) for name, p in match.labels.items())


def select_routes(routes: Sequence[TicketRoute], facts: RouteFacts,
                  event: str | None = None) -> list[TicketRoute]:
    """The routes that take an event with ``facts``, in order.

    Args:
        event: The ticket event kind (``opened`` ...); a route that matches but has the
            kind switched off still ends the search (unless it continues) and is left out.
    """
    taken: list[TicketRoute] = []
    for route in routes:
        if not matches(route.match, facts):
            continue
        if event is None or event in route.events:
            taken.append(route)
        if not route.continue_:
            break
    return taken


def _clock(text: str) -> time:
    hours, minutes = text.split(":")
    return time(int(hours), int(minutes))


def quiet_until(quiet: QuietHours | None, now: datetime, tz: ZoneInfo) -> datetime | None:
    """The end of the quiet window ``now`` is in (aware, UTC), or None outside it.

    The window is read in ``tz`` each day, so it follows daylight saving where the zone
    has it; ``start`` after ``end`` spans midnight.
    """
    if quiet is None:
        return None
    local = now.astimezone(tz)
    start, end = _clock(quiet.start), _clock(quiet.end)
    here = local.time().replace(second=0, microsecond=0)
    day = local.date()
    if start < end:
        inside = start <= here < end
        end_day = day
    else:
        inside = here >= start or here < end
        end_day = day + timedelta(days=1) if here >= start else day
    if not inside:
        return None
    until = datetime.combine(end_day, end, tzinfo=tz)
    return until.astimezone(ZoneInfo("UTC"))


def send_after(route: TicketRoute, severity: Severity, now: datetime,
               tz: ZoneInfo) -> datetime:
    """When a message of ``severity`` on ``route`` may go out: now, or the end of the
    route's quiet hours for anything less than critical."""
    if severity is Severity.CRITICAL:
        return now
    return quiet_until(route.quiet_hours, now, tz) or now


__all__ = ["RouteFacts", "matches", "quiet_until", "select_routes", "send_after"]
