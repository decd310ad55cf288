"""Fault-state continuity: which faults the ticket store still holds active.

The probes keep their hysteresis in memory. After a restart, a fault whose ticket is
still open would start as "not active" in the probes, and if the link is healthy by then
no ``FaultCleared`` would ever come: the ticket would stay open forever. So at startup
the daemon seeds the probe service with the faults the store still considers active
(``ProbeService.restore_active``); the normal hysteresis then clears them or keeps them.

Active, for the store, means (:meth:`TicketRepository.active_faults
<netguard.tickets.repository.TicketRepository.active_faults>`, the one place that reads
it):

- a fault ticket that is open or acknowledged and has no ``cleared_at`` (a ticket in its
  resolve hold already got its clear; if the fault recurs the probes raise it again,
  which the ticket service counts as a flap);
- a child fault linked as suppressed under a root ticket, or waiting for one, with the
  upstream it was suppressed by.

This module only translates those records into the probes' :class:`ActiveFault`; it
runs once at startup, so it stays off the hot path.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from netguard.faults import FaultKey, Severity
from netguard.probes.assess import ActiveFault, Level
from netguard.tickets.domain import StoredFault
from netguard.tickets.repository import TicketRepository

if TYPE_CHECKING:
    from netguard.store.db import Store

log = logging.getLogger(__name__)


def _fault(stored: StoredFault) -> ActiveFault | None:
    try:
        key = FaultKey.parse(stored.fault_key)
    except ValueError:
        log.warning("ignoring a stored fault key that does not parse",
                    extra={"fault": stored.fault_key})
        return None
    # Critical conditions (no light, agent unreachable, all ONUs offline) take a target
    # down; until the first poll judges it, that is the closest guess.
    try:
        severity = Severity(stored.severity)
    except ValueError:
        severity = Severity.MINOR
    level: Level = "down" if severity is Severity.CRITICAL else "degraded"
    reason = stored.reasons[0] if stored.reasons else stored.summary
    return ActiveFault(key, suppressed_by=stored.suppressed_by, reason=reason, level=level,
                       severity=severity.value)


async def stored_active_faults(store: Store) -> list[ActiveFault]:
    """The faults whose tickets (or child links) the store still holds active.

    Returns:
        One entry per fault key (a ticket and a child link of the same key cannot both
        be active; if they were, the ticket wins), ordered by key.
    """
    found: dict[FaultKey, ActiveFault] = {}
    for stored in await TicketRepository(store).active_faults():
        fault = _fault(stored)
        if fault is not None:
            found[fault.key] = fault
    return [found[key] for key in sorted(found)]
