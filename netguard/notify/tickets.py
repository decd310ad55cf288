"""The ticket notifier: reads ticket events after its cursor and queues the messages.

One pass is one transaction: read the ticket events after the cursor and the threads
that are due, plan (:class:`~netguard.notify.plan.Planner`), write the outbox rows, the
threads and the cursor, commit; then hand the committed rows to the outbox worker. A
crash before the commit leaves everything as it was (the next pass does the same work),
after it nothing is planned twice: a restart neither loses nor repeats a message.

The notifier follows ``ticket_event`` rather than being called inside the ticket
transactions, so that a ticket change never waits for (or fails with) a notification, and
every writer of tickets (the daemon, the CLI, the acknowledgement page) is covered. It is
woken after ticket changes in this process, and polls for the others.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from types import TracebackType
from typing import Any, Protocol
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from netguard.clock import Clock, SystemClock, as_utc
from netguard.faults import Severity
from netguard.iot.models import OutboxMessage
from netguard.notify.config import NotificationsConfig
from netguard.notify.enqueue import RoutedMessage, enqueue_routed
from netguard.notify.models import CURSOR, GROUP, NotifyCursor, NotifyGroup
from netguard.notify.plan import DONE, GroupState, Planner, TicketEvent, TicketView
from netguard.notify.texts import TicketTexts
from netguard.store.db import Store
from netguard.tickets.models import CHILD, EVENT, TICKET

log = logging.getLogger("netguard.notify")

CURSOR_NAME = "tickets"
# How long an id below the cursor is waited for (a PostgreSQL transaction that took its
# id before a later one committed); a rolled-back insert leaves a gap that never fills.
GAP_SECONDS = 120.0
_GAPS_MAX = 10_000
# How long an ended thread is kept (reopening within this continues it).
DONE_KEPT_SECONDS = 7 * 86400.0
_STATE_FIELDS = ("phase", "flush_at", "update_at", "last_sent_at", "last_update_at",
                 "next_repeat_at", "escalate_at", "escalated")


class HandOff(Protocol):
    """Where committed outbox rows go (:class:`~netguard.iot.outbox.OutboxWorker`)."""

    def hand_off(self, rows: Sequence[OutboxMessage]) -> None: ...


@dataclass(frozen=True, slots=True)
class PassResult:
    """What one pass did.

    Attributes:
        events: Ticket events read.
        messages: Messages queued (one per route; each is a row per notifier).
        next_due: When a thread is due next (None: nothing scheduled).
        more: The pass read a full batch: more events are waiting.
    """

    events: int
    messages: int
    next_due: datetime | None
    more: bool


def _opt(value: datetime | None) -> datetime | None:
    return None if value is None else as_utc(value)


def _state(row: NotifyGroup) -> GroupState:
    return GroupState(route=row.route, ticket_id=row.ticket_id, phase=row.phase,
                      flush_at=_opt(row.flush_at), update_at=_opt(row.update_at),
                      last_sent_at=_opt(row.last_sent_at),
                      last_update_at=_opt(row.last_update_at),
                      next_repeat_at=_opt(row.next_repeat_at),
                      escalate_at=_opt(row.escalate_at), escalated=row.escalated,
                      notified=tuple(row.notified or ()))


class TicketNotifier:
    """Queues ticket notifications; run it with ``async with`` (a background task) or
    drive it with :meth:`run_once`.

    Args:
        store: The open store.
        config: The ``notifications:`` section.
        texts: Renders messages (``display.language``, ``display.timezone``, templates).
        outbox: Takes the committed rows for delivery at once (the IoT service's
            ``OutboxWorker``); without one the rows wait for the worker's poll.
        labels: A target's labels (``targets[].labels``) by target id.
        ref: The human id of a ticket (``NG-000123``).
        clock: Time source; wall time is only written into records.
        poll_seconds: How often to look for ticket changes made by other processes.
        batch: Events read per pass.
    """

    def __init__(self, store: Store, config: NotificationsConfig, *, texts: TicketTexts,
                 ref: Callable[[int], str], outbox: HandOff | None = None,
                 labels: Callable[[str], Mapping[str, str]] | None = None,
                 clock: Clock | None = None, poll_seconds: float = 5.0,
                 batch: int = 500) -> None:
        self._store = store
        self._config = config
        self._planner = Planner(config, texts, ZoneInfo(texts.timezone))
        self._ref = ref
        self._outbox = outbox
        self._labels = labels or (lambda _target: {})
        self._clock: Clock = clock or SystemClock()
        self._poll = poll_seconds
        self._batch = batch
        self._lock = asyncio.Lock()
        self._wake = asyncio.Event()
        self._stopping = False
        self._next_prune = float("-inf")
        self._task: asyncio.Task[None] | None = None
        self.sent: Counter[tuple[str, str]] = Counter()
        """Messages queued, by (route, event) (``netguard_ticket_notifications_total``)."""
        self.failed_passes = 0
        """Passes that failed (database errors); they are retried."""

    @property
    def config(self) -> NotificationsConfig:
        """The routes in use."""
        return self._config

    def wake(self) -> None:
        """Look for new ticket events now (called after a ticket change commits)."""
        self._wake.set()

    # ---------------------------------------------------------------- lifecycle

    async def begin(self) -> None:
        """Create the cursor, at the newest ticket event, unless it exists: a first start
        notifies about what happens from now on, not the whole ticket history. Called by
        ``async with`` before the task starts, so no event written after it is missed."""
        async with self._lock, self._store.session() as session:
            await self._cursor(session, self._clock.now())
            await session.commit()

    async def __aenter__(self) -> TicketNotifier:
        await self.begin()
        self._stopping = False
        self._task = asyncio.create_task(self.run(), name="netguard[notify].tickets")
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()
        if self._task is not None:
            # A pass is one transaction: let it finish (it is short) rather than cancel.
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    def stop(self) -> None:
        """End :meth:`run` after the pass in progress."""
        self._stopping = True
        self._wake.set()

    async def run(self) -> None:
        """Pass whenever woken, when the next thread is due, or every ``poll_seconds``."""
        while not self._stopping:
            self._wake.clear()
            delay = self._poll
            try:
                result = await self.run_once()
                while result.more and not self._stopping:
                    result = await self.run_once()
                if result.next_due is not None:
                    # Wall time to a monotonic wait: the due time is stored as a record,
                    # the wait itself is timed by the event loop's monotonic clock.
                    ahead = (result.next_due - self._clock.now()).total_seconds()
                    delay = min(delay, max(0.0, ahead))
            except (OSError, sa.exc.SQLAlchemyError) as exc:
                self.failed_passes += 1
                log.warning("ticket notification pass failed, retrying: %s",
                            type(exc).__name__)
                delay = min(delay, 1.0)
            except Exception:
                self.failed_passes += 1
                log.exception("ticket notification pass failed unexpectedly, retrying")
            if self._stopping:
                break
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(delay):
                    await self._wake.wait()

    # ---------------------------------------------------------------- one pass

    async def run_once(self) -> PassResult:
        """One pass in one transaction; hands the committed rows to the outbox."""
        async with self._lock:
            now = self._clock.now()
            async with self._store.session() as session:
                await self._lock_sqlite(session)
                cursor = await self._cursor(session, now)
                events = await self._events(session, cursor)
                self._advance(cursor, events, now)
                due = list((await session.exec(
                    select(NotifyGroup).where(col(NotifyGroup.due_at) <= now)
                    .order_by(col(NotifyGroup.due_at)).limit(self._batch))).all())
                ids = {e.ticket_id for e in events} | {r.ticket_id for r in due}
                rows = {(r.route, r.ticket_id): r for r in due}
                if ids:
                    for row in (await session.exec(select(NotifyGroup).where(
                            col(NotifyGroup.ticket_id).in_(sorted(ids))))).all():
                        rows[(row.route, row.ticket_id)] = row
                tickets = await self._tickets(session, ids)
                plan = self._planner.plan({k: _state(r) for k, r in rows.items()},
                                          events, tickets, now)
                for state in plan.changed_states():
                    self._write_state(session, rows.get((state.route, state.ticket_id)),
                                      state, now)
                outbox: list[OutboxMessage] = []
                for o in plan.out:
                    outbox += enqueue_routed(session, o.route, RoutedMessage(
                        subject="ticket", ident=o.ticket_id, reason=o.event,
                        severity=o.severity, category=o.category, text=o.text,
                        first_seen=o.first_seen, not_before=o.not_before), now)
                await self._prune(session, now)
                await session.flush()
                next_due = (await session.exec(
                    select(sa.func.min(col(NotifyGroup.due_at))))).one()
                await session.commit()
                for sent in outbox:
                    session.expunge(sent)
        for o in plan.out:
            self.sent[(o.route.name, o.event)] += 1
        if outbox and self._outbox is not None:
            self._outbox.hand_off(outbox)
        if plan.out:
            log.info("ticket notifications queued", extra={
                "messages": len(plan.out), "rows": len(outbox),
                "tickets": sorted({self._ref(o.ticket_id) for o in plan.out})})
        return PassResult(events=len(events), messages=len(plan.out),
                          next_due=_opt(next_due), more=len(events) >= self._batch)

    async def _prune(self, session: AsyncSession, now: datetime) -> None:
        """Now and then, forget threads that ended long ago (a ticket reopened after that
        starts a new one)."""
        if self._clock.monotonic() < self._next_prune:
            return
        self._next_prune = self._clock.monotonic() + 3600.0
        conn = await session.connection()
        await conn.execute(sa.delete(GROUP).where(
            GROUP.c.phase == DONE,
            GROUP.c.updated_at < now - timedelta(seconds=DONE_KEPT_SECONDS)))

    async def _lock_sqlite(self, session: AsyncSession) -> None:
        """SQLite: take the write lock first (a write matching no row), as the ticket
        writes do: a read transaction that later wants to write fails at once ("database
        is locked") when a ticket write committed in between; a writer waits its turn."""
        if self._store.dialect == "sqlite":
            conn = await session.connection()
            await conn.execute(sa.update(CURSOR).where(CURSOR.c.name == "")
                               .values(gaps=CURSOR.c.gaps))

    async def _cursor(self, session: AsyncSession, now: datetime) -> NotifyCursor:
        query = select(NotifyCursor).where(col(NotifyCursor.name) == CURSOR_NAME)
        if self._store.dialect == "postgresql":
            # Two daemons on one database must not plan the same events twice.
            query = query.with_for_update()
        cursor = (await session.exec(query)).first()
        if cursor is None:
            # First start: notify from now on, not about the whole ticket history.
            last = (await session.exec(select(sa.func.max(EVENT.c.id)))).one()
            cursor = NotifyCursor(name=CURSOR_NAME, last_event_id=int(last or 0), gaps=[],
                                  updated_at=now)
            session.add(cursor)
        return cursor

    async def _events(self, session: AsyncSession, cursor: NotifyCursor
                      ) -> list[TicketEvent]:
        gaps = [int(g[0]) for g in cursor.gaps or ()]
        where = EVENT.c.id > cursor.last_event_id
        if gaps:
            where = sa.or_(where, EVENT.c.id.in_(gaps))
        query = (sa.select(EVENT.c.id, EVENT.c.ticket_id, EVENT.c.action, EVENT.c.at)
                 .where(where).order_by(EVENT.c.id).limit(self._batch))
        rows = (await (await session.connection()).execute(query)).all()
        return [TicketEvent(int(r.id), int(r.ticket_id), str(r.action), as_utc(r.at))
                for r in rows]

    def _advance(self, cursor: NotifyCursor, events: Sequence[TicketEvent],
                 now: datetime) -> None:
        """Move the cursor past ``events``; remember skipped ids as gaps for a while."""
        seen = {e.id for e in events}
        oldest = now - timedelta(seconds=GAP_SECONDS)
        gaps: list[list[Any]] = [g for g in cursor.gaps or ()
                                 if int(g[0]) not in seen
                                 and datetime.fromisoformat(str(g[1])) >= oldest]
        last = cursor.last_event_id
        top = max((e.id for e in events if e.id > last), default=last)
        stamp = now.isoformat()
        gaps += [[i, stamp] for i in range(last + 1, top) if i not in seen]
        cursor.gaps = gaps[-_GAPS_MAX:]
        cursor.last_event_id = top
        cursor.updated_at = now

    async def _tickets(self, session: AsyncSession, ids: set[int]) -> dict[int, TicketView]:
        if not ids:
            return {}
        wanted = sorted(ids)
        conn = await session.connection()
        rows = (await conn.execute(sa.select(TICKET).where(TICKET.c.id.in_(wanted)))).all()
        children: dict[int, list[str]] = {}
        for tid, target in (await conn.execute(
                sa.select(CHILD.c.ticket_id, CHILD.c.target)
                .where(CHILD.c.ticket_id.in_(wanted), CHILD.c.state != "promoted")
                .order_by(CHILD.c.id))).all():
            children.setdefault(int(tid), []).append(str(target))
        out: dict[int, TicketView] = {}
        for r in rows:
            tid = int(r.id)
            try:
                severity = Severity(r.severity)
            except ValueError:
                severity = Severity.WARNING  # not ours to refuse: still notify
            out[tid] = TicketView(
                id=tid, ref=self._ref(tid), severity=severity, state=str(r.state),
                summary=str(r.summary), category=str(r.category), site=r.site,
                target=r.target, opened_at=as_utc(r.opened_at),
                acknowledged=r.acknowledged_at is not None or r.state == "acknowledged",
                children=tuple(dict.fromkeys(children.get(tid, ()))),
                labels=self._labels(r.target) if r.target else {})
        return out

    @staticmethod
    def _write_state(session: AsyncSession, row: NotifyGroup | None, state: GroupState,
                     now: datetime) -> None:
        if row is None:
            row = NotifyGroup(route=state.route, ticket_id=state.ticket_id,
                              phase=state.phase, updated_at=now)
            session.add(row)
        for name in _STATE_FIELDS:
            setattr(row, name, getattr(state, name))
        row.notified = list(state.notified)
        row.due_at = None if state.phase == DONE else state.due_at
        row.updated_at = now


__all__ = ["CURSOR_NAME", "GAP_SECONDS", "HandOff", "PassResult", "TicketNotifier"]
