"""What a live view of the ticket store reads: tickets by phase, and the event feed.

Two small reads over the ticket tables for :meth:`TicketService.tally` and
:meth:`TicketService.news` (the demo's view polls them every few seconds). They sit
beside :mod:`.repository`, which owns the tables' writes and the rules' reads.
"""

from __future__ import annotations

from collections.abc import Callable

import sqlalchemy as sa

from netguard.store.db import Store
from netguard.tickets.domain import ACTIVE_STATES, TicketNews, TicketTally
from netguard.tickets.models import CHILD, EVENT, TICKET

_ACTIVE = tuple(s.value for s in ACTIVE_STATES)
_BY_STATE = sa.select(TICKET.c.state, sa.func.count()).group_by(TICKET.c.state)
_CHILDREN = (sa.select(sa.func.count()).select_from(
    CHILD.join(TICKET, TICKET.c.id == CHILD.c.ticket_id))
    .where(TICKET.c.state.in_(_ACTIVE)))


class TicketFeed:
    """Reads the ticket tables for a live view.

    Args:
        store: An open :class:`~netguard.store.Store`.
    """

    def __init__(self, store: Store) -> None:
        self._store = store

    async def tally(self) -> TicketTally:
        """Tickets by phase, and the child faults under the active ones."""
        async with self._store.engine.connect() as conn:
            states = (await conn.execute(_BY_STATE)).all()
            children = int((await conn.execute(_CHILDREN)).scalar_one())
        active = sum(int(n) for state, n in states if state in _ACTIVE)
        done = sum(int(n) for state, n in states if state not in _ACTIVE)
        return TicketTally(active=active, done=done, children=children)

    async def news(self, after: int, ref: Callable[[int], str]) -> list[TicketNews]:
        """Ticket events with an id above ``after``, oldest first (``ref`` formats the
        ticket ids)."""
        query = (sa.select(EVENT.c.id, EVENT.c.ticket_id, EVENT.c.action, EVENT.c.message,
                           TICKET.c.summary)
                 .join(TICKET, TICKET.c.id == EVENT.c.ticket_id)
                 .where(EVENT.c.id > after).order_by(EVENT.c.id))
        async with self._store.engine.connect() as conn:
            rows = (await conn.execute(query)).all()
        return [TicketNews(int(r.id), ref(int(r.ticket_id)), str(r.action),
                           str(r.message or ""), str(r.summary or "")) for r in rows]
