"""What the CLI needs of ticket notifications: the messages a ticket sent, and a sample.

``tickets show`` lists each notification of a ticket with its delivery state
(:func:`ticket_notifications`); ``tickets notify-test ROUTE`` queues a sample message on a
route (:func:`queue_sample`), which the running daemon's outbox delivers.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlmodel import col, select

from netguard.clock import as_utc
from netguard.errors import InvalidInputError
from netguard.iot.models import OutboxMessage
from netguard.iot.notifiers.base import Notification
from netguard.notify.config import NotificationsConfig
from netguard.notify.enqueue import RoutedMessage, enqueue_routed
from netguard.notify.texts import TicketFacts, TicketTexts
from netguard.store.db import Store

# The sample's ticket id: no real ticket has it (ids start at 1).
SAMPLE_TICKET_ID = 0
# Fullwidth punctuation as escapes: colon, left and right bracket.
_SAMPLE_SUMMARY = {"zh-CN": "测试消息\uff1a专线中断\uff08示例\uff09",
                   "en": "test message: uplink down (sample)"}


@dataclass(frozen=True, slots=True)
class SentNotification:
    """One outbox row of a ticket: one message on one notifier.

    Attributes:
        route: The route it went to (the outbox's ``community`` column).
        event: ``opened``, ``child``, ``severity``, ``overdue``, ``reopened``,
            ``resolved``, ``repeat``, ``escalated`` (``test`` for a sample).
        status: ``pending``, ``delivered`` or ``failed`` (a dead letter).
        title: The message's first line, without its markdown marks.
    """

    id: int
    route: str
    notifier: str
    event: str
    status: str
    attempts: int
    created_at: datetime
    next_attempt_at: datetime
    delivered_at: datetime | None
    last_error: str | None
    title: str


def _title(body: str) -> str:
    try:
        text = Notification.from_json(body).text or ""
    except (ValueError, KeyError, TypeError):
        return ""
    lines = (line.lstrip("#").strip() for line in text.split("\n"))
    return next((line for line in lines if line), "")


async def ticket_notifications(store: Store, ticket_id: int) -> list[SentNotification]:
    """The notifications queued for ticket ``ticket_id``, oldest first."""
    async with store.session() as session:
        rows = (await session.exec(
            select(OutboxMessage)
            .where(col(OutboxMessage.subject) == "ticket",
                   col(OutboxMessage.alert_id) == ticket_id)
            .order_by(col(OutboxMessage.id)))).all()
    return [SentNotification(
        id=int(r.id or 0), route=r.community, notifier=r.notifier, event=r.reason,
        status=r.status, attempts=r.attempts, created_at=as_utc(r.created_at),
        next_attempt_at=as_utc(r.next_attempt_at),
        delivered_at=None if r.delivered_at is None else as_utc(r.delivered_at),
        last_error=r.last_error, title=_title(r.body)) for r in rows]


async def queue_sample(store: Store, config: NotificationsConfig, route_name: str,
                       texts: TicketTexts, now: datetime) -> list[OutboxMessage]:
    """Queue a sample group message (a root and two children) on ``route_name``, once per
    notifier of the route, to go out at once (quiet hours do not hold it).

    Returns:
        The committed rows (hand them to a running outbox, or let its poll find them).

    Raises:
        InvalidInputError: No route has that name.
    """
    route = config.route(route_name)
    if route is None:
        known = ", ".join(r.name for r in config.routes) or "none configured"
        raise InvalidInputError(f"unknown route {route_name[:64]!r} (known: {known})")
    facts = TicketFacts(ref="NG-000000", severity="critical", site="demo-site",
                        target="pl-demo", summary=_SAMPLE_SUMMARY.get(texts.language, ""),
                        category="uplink", opened_at=now, children=("site-a", "site-b"),
                        route=route.name)
    message = RoutedMessage(subject="ticket", ident=SAMPLE_TICKET_ID, reason="test",
                            severity="critical", category="uplink",
                            text=texts.render("ticket_opened", facts, now),
                            first_seen=now.isoformat())
    async with store.session() as session:
        rows = enqueue_routed(session, route, message, now)
        await session.commit()
        for row in rows:
            session.expunge(row)
    return rows


__all__ = ["SAMPLE_TICKET_ID", "SentNotification", "queue_sample", "ticket_notifications"]
