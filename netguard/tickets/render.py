"""Ticket output for operators: plain tables, the history view, CSV and JSON streams.

Plain text (no rich) keeps ``netguard tickets list`` fast to start and easy to grep. The
JSON and CSV field names are :data:`~netguard.tickets.domain.TICKET_FIELDS` and are stable.
"""

from __future__ import annotations

import csv
import json
import re
from collections.abc import AsyncIterator, Iterable
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Any, TextIO

from netguard.clock import as_utc
from netguard.localtime import TimeInputError, iso_local, parse_wall
from netguard.textwidth import display_width, pad
from netguard.tickets.domain import TICKET_FIELDS, Ticket, TicketDetail

_DURATION = re.compile(r"^(\d+(?:\.\d+)?)\s*([smhdw])$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_since(text: str, now: datetime, tz: tzinfo = UTC) -> datetime:
    """``--since``: a duration back from now (``30m``, ``6h``, ``2d``) or an ISO date or
    time.

    A date, or a time without an offset, is wall-clock time in ``tz`` (the CLI passes
    ``display.timezone``), as :func:`netguard.localtime.parse_wall` reads it.

    Raises:
        ValueError: Neither form.
    """
    text = text.strip()
    match = _DURATION.match(text)
    if match:
        try:
            return now - timedelta(seconds=float(match.group(1)) * _UNITS[match.group(2)])
        except OverflowError:
            raise ValueError(f"--since {text!r}: reaches back before year 1") from None
    try:
        return as_utc(parse_wall(text, tz, "--since"))
    except TimeInputError:
        raise ValueError(f"--since {text[:64]!r}: expected a duration like 30m, 6h, 2d or "
                         "an ISO date or time like 2026-11-29T08:00 (read in "
                         f"{getattr(tz, 'key', 'UTC')} without an offset)") from None


def age(since: datetime, now: datetime) -> str:
    """A compact age: ``45s``, ``12m``, ``3h``, ``5d``."""
    seconds = max(0, int((now - since).total_seconds()))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m"
    if seconds < 86400:
        return f"{seconds // 3600}h"
    return f"{seconds // 86400}d"


_COLUMNS = ("ID", "SEVERITY", "STATE", "CATEGORY", "WHERE", "OPENED", "AGE", "SEEN",
            "ASSIGNEE", "SUMMARY")


def zone_name(tz: tzinfo) -> str:
    """The IANA name of ``tz`` (``Asia/Shanghai``), ``UTC`` for the UTC singleton."""
    return str(getattr(tz, "key", None) or tz.tzname(None) or "UTC")


def _cells(ticket: Ticket, now: datetime, tz: tzinfo) -> tuple[str, ...]:
    where = ticket.target or ticket.site or "-"
    if ticket.site and ticket.target:
        where = f"{ticket.target}@{ticket.site}"
    state = ticket.state.value + ("!" if ticket.overdue else "")
    summary = ticket.summary if len(ticket.summary) <= 60 else ticket.summary[:59] + "…"
    opened = as_utc(ticket.opened_at).astimezone(tz).strftime("%Y-%m-%d %H:%M")
    return (ticket.ref, ticket.severity, state, ticket.category, where, opened,
            age(ticket.opened_at, now), str(ticket.occurrences), ticket.assignee or "-",
            summary)


def table(tickets: Iterable[Ticket], now: datetime, tz: tzinfo = UTC) -> str:
    """A fixed-width table; ``!`` after the state marks an overdue ticket. The opening
    time is wall-clock time in ``tz``, named once in its header."""
    header = tuple(f"OPENED ({zone_name(tz)})" if c == "OPENED" else c for c in _COLUMNS)
    rows = [header, *(_cells(t, now, tz) for t in tickets)]
    # Display width, not len(): a Chinese site or summary takes two columns a character.
    widths = [max(display_width(r[i]) for r in rows) for i in range(len(_COLUMNS) - 1)]
    lines = []
    for row in rows:
        cells = [pad(c, w) for c, w in zip(row, widths, strict=False)]
        lines.append("  ".join([*cells, row[-1]]).rstrip())
    return "\n".join(lines)


def detail(item: TicketDetail, now: datetime, tz: tzinfo = UTC) -> str:
    """The ``show`` view: fields, children, then the full history; times are wall-clock
    times in ``tz``, named once (``times:``)."""

    def _when(value: datetime | None) -> str:
        return "-" if value is None else as_utc(value).astimezone(tz).strftime(
            "%Y-%m-%d %H:%M:%S")

    t = item.ticket
    lines = [
        f"{t.ref}  {t.severity.upper()}  {t.state.value}"
        + ("  OVERDUE" if t.overdue else ""),
        f"  times:       {zone_name(tz)}",
        f"  summary:     {t.summary}",
        f"  category:    {t.category}",
        f"  target:      {t.target or '-'}",
        f"  site:        {t.site or '-'}",
        f"  fault key:   {t.fault_key or '(manual)'}",
        f"  assignee:    {t.assignee or '-'}",
        f"  opened:      {_when(t.opened_at)} ({age(t.opened_at, now)} ago)",
        f"  first seen:  {_when(t.first_seen)}",
        f"  last seen:   {_when(t.last_seen)}",
        f"  sla due:     {_when(t.sla_due)}",
        f"  occurrences: {t.occurrences}   flaps: {t.flaps}   reopens: {t.reopens}",
    ]
    if t.cleared_at:
        # Only an active ticket is still waiting out the hold; a resolved one is done.
        pending = " (resolving after the hold)" if t.state.active else ""
        lines.append(f"  cleared:     {_when(t.cleared_at)}{pending}")
    if t.resolved_at:
        lines.append(f"  resolved:    {_when(t.resolved_at)}")
    if t.closed_at:
        lines.append(f"  closed:      {_when(t.closed_at)}")
    for reason in t.reasons:
        lines.append(f"  reason:      {reason}")
    if item.children:
        lines.append(f"children ({len(item.children)}):")
        for c in item.children:
            extra = f" -> {c.promoted_to}" if c.promoted_to else ""
            lines.append(f"  {c.fault_key}  {c.state}{extra}  {c.summary}")
    lines.append("history:")
    for e in item.events:
        change = (f"{e.old_state or '-'} -> {e.new_state}"
                  if e.new_state and e.old_state != e.new_state else "")
        text = "  ".join(p for p in (_when(e.at), e.actor, e.action, change, e.message) if p)
        lines.append(f"  {text}")
    return "\n".join(lines)


def csv_row(record: list[Any], tz: tzinfo = UTC) -> list[Any]:
    """Export values as a CSV row: reasons joined with ``; ``, times as ISO 8601 in ``tz``
    with its offset, ``None`` as empty."""
    values = list(record)
    values[_REASONS] = "; ".join(values[_REASONS])
    for i in _TIMES:
        values[i] = iso_local(values[i], tz)
    return ["" if v is None else v for v in values]


_REASONS = TICKET_FIELDS.index("reasons")
_TIMES = tuple(TICKET_FIELDS.index(f) for f in (
    "first_seen", "last_seen", "opened_at", "cleared_at", "acknowledged_at", "resolved_at",
    "closed_at", "updated_at", "sla_due"))


async def write_csv(records: AsyncIterator[list[Any]], out: TextIO, tz: tzinfo = UTC) -> int:
    """Stream export values as CSV with a header row (times in ``tz``, with their offset);
    returns how many were written."""
    writer = csv.writer(out)
    writer.writerow(TICKET_FIELDS)
    count = 0
    async for record in records:
        writer.writerow(csv_row(record, tz))
        count += 1
    return count


async def write_json(records: AsyncIterator[list[Any]], out: TextIO) -> int:
    """Stream export values as one JSON array, one ticket per line; returns the count."""
    out.write("[")
    count = 0
    async for record in records:
        out.write(",\n" if count else "\n")
        out.write(json.dumps(dict(zip(TICKET_FIELDS, record, strict=True)),
                             ensure_ascii=False))
        count += 1
    out.write("\n]\n" if count else "]\n")
    return count
