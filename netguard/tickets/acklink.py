"""Acknowledging a ticket from the link in a chat message (``/ack/<token>``, kind ``ticket``).

Kept beside :class:`~netguard.tickets.service.TicketService` rather than in it: the link's
nonce must be spent in the same transaction as the acknowledgement (a link works once,
also when it is submitted twice at the same moment), so this writes the nonce row
(``iot_ack_nonce`` with subject ``ticket``) inside the ticket transaction, then lets the
rules decide exactly as an operator's ``tickets ack`` would.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import cast

import sqlalchemy as sa

from netguard.acklinks import AckLinkUsedError
from netguard.clock import Clock, SystemClock
from netguard.errors import InvalidTransitionError, NotFoundError
from netguard.iot.models import AckNonce
from netguard.store.db import Store
from netguard.tickets import policy
from netguard.tickets.config import TicketsConfig
from netguard.tickets.domain import Ticket, TicketAction, TicketState, allowed_actions
from netguard.tickets.models import EVENT, check_lengths, event_row
from netguard.tickets.policy import Transition
from netguard.tickets.repository import TicketRepository, TicketTx
from netguard.tickets.service import TicketService

log = logging.getLogger("netguard.tickets")

VIA = "chat-link"
"""The source recorded in the history of a ticket acknowledged by a link."""

_NONCE = cast(sa.Table, AckNonce.__table__)  # type: ignore[attr-defined]
_SUBJECT = "ticket"


@dataclass(frozen=True, slots=True)
class AckedBy:
    """Who acknowledged a ticket, from its history (for the "already done" page)."""

    actor: str
    at: datetime


class TicketLinkAcks:
    """Reads and acknowledges tickets for the acknowledgement pages.

    Args:
        store: An open :class:`~netguard.store.Store`.
        config: The ``tickets:`` section (id prefix, SLAs).
        clock: The time source.
    """

    def __init__(self, store: Store, config: TicketsConfig, *, clock: Clock | None = None
                 ) -> None:
        self._clock: Clock = clock or SystemClock()
        self._config = config
        self._repo = TicketRepository(store)
        self._service = TicketService(store, config, clock=self._clock)

    def ref(self, ticket_id: int) -> str:
        """The human id of ``ticket_id``."""
        return self._service.ref(ticket_id)

    async def ticket(self, ticket_id: int) -> Ticket:
        """One ticket by primary key.

        Raises:
            NotFoundError: No such ticket.
        """
        return await self._service.get(self.ref(ticket_id))

    async def acked_by(self, ticket_id: int) -> AckedBy | None:
        """The last acknowledgement in the ticket's history, if any."""
        detail = await self._service.detail(self.ref(ticket_id))
        acks = [e for e in detail.events if e.action == "acknowledged"]
        return AckedBy(acks[-1].actor, acks[-1].at) if acks else None

    async def acknowledge(self, ticket_id: int, actor: str, *, nonce: str) -> Ticket:
        """``open -> acknowledged`` for ``actor``, spending the link's ``nonce`` in the
        same transaction; the history records the actor and the source ``chat-link``.

        Raises:
            NotFoundError: No such ticket.
            InvalidTransitionError: The ticket is no longer open (already acknowledged,
                resolved or closed); nothing changed and the nonce is not spent.
            AckLinkUsedError: ``nonce`` was spent before; nothing changed.
        """
        check_lengths(EVENT, actor=actor)
        now = self._clock.now()

        async def work(tx: TicketTx) -> Transition | TicketState | None:
            spent = await tx.conn.execute(sa.select(_NONCE.c.nonce)
                                          .where(_NONCE.c.nonce == nonce))
            if spent.first() is not None:
                raise AckLinkUsedError("this link was already used")
            ticket = await tx.ticket(ticket_id)
            if ticket is None:
                return None
            move = policy.decide_action(TicketAction.ACKNOWLEDGE, ticket, now, self._config)
            if move is None:
                return ticket.state
            await tx.transition(ticket_id, move)
            await tx.log([event_row(ticket_id, now, "acknowledged",
                                    f"acknowledged via {VIA}", actor=actor,
                                    old=move.old.value, new=move.new.value)])
            await tx.conn.execute(sa.insert(_NONCE).values(
                nonce=nonce, alert_id=ticket_id, subject=_SUBJECT, actor=actor[:100],
                used_at=now))
            return move

        def used() -> Exception:
            # The same link submitted twice at once: the nonce's key lets one win.
            return AckLinkUsedError("this link was already used")

        done = await self._repo.transaction(work, now=now, on_conflict=used)
        if done is None:
            raise NotFoundError("ticket", self.ref(ticket_id))
        if isinstance(done, TicketState):
            raise InvalidTransitionError(self.ref(ticket_id), done.value,
                                         TicketAction.ACKNOWLEDGE.value, allowed_actions(done))
        log.info("ticket acknowledged by link", extra={"ticket": self.ref(ticket_id),
                                                      "actor": actor})
        return await self.ticket(ticket_id)


__all__ = ["VIA", "AckedBy", "TicketLinkAcks"]
