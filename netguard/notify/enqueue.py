"""Ticket and Alertmanager messages into the persistent outbox, one row per notifier.

The rows join the door alerts' rows in ``iot_outbox`` and are delivered by the same
:class:`~netguard.iot.outbox.OutboxWorker`: same retries, rate limits, folding and dead
letters. A row whose ``next_attempt_at`` lies ahead (quiet hours) waits for it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlmodel.ext.asyncio.session import AsyncSession

from netguard.iot.models import OutboxMessage
from netguard.iot.notifiers.base import Mention, Notification
from netguard.notify.config import TicketRoute

SUBJECTS = ("ticket", "alertmanager")


@dataclass(frozen=True, slots=True)
class RoutedMessage:
    """One rendered message for one route.

    Attributes:
        subject: ``ticket`` or ``alertmanager``.
        ident: The ticket's id, or the Alertmanager receipt's.
        reason: What happened (``opened``, ``update``, ``resolved``, ``firing`` ...); at
            most 16 characters (the outbox column).
        severity: The severity value (``critical`` ...).
        category: The ticket's category, or the alert group's name.
        text: The markdown, rendered in ``display.language``.
        first_seen: ISO 8601 instant the condition began.
        not_before: When it may go out (the end of quiet hours), else at once.
    """

    subject: str
    ident: int
    reason: str
    severity: str
    category: str
    text: str
    first_seen: str
    not_before: datetime | None = None


def notification_for(route: TicketRoute, message: RoutedMessage) -> Notification:
    """The outbox body of ``message`` on ``route``, mentioning the route's recipients."""
    if message.subject not in SUBJECTS:
        raise ValueError(f"unknown subject {message.subject!r}")
    return Notification(
        alert_id=message.ident, reason=message.reason[:16], type=message.category,
        severity=message.severity, community=route.name, household="", sensor="",
        reasons=(), count=1, first_seen=message.first_seen,
        recipients=tuple(r.label() for r in route.recipients),
        mentions=tuple(Mention(r.wecom, r.dingtalk_user, r.mobile) for r in route.recipients
                       if r.wecom or r.dingtalk_user or r.mobile),
        subject=message.subject, text=message.text)


def enqueue_routed(session: AsyncSession, route: TicketRoute, message: RoutedMessage,
                   now: datetime) -> list[OutboxMessage]:
    """Add one outbox row per notifier of ``route`` (ids come with the flush; after the
    commit hand them to :meth:`~netguard.iot.outbox.OutboxWorker.hand_off`)."""
    body = notification_for(route, message).to_json()
    due = message.not_before if message.not_before and message.not_before > now else now
    rows = [OutboxMessage(alert_id=message.ident, subject=message.subject, notifier=name,
                          community=route.name, reason=message.reason[:16], body=body,
                          created_at=now, next_attempt_at=due)
            for name in route.notifiers]
    session.add_all(rows)
    return rows


__all__ = ["SUBJECTS", "RoutedMessage", "enqueue_routed", "notification_for"]
