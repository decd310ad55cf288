"""The persistent outbox: alert notifications survive restarts and receivers that are down.

Rows are written in the same transaction as the alert that caused them, so an alert can
never exist without its notification. :class:`OutboxWorker` delivers due rows, retries
with exponential backoff and jitter, keeps each channel under its messages-per-minute
limit by folding waiting alerts into one message, and records status and attempts.
Delivery is at-least-once: a crash between a 2xx answer and the status update sends that
message again after restart (and only then).
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import random
from collections import OrderedDict, deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlmodel import col, func, select
from sqlmodel.ext.asyncio.session import AsyncSession

from netguard.clock import Clock
from netguard.errors import NotifyError, NotifyTransientError
from netguard.iot.config import CommunityRoute, IotConfig
from netguard.iot.models import OutboxMessage
from netguard.iot.notifiers.base import Notification, Notifier
from netguard.store import Store

log = logging.getLogger(__name__)

_TAKEN_WINDOW = 10_000


def route_for(routes: Sequence[CommunityRoute], community: str) -> CommunityRoute | None:
    """The community's route, else the ``*`` route, else None."""
    fallback = None
    for route in routes:
        if route.community == community:
            return route
        if route.community == "*":
            fallback = route
    return fallback


def enqueue(session: AsyncSession, notification: Notification,
            routes: Sequence[CommunityRoute], now: datetime) -> list[OutboxMessage]:
    """Add one outbox row per notifier routed for the notification's community.

    The rows get their ids when the session flushes; after the commit, hand them to
    :meth:`OutboxWorker.hand_off` to deliver them without waiting for a poll.

    Returns:
        The rows added (none when the community has no route: logged).
    """
    route = route_for(routes, notification.community)
    if route is None:
        log.warning("no notifier route for community %s; alert %d is only stored",
                    notification.community, notification.alert_id)
        return []
    if route.recipients:
        notification = dataclasses.replace(notification, recipients=tuple(route.recipients))
    body = notification.to_json()
    rows = [OutboxMessage(alert_id=notification.alert_id, notifier=name,
                          community=notification.community, reason=notification.reason,
                          body=body, created_at=now, next_attempt_at=now)
            for name in route.notifiers]
    session.add_all(rows)
    return rows


class RateLimiter:
    """At most ``per_minute`` sends in any sliding 60 s window (monotonic seconds)."""

    def __init__(self, per_minute: int) -> None:
        self.per_minute = per_minute
        self._sent: deque[float] = deque()

    def _trim(self, now: float) -> None:
        while self._sent and now - self._sent[0] >= 60.0:
            self._sent.popleft()

    def wait_time(self, now: float) -> float:
        """Seconds until a send is allowed (0 when allowed now)."""
        self._trim(now)
        if len(self._sent) < self.per_minute:
            return 0.0
        return 60.0 - (now - self._sent[0])

    def record(self, now: float) -> None:
        """Count one send."""
        self._sent.append(now)


def backoff_seconds(attempts: int, low: float, high: float,
                    rng: random.Random | None = None) -> float:
    """Exponential backoff with jitter: ``low * 2**(attempts-1)`` capped at ``high``,
    then scaled by a random factor in [0.5, 1] so that retries do not synchronise."""
    base = min(high, low * 2.0 ** max(0, attempts - 1))
    return float(base * (0.5 + 0.5 * (rng or random).random()))


def _bump(counts: Mapping[str, int], key: str, n: int) -> Mapping[str, int]:
    return {**counts, key: counts.get(key, 0) + n}


@dataclass(frozen=True, slots=True)
class OutboxStats:
    """Delivery counters since start."""

    delivered: int = 0
    failed: int = 0
    attempts: int = 0
    messages_sent: int = 0
    # The same two counts by notifier name (configured ones start at zero).
    delivered_by: Mapping[str, int] = field(default_factory=dict)
    failed_by: Mapping[str, int] = field(default_factory=dict)


