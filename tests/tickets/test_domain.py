"""Pure ticket logic: lifecycle table, ids, severities, filters, SQL text, rendering."""

from __future__ import annotations

import csv
import io
import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from netguard.tickets.domain import (
    ALLOWED_ACTIONS,
    TICKET_FIELDS,
    Ticket,
    TicketAction,
    TicketFilter,
    TicketState,
    allowed_actions,
    as_severity,
    format_ref,
    parse_ref,
    raise_severity,
    severity_rank,
    states_allowing,
)
from netguard.tickets.queries import (
    TICKET_COLUMNS,
    export_record,
    list_query,
    sqlite_param,
    ticket_from_row,
)
from netguard.tickets.reader import _to_positional
from netguard.tickets.render import age, csv_row, parse_since, table, write_csv, write_json

NOW = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)


def test_lifecycle_table() -> None:
    assert allowed_actions(TicketState.OPEN) == ["acknowledge", "assign", "comment", "resolve"]
    assert allowed_actions(TicketState.ACKNOWLEDGED) == ["assign", "comment", "resolve"]
    assert allowed_actions(TicketState.RESOLVED) == ["comment", "close", "reopen"]
    assert allowed_actions(TicketState.CLOSED) == ["comment", "reopen"]
    assert states_allowing(TicketAction.REOPEN) == (TicketState.RESOLVED, TicketState.CLOSED)
    assert set(ALLOWED_ACTIONS) == set(TicketState)
    assert [s for s in TicketState if s.active] == [TicketState.OPEN, TicketState.ACKNOWLEDGED]


def test_refs() -> None:
    assert format_ref(123) == "NG-000123"
    assert format_ref(1234567, "OPS") == "OPS-1234567"
    for text in ("NG-000123", "ng-123", "123", " NG-0000123 ", "OPS-123"):
        assert parse_ref(text) == 123
    for bad in ("", "NG-", "NG-0", "NG-12a", "N G-1", "-5", "NG--1", "TOOLONGPREFIX-1"):
        with pytest.raises(ValueError, match="not a ticket id"):
            parse_ref(bad)


def test_refs_with_the_configured_prefix() -> None:
    for text in ("DEMO-000002", "demo-2", "2"):
        assert parse_ref(text, "DEMO") == 2
    with pytest.raises(ValueError, match=r"start with DEMO- \(tickets.id_prefix\), "
                                         r"e.g. DEMO-000002"):
        parse_ref("XYZ-000002", "DEMO")
    with pytest.raises(ValueError, match=r"not a ticket id: 'bogus' \(expected e.g. DEMO-000123"):
        parse_ref("bogus", "DEMO")


def test_severities() -> None:
    assert [severity_rank(s) for s in ("critical", "major", "minor", "warning")] == [0, 1, 2, 3]
    assert raise_severity("minor", 1) == "major"
    assert raise_severity("warning", 2) == "major"
    assert raise_severity("major", 5) == "critical"
    assert raise_severity("minor", -1) == "minor"
    assert as_severity("major") == "major"
    with pytest.raises(ValueError, match="unknown severity 'urgent'"):
        as_severity("urgent")


def test_filter_validation() -> None:
    with pytest.raises(ValueError, match="unknown severity"):
        TicketFilter(severities=("bad",))
    with pytest.raises(ValueError, match="limit"):
        TicketFilter(limit=0)
    with pytest.raises(ValueError, match="timezone-aware"):
        TicketFilter(since=datetime(2026, 1, 1))


def test_default_listing_uses_the_queue_index_predicate_and_order() -> None:
    sql, params = list_query(TicketFilter(), NOW)
    assert "WHERE state <> 'closed' ORDER BY severity_rank, opened_at, id LIMIT :limit" in sql
    assert params == {"limit": 50}
    sql, params = list_query(TicketFilter(states=(TicketState.OPEN,), categories=("pon", "x"),
                                          overdue=True, since=NOW, limit=None), NOW)
    assert "state IN (:st0)" in sql
    assert "category IN (:cat0, :cat1)" in sql
    assert "LIMIT" not in sql
    assert params["cat1"] == "x"
    assert params["now"] == NOW


def test_positional_placeholders() -> None:
    text, args = _to_positional("a = :x AND b IN (:y0, :y1) AND c <= :x LIMIT :limit",
                                {"x": 1, "y0": "a", "y1": "b", "limit": 5})
    assert text == "a = $1 AND b IN ($2, $3) AND c <= $1 LIMIT $4"
    assert args == [1, "a", "b", 5]


def _row(stored: object, stored_due: object, state: str = "open") -> tuple[object, ...]:
    return (7, "olt|if:1|down", "fault", "fiber", "olt", "lab", "major", state,
            "olt down", '["a", "b"]', stored, stored, stored, None, None, None, None, stored,
            3, 1, 0, "erin", stored_due)


