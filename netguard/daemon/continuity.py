"""Fault-state continuity: which faults the ticket store still holds active.

The probes keep their hysteresis in memory. After a restart, a fault whose ticket is
still open would start as "not active" in the probes, and if the link is healthy by then
no ``FaultCleared`` would ever come: the ticket would stay open forever. So at startup
the daemon seeds the probe service with the faults the store still considers active
(``ProbeService.restore_active``); the normal hysteresis then clears them or keeps them.

Active, for the store, means:

- a fault ticket that is open or acknowledged and has no ``cleared_at`` (a ticket in its
  resolve hold already got its clear; if the fault recurs the probes raise it again,
  which the ticket service counts as a flap);
- a child fault linked as suppressed under a root ticket, or waiting for one
  (``ticket_child.state = 'active'``), with the upstream it was suppressed by.

A read-only query over the tickets' tables (the ticket service has no public query for
this); it runs once at startup, so it stays off the hot path.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any, cast

import sqlalchemy as sa

from netguard.faults import FaultKey
from netguard.probes.assess import ActiveFault, Level
from netguard.tickets.models import ACTIVE_STATES, ChildFaultRow, TicketRow

if TYPE_CHECKING:
    from netguard.store.db import Store

log = logging.getLogger(__name__)

_TICKET = cast(sa.Table, TicketRow.__table__)  # type: ignore[attr-defined]
_CHILD = cast(sa.Table, ChildFaultRow.__table__)  # type: ignore[attr-defined]
_SEVERITIES = ("critical", "major", "minor", "warning")


def _first_reason(reasons: Any, summary: str) -> str:
    if isinstance(reasons, list) and reasons:
        return str(reasons[0])
    return summary


def _fault(key_text: str, *, suppressed_by: str | None, reasons: Any, summary: str,
           severity: str) -> ActiveFault | None:
    try:
        key = FaultKey.parse(key_text)
    except ValueError:
        log.warning("ignoring a stored fault key that does not parse",
                    extra={"fault": key_text})
        return None
    # Critical conditions (no light, agent unreachable, all ONUs offline) take a target
    # down; until the first poll judges it, that is the closest guess.
    level: Level = "down" if severity == "critical" else "degraded"
    return ActiveFault(key, suppressed_by=suppressed_by,
                       reason=_first_reason(reasons, summary), level=level,
                       severity=severity if severity in _SEVERITIES  # type: ignore[arg-type]
                       else "minor")


async def stored_active_faults(store: Store) -> list[ActiveFault]:
    """The faults whose tickets (or child links) the store still holds active.

    Returns:
        One entry per fault key (a ticket and a child link of the same key cannot both
        be active; if they were, the ticket wins), ordered by key.
    """
    tickets = (sa.select(_TICKET.c.fault_key, _TICKET.c.reasons, _TICKET.c.summary,
                         _TICKET.c.severity)
               .where(_TICKET.c.source == "fault", _TICKET.c.fault_key.is_not(None),
                      _TICKET.c.state.in_(ACTIVE_STATES), _TICKET.c.cleared_at.is_(None)))
    children = (sa.select(_CHILD.c.fault_key, _CHILD.c.upstream_target, _CHILD.c.reasons,
                          _CHILD.c.summary, _CHILD.c.severity)
                .where(_CHILD.c.state == "active"))
    found: dict[FaultKey, ActiveFault] = {}
    async with store.engine.connect() as conn:
        for row in (await conn.execute(children)).all():
            fault = _fault(row.fault_key, suppressed_by=row.upstream_target,
                           reasons=row.reasons, summary=row.summary, severity=row.severity)
            if fault is not None:
                found[fault.key] = fault
        for ticket in (await conn.execute(tickets)).all():
            fault = _fault(ticket.fault_key, suppressed_by=None, reasons=ticket.reasons,
                           summary=ticket.summary, severity=ticket.severity)
            if fault is not None:
                found[fault.key] = fault
    return [found[key] for key in sorted(found)]