class OutboxWorker:
    """Delivers due outbox rows; run :meth:`run` as a background task and :meth:`wake` it.

    Args:
        store: The database.
        notifiers: Notifiers by name.
        config: Limits, backoff and attempts.
        clock: Time for the stored timestamps and due times.
    """

    def __init__(self, store: Store, notifiers: Mapping[str, Notifier], config: IotConfig,
                 clock: Clock, *, rng: random.Random | None = None) -> None:
        self._store = store
        self._notifiers = dict(notifiers)
        self._config = config
        self._clock = clock
        self._rng = rng or random.Random()  # noqa: S311  (jitter, not cryptography)
        rates = {n.name: n.rate_per_minute for n in config.notifiers}
        self._limiters = {name: RateLimiter(rates.get(name, 20)) for name in self._notifiers}
        self._wake = asyncio.Event()
        self._poll = True
        self._next_poll = float("-inf")
        # Committed rows handed over by the writer, delivered before (and without) a poll.
        self._handed: list[OutboxMessage] = []
        # Ids this worker has already taken up (from a hand-off or a poll), so that a row
        # both handed over and found by a poll is sent once. Bounded: a row older than
        # this window is no longer pending in either path.
        self._taken: OrderedDict[int, None] = OrderedDict()
        # Notifiers with due rows left unsent (rate limit, or more than one message's
        # worth). New rows for them wait for the poll, which folds them into one message
        # with the older ones, instead of spending the limit on one alert at a time.
        self._backlog: set[str] = set()
        zeros = dict.fromkeys(self._notifiers, 0)
        self.stats = OutboxStats(delivered_by=zeros, failed_by=zeros)
        self.pending = 0
        self._counted_at = float("-inf")
        self._stopping = False

    def wake(self) -> None:
        """Look for due rows now (called after a commit that added rows)."""
        self._poll = True
        self._wake.set()

    def hand_off(self, rows: Sequence[OutboxMessage]) -> None:
        """Deliver these just-committed rows now, without re-reading them.

        The rows are already durable (pending) in the store, so a crash, a rate limit or
        a failed send leaves them to the regular poll; nothing depends on this path.
        """
        self._handed.extend(r for r in rows if r.id is not None)
        self._wake.set()

    def _take(self, rows: Sequence[OutboxMessage]) -> list[OutboxMessage]:
        """The rows not taken up before, now marked as taken."""
        fresh: list[OutboxMessage] = []
        for row in rows:
            assert row.id is not None
            if row.id in self._taken:
                continue
            self._taken[row.id] = None
            fresh.append(row)
        while len(self._taken) > _TAKEN_WINDOW:
            self._taken.popitem(last=False)
        return fresh

    def stop(self) -> None:
        """Finish the current pass (its statuses get stored), then let :meth:`run` return."""
        self._stopping = True
        self._wake.set()

    async def run(self) -> None:
        """Deliver until :meth:`stop` (or cancellation)."""
        while not self._stopping:
            self._wake.clear()
            delay = await self.run_once()
            if delay > 0 and not self._stopping and not self._handed and not self._poll:
                try:
                    async with asyncio.timeout(delay):
                        await self._wake.wait()
                except TimeoutError:
                    pass

    async def run_once(self) -> float:
        """Deliver the rows handed over, then poll the store if asked to or if it is time.

        Returns:
            Seconds until the next poll is due.
        """
        loop = asyncio.get_running_loop()
        try:
            if self._handed:
                handed, self._handed = self._handed, []
                groups = self._group(self._take(handed))
                for name in self._backlog.intersection(groups):
                    del groups[name]
                wait = await self._send_groups(groups)
                if wait is not None:
                    # Rate-limited, or more than one message's worth: the rest is pending
                    # in the store, and a poll picks it up.
                    self._next_poll = min(self._next_poll, loop.time() + wait)
            if self._poll or loop.time() >= self._next_poll:
                self._poll = False
                self._next_poll = loop.time() + await self.deliver_due()
        except (OSError, sa.exc.SQLAlchemyError) as exc:
            log.warning("outbox pass failed, retrying: %s", type(exc).__name__)
            self._next_poll = loop.time() + 1.0
        except Exception:
            log.exception("outbox pass failed unexpectedly, retrying")
            self._next_poll = loop.time() + 1.0
        return max(0.0, self._next_poll - loop.time())

    async def deliver_due(self) -> float:
        """One delivery pass over the due rows.

        Returns:
            Seconds until the next pass is worth making (capped at 1 s).
        """
        now = self._clock.now()
        async with self._store.session() as session:
            rows = list((await session.exec(
                select(OutboxMessage)
                .where(col(OutboxMessage.status) == "pending",
                       col(OutboxMessage.next_attempt_at) <= now)
                .order_by(col(OutboxMessage.id)).limit(1000))).all())
            # The gauge need not be exact per pass; keep the query off the alert path.
            if self._clock.monotonic() - self._counted_at >= 5.0 or not rows:
                self._counted_at = self._clock.monotonic()
                self.pending = int((await session.exec(
                    select(func.count()).select_from(OutboxMessage)
                    .where(col(OutboxMessage.status) == "pending"))).one())
        # A row committed and handed over while this pass ran is sent by this pass, once.
        found = {r.id for r in rows}
        self._handed = [r for r in self._handed if r.id not in found]
        for row in rows:
            assert row.id is not None
            self._taken.pop(row.id, None)
        groups = self._group(self._take(rows))
        self._backlog.intersection_update(groups)  # no due rows left: no backlog
        wait = await self._send_groups(groups)
        return 1.0 if wait is None else min(1.0, wait)

    @staticmethod
    def _group(rows: Sequence[OutboxMessage]) -> dict[str, list[OutboxMessage]]:
        by_notifier: dict[str, list[OutboxMessage]] = {}
        for row in rows:
            by_notifier.setdefault(row.notifier, []).append(row)
        return by_notifier

    async def _send_groups(self, by_notifier: Mapping[str, list[OutboxMessage]]
                           ) -> float | None:
        """Send one message per notifier (rate limits permitting).

        Returns:
            Seconds until rows left unsent are worth another pass, or None if all went.
        """
        delay: float | None = None
        batch_max = self._config.outbox_batch_max
        async with asyncio.TaskGroup() as tg:
            for name, group in by_notifier.items():
                wait = self._limiters[name].wait_time(self._clock.monotonic()) \
                    if name in self._limiters else 0.0
                if wait > 0:
                    delay = wait if delay is None else min(delay, wait)
                    self._backlog.add(name)
                    continue
                if len(group) > batch_max:
                    delay = 0.0  # more is due right away
                    self._backlog.add(name)
                else:
                    self._backlog.discard(name)
                tg.create_task(self._deliver(name, group[:batch_max]),
                               name=f"netguard[outbox].{name}")
        return delay

    async def _deliver(self, name: str, rows: list[OutboxMessage]) -> None:
        notifier = self._notifiers.get(name)
        error: NotifyError | None
        if notifier is None:
            error = NotifyError(f"notifier {name!r} is not configured")
        else:
            self._limiters[name].record(self._clock.monotonic())
            try:
                await notifier.send([Notification.from_json(r.body) for r in rows])
                error = None
            except NotifyError as exc:
                error = exc
        now = self._clock.now()
        delivered = failed = 0
        async with self._store.session() as session:
            for row in rows:
                row.attempts += 1
                if error is None:
                    row.status, row.delivered_at, row.last_error = "delivered", now, None
                    delivered += 1
                else:
                    row.last_error = str(error)[:500]
                    give_up = (not isinstance(error, NotifyTransientError)
                               or row.attempts >= self._config.outbox_max_attempts)
                    if give_up:
                        row.status = "failed"
                        failed += 1
                    else:
                        row.next_attempt_at = now + timedelta(seconds=backoff_seconds(
                            row.attempts, self._config.outbox_backoff_min_seconds,
                            self._config.outbox_backoff_max_seconds, self._rng))
                session.add(row)
            await session.commit()
        if error is not None:
            log.warning("alert delivery via %s failed: %s", name, error,
                        extra={"notifier": name, "alerts": len(rows), "gave_up": failed})
        s = self.stats
        self.stats = OutboxStats(delivered=s.delivered + delivered, failed=s.failed + failed,
                                 attempts=s.attempts + len(rows),
                                 messages_sent=s.messages_sent + 1,
                                 delivered_by=_bump(s.delivered_by, name, delivered),
                                 failed_by=_bump(s.failed_by, name, failed))
