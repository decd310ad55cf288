"""Alertmanager notifications into the outbox: one transaction per post, retries counted.

A post is recorded as an :class:`~netguard.iot.models.AmReceipt` under its dedupe key
(:func:`netguard.notify.alertmanager.dedupe_key`), routed and queued in the same
transaction, then handed to the outbox worker. What happens to a post:

- ``accepted``: a notification not seen before; one outbox row per notifier of each
  route that takes it (``unrouted`` when no route does: recorded, nothing sent).
- ``duplicate``: the same notification within ``dedupe_window_seconds`` of the last
  time it was sent (Alertmanager retrying after a lost answer, an HA peer's copy):
  counted on the receipt, nothing queued.
- ``reminder``: the same notification again after the window (Alertmanager's
  ``repeat_interval``): sent again, marked as a reminder, and the window starts anew
  (``first_at`` is then when it was last sent).

Identical posts at the same moment are safe on SQLite and PostgreSQL: the receipt is
inserted with ``ON CONFLICT DO NOTHING`` on its unique key, and the reminder is a
conditional update, so exactly one post of a kind queues messages.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlmodel import col
from sqlmodel.ext.asyncio.session import AsyncSession

from netguard.clock import Clock
from netguard.errors import StoreUnavailableError
from netguard.iot.alerts import dialect_insert
from netguard.iot.messages import MessageRenderer
from netguard.iot.models import AmReceipt, OutboxMessage
from netguard.iot.outbox import OutboxWorker
from netguard.localtime import zone
from netguard.notify.alertmanager import (
    AmPayload,
    dedupe_key,
    first_seen,
    group_severity,
    render,
    route_event,
    route_facts,
)
from netguard.notify.config import NotificationsConfig
from netguard.notify.enqueue import RoutedMessage, enqueue_routed
from netguard.notify.routing import select_routes, send_after
from netguard.store import Store
from netguard.store.health import bounded

log = logging.getLogger(__name__)

# Receipts are kept this long after they were last seen (at least twice the window):
# long enough for any retry, short enough that the table stays small.
KEEP_RECEIPTS = timedelta(days=30)
# How often the intake deletes expired receipts (monotonic seconds).
_PRUNE_EVERY = 3600.0


@dataclass(frozen=True, slots=True)
class IntakeResult:
    """What became of one post.

    Attributes:
        outcome: ``accepted``, ``unrouted``, ``duplicate`` or ``reminder``.
        receipt_id: The :class:`AmReceipt` it was recorded as.
        messages: Outbox rows queued (one per notifier per route).
    """

    outcome: str
    receipt_id: int
    messages: int = 0


class AmIntake:
    """Records Alertmanager notifications and queues their messages.

    Args:
        store: The database.
        config: Routes and the intake's dedupe window.
        renderer: Language, zone and templates of the messages.
        clock: Stamps the receipts; monotonic time paces the pruning.
        outbox: Returns the running outbox worker (None: the rows wait for its poll).
    """

    def __init__(self, store: Store, config: NotificationsConfig, renderer: MessageRenderer,
                 clock: Clock, outbox: Callable[[], OutboxWorker | None]) -> None:
        self._store = store
        self._config = config
        self._renderer = renderer
        self._clock = clock
        self._outbox = outbox
        self._pruned_at = float("-inf")

    async def receive(self, payload: AmPayload) -> IntakeResult:
        """Record ``payload`` and queue its messages, in one transaction.

        Raises:
            StoreUnavailableError: The database refused or did not answer in time
                (``store.operation_timeout_seconds``); nothing was recorded, and
                Alertmanager should retry.
        """
        try:
            return await bounded(self._receive(payload),
                                 self._store.config.operation_timeout_seconds)
        except (sa.exc.SQLAlchemyError, OSError, TimeoutError) as exc:
            text = str(exc).splitlines()[0][:200] if str(exc) else ""
            raise StoreUnavailableError(
                f"recording an Alertmanager notification failed: {type(exc).__name__}: "
                f"{text}") from exc

    async def _receive(self, payload: AmPayload) -> IntakeResult:
        now = self._clock.now()
        key = dedupe_key(payload)
        async with self._store.session() as session:
            outcome, receipt_id = await self._record(session, payload, key, now)
            rows: list[OutboxMessage] = []
            if outcome != "duplicate":
                rows = self._queue(session, payload, receipt_id, now,
                                   reminder=outcome == "reminder")
                if not rows:
                    outcome = "unrouted"
            await self._prune(session, now)
            await session.commit()
            # Straight to delivery, detached so that the worker's session takes them
            # while this one closes. Only the rows due now: hand_off sends what it gets,
            # and a row held by quiet hours waits for the worker's poll at its time.
            due = [row for row in rows if row.next_attempt_at <= now]
            for row in due:
                session.expunge(row)
            worker = self._outbox()
            if due and worker is not None:
                worker.hand_off(due)
        return IntakeResult(outcome, receipt_id, len(rows))

    async def _record(self, session: AsyncSession, payload: AmPayload, key: str,
                      now: datetime) -> tuple[str, int]:
        """Insert the receipt, or count the post on the existing one: (outcome, id)."""
        inserted = await session.exec(
            dialect_insert(self._store.dialect)(AmReceipt)
            .values(dedupe_key=key, group_key=payload.group_key, status=payload.status,
                    first_at=now, last_at=now, count=1)
            .on_conflict_do_nothing(index_elements=["dedupe_key"])
            .returning(col(AmReceipt.id)))
        new_id = inserted.scalar_one_or_none()
        if new_id is not None:
            return "accepted", int(new_id)
        window = timedelta(seconds=self._config.alertmanager.dedupe_window_seconds)
        # Conditional, so that of two posts after the window only one is the reminder.
        reminded = await session.exec(
            sa.update(AmReceipt)
            .where(col(AmReceipt.dedupe_key) == key, col(AmReceipt.first_at) <= now - window)
            .values(first_at=now, last_at=now, count=col(AmReceipt.count) + 1)
            .returning(col(AmReceipt.id)))
        found = reminded.scalar_one_or_none()
        if found is not None:
            return "reminder", int(found)
        counted = await session.exec(
            sa.update(AmReceipt)
            .where(col(AmReceipt.dedupe_key) == key)
            .values(last_at=now, count=col(AmReceipt.count) + 1)
            .returning(col(AmReceipt.id)))
        return "duplicate", int(counted.scalar_one())

    def _queue(self, session: AsyncSession, payload: AmPayload, receipt_id: int,
               now: datetime, *, reminder: bool) -> list[OutboxMessage]:
        facts = route_facts(payload)
        routes = select_routes(self._config.routes, facts, route_event(payload))
        if not routes:
            log.warning("no notification route takes this Alertmanager notification",
                        extra={"receipt": receipt_id, "severity": facts.severity.value,
                               "site": facts.site, "category": facts.category})
            return []
        severity = group_severity(payload)
        text = render(payload, self._renderer, reminder=reminder)
        tz = zone(self._renderer.timezone)
        rows: list[OutboxMessage] = []
        for route in routes:
            rows += enqueue_routed(session, route, RoutedMessage(
                subject="alertmanager", ident=receipt_id, reason=payload.status,
                severity=severity.value, category=(facts.category or payload.title)[:64],
                text=text, first_seen=first_seen(payload),
                not_before=send_after(route, severity, now, tz)), now)
        return rows

    async def _prune(self, session: AsyncSession, now: datetime) -> None:
        mono = self._clock.monotonic()
        if mono - self._pruned_at < _PRUNE_EVERY:
            return
        self._pruned_at = mono
        keep = max(KEEP_RECEIPTS,
                   2 * timedelta(seconds=self._config.alertmanager.dedupe_window_seconds))
        await session.exec(sa.delete(AmReceipt).where(col(AmReceipt.last_at) < now - keep))


__all__ = ["KEEP_RECEIPTS", "AmIntake", "IntakeResult"]
