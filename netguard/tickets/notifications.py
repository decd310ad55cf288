"""The chat notifications sent for a ticket, with their delivery state (``tickets show``).

Ticket messages are rows of the shared outbox (``iot_outbox``, subject ``ticket``,
``alert_id`` = the ticket's id, ``community`` = the route's name), one per notifier; this
reads them back, oldest first.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

import sqlalchemy as sa

from netguard.clock import as_utc
from netguard.iot.models import OutboxMessage
from netguard.store.db import Store

_OUTBOX = cast(sa.Table, OutboxMessage.__table__)  # type: ignore[attr-defined]
_SUBJECT = "ticket"
# A ticket repeated every 4 hours for a month has ~200 rows per route; more than this is
# a runaway loop, and the newest rows are what an operator needs to see.
LIMIT = 500


@dataclass(frozen=True, slots=True)
class SentNotification:
    """One ticket message through one notifier.

    Attributes:
        created_at: When it was queued.
        route: The ``notifications.routes`` entry that sent it.
        notifier: The ``iot.notifiers`` entry that delivers it.
        reason: What it said (``opened``, ``update``, ``resolved``, ``repeat`` ...).
        state: ``pending``, ``delivered`` or ``failed`` (given up; a dead letter).
        attempts: Delivery attempts so far.
        delivered_at: When the chat accepted it.
        next_attempt_at: When a pending message is tried (again).
        last_error: Why the last attempt failed.
    """

    created_at: datetime
    route: str
    notifier: str
    reason: str
    state: str
    attempts: int
    delivered_at: datetime | None
    next_attempt_at: datetime
    last_error: str | None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready fields (ISO 8601 times in UTC)."""
        return {"created_at": self.created_at.isoformat(), "route": self.route,
                "notifier": self.notifier, "reason": self.reason, "state": self.state,
                "attempts": self.attempts,
                "delivered_at": None if self.delivered_at is None
                else self.delivered_at.isoformat(),
                "next_attempt_at": self.next_attempt_at.isoformat(),
                "last_error": self.last_error}


def _time(value: Any) -> datetime:
    return as_utc(value if isinstance(value, datetime) else datetime.fromisoformat(value))


async def ticket_notifications(store: Store, ticket_id: int) -> list[SentNotification]:
    """The notifications queued for ticket ``ticket_id``, oldest first (at most
    :data:`LIMIT`, the newest)."""
    o = _OUTBOX.c
    query = (sa.select(o.created_at, o.community, o.notifier, o.reason, o.status, o.attempts,
                       o.delivered_at, o.next_attempt_at, o.last_error)
             .where(o.subject == _SUBJECT, o.alert_id == ticket_id)
             .order_by(o.created_at.desc(), o.id.desc()).limit(LIMIT))
    async with store.engine.connect() as conn:
        rows = (await conn.execute(query)).all()
    return [SentNotification(
        created_at=_time(r.created_at), route=r.community, notifier=r.notifier,
        reason=r.reason, state=r.status, attempts=int(r.attempts),
        delivered_at=None if r.delivered_at is None else _time(r.delivered_at),
        next_attempt_at=_time(r.next_attempt_at), last_error=r.last_error)
        for r in reversed(rows)]


__all__ = ["LIMIT", "SentNotification", "ticket_notifications"]