@pytest.mark.parametrize("form", ["sqlite", "postgresql"])
@pytest.mark.parametrize("micro", [0, 123456])
def test_export_record_equals_ticket_dict(form: str, micro: int) -> None:
    when = datetime(2026, 11, 29, 8, 30, 0, micro, tzinfo=UTC)
    due = NOW - timedelta(seconds=1)
    if form == "sqlite":
        row = _row(sqlite_param(when), sqlite_param(due))
    else:
        row = _row(when.astimezone(UTC), due)
    assert len(row) == len(TICKET_COLUMNS)
    ticket = ticket_from_row(row, prefix="NG", now=NOW)
    assert ticket.overdue
    assert ticket.opened_at == when
    assert export_record(row, prefix="NG", now=NOW) == list(ticket.to_dict().values())
    assert list(ticket.to_dict()) == list(TICKET_FIELDS)
    closed = _row(sqlite_param(when), sqlite_param(due), state="resolved")
    assert export_record(closed, prefix="NG", now=NOW)[-1] is False


def _ticket(ref_id: int, severity: str = "major", **kw: object) -> Ticket:
    row = list(_row(NOW - timedelta(hours=3), NOW + timedelta(hours=1)))
    row[0] = ref_id
    row[6] = severity
    ticket = ticket_from_row(row, prefix="NG", now=NOW)
    return replace(ticket, **kw)  # type: ignore[arg-type]


def test_table_and_age() -> None:
    text = table([_ticket(1, "critical"), _ticket(22, summary="x" * 80, overdue=True)], NOW)
    lines = text.splitlines()
    # The opening time in the given zone (UTC by default), the zone named in its header.
    assert lines[0].split() == ["ID", "SEVERITY", "STATE", "CATEGORY", "WHERE", "OPENED",
                                "(UTC)", "AGE", "SEEN", "ASSIGNEE", "SUMMARY"]
    assert lines[1].split()[:9] == ["NG-000001", "critical", "open", "fiber", "olt@lab",
                                    "2026-11-29", "09:00", "3h", "3"]
    local = table([_ticket(1)], NOW, ZoneInfo("Asia/Shanghai")).splitlines()
    assert "OPENED (Asia/Shanghai)" in local[0]
    assert "2026-11-29 17:00" in local[1]
    assert "open!" in lines[2]  # overdue marker
    assert lines[2].endswith("x" * 59 + "…")
    assert [age(NOW - timedelta(seconds=s), NOW) for s in (5, 300, 7200, 3 * 86400)] == [
        "5s", "5m", "2h", "3d"]


def test_parse_since() -> None:
    assert parse_since("30m", NOW) == NOW - timedelta(minutes=30)
    assert parse_since("2d", NOW) == NOW - timedelta(days=2)
    assert parse_since("1.5h", NOW) == NOW - timedelta(minutes=90)
    assert parse_since("2026-11-29T08:00", NOW) == datetime(2026, 11, 29, 8, tzinfo=UTC)
    assert parse_since("2026-11-29T16:00+08:00", NOW) == datetime(2026, 11, 29, 8, tzinfo=UTC)
    shanghai = ZoneInfo("Asia/Shanghai")
    # Without an offset, a time or a date is wall-clock time in the zone given.
    assert parse_since("2026-11-29T16:00", NOW, shanghai) == datetime(2026, 11, 29, 8,
                                                                      tzinfo=UTC)
    assert parse_since("2026-11-29", NOW, shanghai) == datetime(2026, 11, 28, 16, tzinfo=UTC)
    assert parse_since("2026-11-29T16:00Z", NOW, shanghai) == datetime(2026, 11, 29, 16,
                                                                       tzinfo=UTC)
    with pytest.raises(ValueError, match="--since 'yesterday'"):
        parse_since("yesterday", NOW)
    with pytest.raises(ValueError, match="--since '99999999d'"):
        parse_since("99999999d", NOW)


async def _records(*tickets: Ticket):  # type: ignore[no-untyped-def]
    for t in tickets:
        yield list(t.to_dict().values())


async def test_csv_and_json_streams() -> None:
    out = io.StringIO()
    assert await write_csv(_records(_ticket(1), _ticket(2)), out) == 2
    rows = list(csv.reader(io.StringIO(out.getvalue())))
    assert tuple(rows[0]) == TICKET_FIELDS
    assert rows[1][TICKET_FIELDS.index("reasons")] == "a; b"
    assert rows[1][TICKET_FIELDS.index("cleared_at")] == ""
    assert csv_row(list(_ticket(3).to_dict().values()))[0] == "NG-000003"
    out = io.StringIO()
    assert await write_json(_records(_ticket(1), _ticket(2)), out) == 2
    data = json.loads(out.getvalue())
    assert [d["id"] for d in data] == ["NG-000001", "NG-000002"]
    assert data[0]["reasons"] == ["a", "b"]
    out = io.StringIO()
    assert await write_json(_records(), out) == 0
    assert json.loads(out.getvalue()) == []
