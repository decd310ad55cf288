"""Route selection (first match, continue, event switches) and quiet hours: pure logic."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest
from pydantic import ValidationError

from netguard.faults import Severity
from netguard.notify.config import NotificationsConfig, QuietHours, TicketRoute
from netguard.notify.routing import RouteFacts, quiet_until, select_routes, send_after

SHANGHAI = ZoneInfo("Asia/Shanghai")


def _routes(*raw: dict[str, object]) -> list[TicketRoute]:
    return NotificationsConfig.model_validate({"routes": list(raw)}).routes


ROUTES = _routes(
    {"name": "core", "match": {"severity": ["critical"], "labels": {"tier": "~core|agg"}},
     "notifiers": ["a"], "continue": True},
    {"name": "hotels", "match": {"site": ["hotel-a"]}, "notifiers": ["b"],
     "events": ["opened", "resolved"]},
    {"name": "rest", "notifiers": ["c"]},
)


def _facts(severity: Severity = Severity.MAJOR, site: str | None = None,
           **labels: str) -> RouteFacts:
    return RouteFacts(source="ticket", severity=severity, site=site, category="fiber",
                      labels=labels)


def test_first_match_ends_the_search_unless_the_route_continues() -> None:
    names = [r.name for r in select_routes(ROUTES, _facts(Severity.CRITICAL, tier="core"))]
    assert names == ["core", "rest"]
    assert [r.name for r in select_routes(ROUTES, _facts(site="hotel-a"))] == ["hotels"]
    assert [r.name for r in select_routes(ROUTES, _facts())] == ["rest"]


def test_a_label_regex_matches_the_whole_value_and_a_missing_label_never() -> None:
    assert [r.name for r in select_routes(ROUTES, _facts(Severity.CRITICAL, tier="core2"))
            ] == ["rest"]
    assert [r.name for r in select_routes(ROUTES, _facts(Severity.CRITICAL))] == ["rest"]


def test_an_event_switched_off_stops_the_search_without_a_message() -> None:
    assert select_routes(ROUTES, _facts(site="hotel-a"), "child") == []
    assert [r.name for r in select_routes(ROUTES, _facts(site="hotel-a"), "resolved")
            ] == ["hotels"]


def test_quiet_hours_span_midnight_in_the_local_zone() -> None:
    quiet = QuietHours(start="23:00", end="07:00")
    # 23:30 in Shanghai is 15:30 UTC; the window ends at 07:00 local, 23:00 UTC.
    at = datetime(2026, 3, 5, 15, 30, tzinfo=UTC)
    assert quiet_until(quiet, at, SHANGHAI) == datetime(2026, 3, 5, 23, 0, tzinfo=UTC)
    # 06:59 local (22:59 UTC the day before) is still inside; 07:00 is not.
    assert quiet_until(quiet, datetime(2026, 3, 5, 22, 59, tzinfo=UTC), SHANGHAI) == \
        datetime(2026, 3, 5, 23, 0, tzinfo=UTC)
    assert quiet_until(quiet, datetime(2026, 3, 5, 23, 0, tzinfo=UTC), SHANGHAI) is None
    assert quiet_until(quiet, datetime(2026, 3, 5, 4, 0, tzinfo=UTC), SHANGHAI) is None


def test_only_critical_messages_go_out_in_quiet_hours() -> None:
    route = _routes({"name": "r", "notifiers": ["a"],
                     "quiet_hours": {"start": "23:00", "end": "07:00"}})[0]
    at = datetime(2026, 3, 5, 15, 30, tzinfo=UTC)
    assert send_after(route, Severity.CRITICAL, at, SHANGHAI) == at
    assert send_after(route, Severity.MAJOR, at, SHANGHAI) == \
        datetime(2026, 3, 5, 23, 0, tzinfo=UTC)


@pytest.mark.parametrize(("raw", "problem"), [
    ({"routes": [{"name": "a", "notifiers": ["x"]}, {"name": "a", "notifiers": ["y"]}]},
     "unique"),
    ({"routes": [{"name": "a", "notifiers": ["x"], "escalate": {"route": "nope"}}]},
     "unknown route"),
    ({"routes": [{"name": "a", "notifiers": ["x"],
                  "match": {"labels": {"tier": "~("}}}]}, "regular expression"),
    ({"routes": [{"name": "a", "notifiers": ["x"],
                  "quiet_hours": {"start": "25:00", "end": "07:00"}}]}, "time of day"),
    ({"routes": [{"name": "a/b", "notifiers": ["x"]}]}, "route name"),
    ({"alertmanager": {"enabled": True}}, "token"),
])
def test_bad_routes_are_refused_with_the_reason(raw: dict[str, object], problem: str) -> None:
    with pytest.raises(ValidationError, match=problem):
        NotificationsConfig.model_validate(raw)
