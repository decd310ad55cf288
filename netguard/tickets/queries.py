"""The SQL of ticket listings, shared by the service and the fast CLI reader.

Listings are plain parameterised SQL (``:name`` placeholders) so that the same text runs
through SQLAlchemy in the daemon and straight through ``sqlite3``/``asyncpg`` in the CLI,
which must show its first page in well under half a second including start-up.

The default listing ("not closed, most severe then oldest first") uses exactly the
predicate and order of the partial index ``ix_ticket_queue``, so the database walks the
index and stops after ``LIMIT`` rows.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from netguard.tickets.domain import (
    Ticket,
    TicketFilter,
    TicketState,
    format_ref,
)

ACTIVE_SQL = "state IN ('open', 'acknowledged')"
QUEUE_SQL = "state <> 'closed'"

TICKET_COLUMNS: tuple[str, ...] = (
    "id", "fault_key", "source", "category", "target", "site", "severity", "state",
    "summary", "reasons", "first_seen", "last_seen", "opened_at", "cleared_at",
    "acknowledged_at", "resolved_at", "closed_at", "updated_at", "occurrences", "flaps",
    "reopens", "assignee", "sla_due",
)
SELECT_TICKETS = f"SELECT {', '.join(TICKET_COLUMNS)} FROM ticket"  # noqa: S608 (constants)
ORDER_SQL = "ORDER BY severity_rank, opened_at, id"


def _in(column: str, name: str, values: Sequence[str], params: dict[str, Any]) -> str:
    names = []
    for i, value in enumerate(values):
        params[f"{name}{i}"] = value
        names.append(f":{name}{i}")
    return f"{column} IN ({', '.join(names)})"


def list_query(flt: TicketFilter, now: datetime) -> tuple[str, dict[str, Any]]:
    """The SQL and parameters that list the tickets ``flt`` selects, most urgent first.

    Datetime parameters are timezone-aware UTC; executors that bypass SQLAlchemy convert
    them to the database's storage form (see :func:`sqlite_param`).
    """
    where: list[str] = []
    params: dict[str, Any] = {}
    if flt.states is None:
        where.append(QUEUE_SQL)
    else:
        where.append(_in("state", "st", [s.value for s in flt.states], params))
    for column, name, values in (("category", "cat", flt.categories),
                                 ("severity", "sev", flt.severities),
                                 ("site", "site", flt.sites),
                                 ("target", "tgt", flt.targets),
                                 ("assignee", "asg", flt.assignees)):
        if values:
            where.append(_in(column, name, values, params))
    if flt.since is not None:
        where.append("opened_at >= :since")
        params["since"] = flt.since.astimezone(UTC)
    if flt.overdue:
        where.append(f"{ACTIVE_SQL} AND sla_due <= :now")
        params["now"] = now.astimezone(UTC)
    sql = f"{SELECT_TICKETS} WHERE {' AND '.join(where)} {ORDER_SQL}"
    if flt.limit is not None:
        sql += " LIMIT :limit"
        params["limit"] = flt.limit
    return sql, params


COUNTS_SQL = (
    "SELECT category, severity, COUNT(*), "  # noqa: S608 (constants only)
    "SUM(CASE WHEN sla_due <= :now THEN 1 ELSE 0 END) "
    f"FROM ticket WHERE {ACTIVE_SQL} GROUP BY category, severity"
)


def sqlite_param(value: Any) -> Any:
    """A parameter in the form SQLAlchemy stores it in SQLite (UTC wall time, no offset)."""
    if isinstance(value, datetime):
        return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")
    return value


def parse_time(value: Any) -> datetime:
    """A stored timestamp as an aware UTC datetime (SQLite gives text, PostgreSQL aware)."""
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    assert isinstance(value, datetime), f"not a timestamp: {value!r}"
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def _opt_time(value: Any) -> datetime | None:
    return None if value is None else parse_time(value)


def _reasons(value: Any) -> tuple[str, ...]:
    if isinstance(value, str):
        value = json.loads(value)
    return tuple(str(v) for v in value or ())


def ticket_from_row(row: Sequence[Any], *, prefix: str, now: datetime) -> Ticket:
    """Build a :class:`Ticket` from a row in :data:`TICKET_COLUMNS` order."""
    (id_, fault_key, source, category, target, site, severity, state, summary, reasons,
     first_seen, last_seen, opened_at, cleared_at, acknowledged_at, resolved_at, closed_at,
     updated_at, occurrences, flaps, reopens, assignee, sla_due) = row
    ticket_state = TicketState(state)
    due = parse_time(sla_due)
    return Ticket(
        id=int(id_), ref=format_ref(int(id_), prefix), fault_key=fault_key, source=source,
        category=category, target=target, site=site, severity=severity, state=ticket_state,
        summary=summary, reasons=_reasons(reasons), first_seen=parse_time(first_seen),
        last_seen=parse_time(last_seen), opened_at=parse_time(opened_at),
        cleared_at=_opt_time(cleared_at), acknowledged_at=_opt_time(acknowledged_at),
        resolved_at=_opt_time(resolved_at), closed_at=_opt_time(closed_at),
        updated_at=parse_time(updated_at), occurrences=int(occurrences), flaps=int(flaps),
        reopens=int(reopens), assignee=assignee, sla_due=due,
        overdue=ticket_state.active and due <= now,
    )


def _iso(value: Any) -> str | None:
    """A stored timestamp as ISO 8601 UTC text, equal to ``datetime.isoformat()``."""
    if value is None:
        return None
    if isinstance(value, str) and len(value) == 26 and value[10] == " ":
        # SQLAlchemy's SQLite form, 'YYYY-MM-DD HH:MM:SS.ffffff' in UTC: rewritten as text
        # because parsing 8 timestamps per row dominated a 100k-row export.
        if value.endswith(".000000"):
            value = value[:19]
        return f"{value[:10]}T{value[11:]}+00:00"
    return parse_time(value).isoformat()


def export_record(row: Sequence[Any], *, prefix: str, now: datetime) -> list[Any]:
    """A row in :data:`TICKET_COLUMNS` order as export values in ``TICKET_FIELDS`` order.

    The same values as ``ticket_from_row(row).to_dict()``, without building the ticket
    (exports stream every row, so this is their hot path).
    """
    (id_, fault_key, source, category, target, site, severity, state, summary, reasons,
     first_seen, last_seen, opened_at, cleared_at, acknowledged_at, resolved_at, closed_at,
     updated_at, occurrences, flaps, reopens, assignee, sla_due) = row
    due = _iso(sla_due)
    assert due is not None
    overdue = state in ("open", "acknowledged") and parse_time(sla_due) <= now
    return [format_ref(int(id_), prefix), fault_key, source, category, target, site,
            severity, state, summary, list(_reasons(reasons)), _iso(first_seen),
            _iso(last_seen), _iso(opened_at), _iso(cleared_at), _iso(acknowledged_at),
            _iso(resolved_at), _iso(closed_at), _iso(updated_at), int(occurrences),
            int(flaps), int(reopens), assignee, due, overdue]
