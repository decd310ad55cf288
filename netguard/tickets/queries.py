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
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any, get_type_hints

from netguard.tickets.domain import (
    ACTIVE_SQL,
    ACTIVE_STATES,
    QUEUE_SQL,
    TICKET_COLUMNS,
    ChildFault,
    Severity,
    Ticket,
    TicketEvent,
    TicketFilter,
    TicketState,
    format_ref,
)

__all__ = ["ACTIVE_SQL", "QUEUE_SQL", "TICKET_COLUMNS"]  # also spelled from here

_ACTIVE_VALUES = frozenset(s.value for s in ACTIVE_STATES)
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


def _ticket_converters() -> tuple[Callable[[Any], Any], ...]:
    """How to turn each stored column into its :class:`Ticket` field, by the field's type."""
    hints = get_type_hints(Ticket)
    by_type: dict[Any, Callable[[Any], Any]] = {
        datetime: parse_time, datetime | None: _opt_time, int: int,
        tuple[str, ...]: _reasons, TicketState: TicketState, Severity: Severity,
    }
    return tuple(by_type.get(hints[name], _same) for name in TICKET_COLUMNS)


def _same(value: Any) -> Any:
    return value


_CONVERT = _ticket_converters()


def ticket_from_row(row: Sequence[Any], *, prefix: str, now: datetime) -> Ticket:
    """Build a :class:`Ticket` from a row in :data:`TICKET_COLUMNS` order."""
    values = {name: convert(value)
              for name, convert, value in zip(TICKET_COLUMNS, _CONVERT, row, strict=True)}
    state: TicketState = values["state"]
    return Ticket(**values, ref=format_ref(values["id"], prefix),
                  overdue=state.active and values["sla_due"] <= now)


def child_from_row(row: Any, ref: Callable[[int], str]) -> ChildFault:
    """A ``ticket_child`` row as a :class:`ChildFault` (``ref`` formats ticket ids)."""
    return ChildFault(
        fault_key=row.fault_key, target=row.target, upstream_target=row.upstream_target,
        state=row.state, severity=row.severity, summary=row.summary,
        first_seen=parse_time(row.first_seen), last_seen=parse_time(row.last_seen),
        ended_at=_opt_time(row.ended_at), occurrences=int(row.occurrences),
        promoted_to=None if row.promoted_ticket_id is None else ref(row.promoted_ticket_id))


def event_from_row(row: Any) -> TicketEvent:
    """A ``ticket_event`` row as a :class:`TicketEvent`."""
    return TicketEvent(at=parse_time(row.at), actor=row.actor, action=row.action,
                       old_state=row.old_state, new_state=row.new_state, message=row.message)


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


def _export_list(value: Any) -> list[str]:
    return list(_reasons(value))


def _export_converters() -> tuple[Callable[[Any], Any], ...]:
    """:func:`_ticket_converters` for export values: times as ISO text, tuples as lists."""
    as_export: dict[Callable[[Any], Any], Callable[[Any], Any]] = {
        parse_time: _iso, _opt_time: _iso, _reasons: _export_list,
        TicketState: _same, Severity: _same}
    return tuple(as_export.get(convert, convert) for convert in _CONVERT)


_EXPORT = _export_converters()
_STATE = TICKET_COLUMNS.index("state")
_DUE = TICKET_COLUMNS.index("sla_due")


def export_record(row: Sequence[Any], *, prefix: str, now: datetime) -> list[Any]:
    """A row in :data:`TICKET_COLUMNS` order as export values in ``TICKET_FIELDS`` order.

    The same values as ``ticket_from_row(row).to_dict()``, without building the ticket
    (exports stream every row, so this is their hot path).
    """
    values = [convert(value) for convert, value in zip(_EXPORT, row, strict=True)]
    values[0] = format_ref(values[0], prefix)
    values.append(row[_STATE] in _ACTIVE_VALUES and parse_time(row[_DUE]) <= now)
    return values
