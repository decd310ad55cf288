"""The persistent outbox: alert notifications survive restarts and receivers that are down.

Rows are written in the same transaction as the alert that caused them, so an alert can
never exist without its notification. :class:`OutboxWorker` delivers due rows, retries
with exponential backoff and jitter, keeps each channel under its messages-per-minute
limit by folding waiting alerts into one message (first sends ahead of retries), and
records status, attempts and the reason of the last failure.

Channels are isolated: each notifier sends one message at a time on its own task, with a
timeout, so a receiver that hangs or a notifier that raises only delays or fails its own
rows. A row a notifier refuses outright (a community name that cannot be an MQTT topic)
fails at once with the reason; other failures are retried until ``outbox_max_attempts``.

Delivery is at-least-once: a crash between a 2xx answer and the status update, or a send
abandoned at its timeout after the receiver got it, sends that message again. In a
cluster only the leader delivers (``active``; docs/scale-out.md, decision 18).
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import logging
import random
from collections import OrderedDict, deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlmodel import col, func, select
from sqlmodel.ext.asyncio.session import AsyncSession

from netguard.acklinks import LINK_KINDS, AckLinks
from netguard.clock import Clock, as_utc
from netguard.errors import NotifyError, NotifyTransientError
from netguard.iot.config import CommunityRoute, IotConfig
from netguard.iot.models import OutboxMessage
from netguard.iot.notifiers.base import Mention, Notification, Notifier
from netguard.logsetup import SECRETS
from netguard.store import Store

log = logging.getLogger(__name__)

_TAKEN_WINDOW = 10_000
# For notifiers not in the config (tests, benches): their send timeout.
_DEFAULT_TIMEOUT = 10.0
# Added to a notifier's own timeout before the outbox abandons its send.
_TIMEOUT_GRACE = 2.0


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
        The rows added (none when the community has no route: logged; none for a
        ``recovery`` notification unless the route has ``notify_recovery``).
    """
    route = route_for(routes, notification.community)
    if route is None:
        log.warning("no notifier route for community %s; alert %d is only stored",
                    notification.community, notification.alert_id)
        return []
    if notification.reason == "recovery" and not route.notify_recovery:
        return []  # recovery messages are opt-in per route
    if route.recipients:
        notification = dataclasses.replace(
            notification, recipients=tuple(r.label() for r in route.recipients),
            mentions=tuple(Mention(r.wecom, r.dingtalk_user, r.mobile)
                           for r in route.recipients if r.wecom or r.dingtalk_user or r.mobile))
    body = notification.to_json()
    rows = [OutboxMessage(alert_id=notification.alert_id, notifier=name,
                          community=notification.community, reason=notification.reason,
                          body=body, created_at=now, next_attempt_at=now)
            for name in route.notifiers]
    session.add_all(rows)
    return rows


class RateLimiter:
    """At most ``per_minute`` sends in any sliding 60 s window (monotonic seconds).

    First sends come ahead of retries: retries may take at most ``retry_max`` (half the
    budget, rounded up) of the window, so a burst of due retries after an outage cannot
    make a new alert wait for the next minute. Retries that wait are folded into the next
    message anyway, at no cost to the budget.
    """

    def __init__(self, per_minute: int) -> None:
        self.per_minute = per_minute
        self.retry_max = max(1, (per_minute + 1) // 2)
        self._sent: deque[tuple[float, bool]] = deque()

    def _trim(self, now: float) -> None:
        while self._sent and now - self._sent[0][0] >= 60.0:
            self._sent.popleft()

    def wait_time(self, now: float, *, retry: bool = False) -> float:
        """Seconds until a send (a first send, or a message of retries only) is allowed."""
        self._trim(now)
        wait = 0.0
        if len(self._sent) >= self.per_minute:
            wait = 60.0 - (now - self._sent[0][0])
        if retry:
            retries = [t for t, is_retry in self._sent if is_retry]
            if len(retries) >= self.retry_max:
                wait = max(wait, 60.0 - (now - retries[len(retries) - self.retry_max]))
        return wait

    def record(self, now: float, *, retry: bool = False) -> None:
        """Count one send."""
        self._sent.append((now, retry))


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
    """Delivery counters since start.

    Attributes:
        delivered: Rows delivered.
        failed: Rows given up on (attempts run out, or refused for good).
        attempts: Row attempts stored (one per row per message, refusals included).
        messages_sent: Messages handed to a notifier.
        send_errors: Messages whose send failed (error answer, exception or timeout).
        refused: Rows a notifier refused before sending (e.g. a community name that
            cannot be an MQTT topic level); each also counts in ``failed``.
    """

    delivered: int = 0
    failed: int = 0
    attempts: int = 0
    messages_sent: int = 0
    send_errors: int = 0
    refused: int = 0
    # ``delivered`` and ``failed`` by notifier name (configured ones start at zero).
    delivered_by: Mapping[str, int] = field(default_factory=dict)
    failed_by: Mapping[str, int] = field(default_factory=dict)


# One row's outcome: None (delivered), or the error and whether to give up now.
_Outcome = tuple[int, NotifyError | None]


class OutboxWorker:
    """Delivers due outbox rows; run :meth:`run` as a background task and :meth:`wake` it.

    Each notifier is its own lane: at most one message in flight per notifier, each send
    bounded by a timeout, and at most ``outbox_max_concurrent_sends`` in flight in all.
    The dispatcher (:meth:`run_once`) never waits for a send, so a receiver that hangs or
    a notifier that raises delays and fails only its own rows. Sends are plain tasks, not
    a TaskGroup: one failing must never cancel another that is mid-flight (a cancelled
    HTTP request that the receiver already got is sent again: a duplicate).

    Args:
        store: The database.
        notifiers: Notifiers by name.
        config: Limits, backoff and attempts.
        clock: Time for the stored timestamps and due times.
        active: Whether to deliver now (the cluster leader only); always, without one.
    """

    def __init__(self, store: Store, notifiers: Mapping[str, Notifier], config: IotConfig,
                 clock: Clock, *, rng: random.Random | None = None,
                 links: AckLinks | None = None,
                 active: Callable[[], bool] | None = None) -> None:
        self._store = store
        self._active = active or (lambda: True)
        self._links = links
        self._notifiers = dict(notifiers)
        self._config = config
        self._clock = clock
        self._rng = rng or random.Random()  # noqa: S311  (jitter, not cryptography)
        by_name = {n.name: n for n in config.notifiers}
        self._limiters = {name: RateLimiter(by_name[name].rate_per_minute if name in by_name
                                            else 20) for name in self._notifiers}
        # The notifier's own timeout should fire first (it names the cause); this one
        # catches a notifier that ignores its timeout.
        self._send_timeout = {name: (by_name[name].timeout_seconds if name in by_name
                                     else _DEFAULT_TIMEOUT) + _TIMEOUT_GRACE
                              for name in self._notifiers}
        self._slots = asyncio.Semaphore(config.outbox_max_concurrent_sends)
        self._wake = asyncio.Event()
        self._pass_lock = asyncio.Lock()
        self._poll = True
        self._next_poll = float("-inf")
        # Committed rows handed over by the writer, delivered before (and without) a poll.
        self._handed: list[OutboxMessage] = []
        # Ids this worker has already taken up (from a hand-off or a poll), so that a row
        # both handed over and found by a poll is sent once. Bounded: a row older than
        # this window is no longer pending in either path.
        self._taken: OrderedDict[int, None] = OrderedDict()
        # Per notifier: rows waiting for its next message (hand-offs, or the next due
        # rows read by a poll while the notifier was idle), by id.
        self._queued: dict[str, dict[int, OutboxMessage]] = {n: {} for n in self._notifiers}
        # Notifiers whose last poll found more rows than one message carries.
        self._more: set[str] = set()
        # The message in flight per notifier. A notifier is only polled while idle, so a
        # poll never reads a row whose send is still running or whose outcome is being
        # stored (which would send it twice).
        self._sending: dict[str, asyncio.Task[None]] = {}
        # Outcomes of sends that could not be stored (database down): their rows are not
        # sent again; storing is retried on every pass.
        self._unrecorded: dict[int, tuple[str, NotifyError | None]] = {}
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
        if not self._active():
            return  # not the leader: the leader's poll finds the rows within a second
        now = self._clock.now()
        # A row held back (quiet hours) waits for the poll that finds it due.
        self._handed.extend(r for r in rows if r.id is not None
                            and as_utc(r.next_attempt_at) <= now)
        self._wake.set()

    def _take(self, rows: Sequence[OutboxMessage]) -> list[OutboxMessage]:
        """The rows not taken up before, now marked as taken."""
        fresh: list[OutboxMessage] = []
        for row in rows:
            assert row.id is not None
            if row.id in self._taken:
                continue
            self._mark_taken(row.id)
            fresh.append(row)
        return fresh

    def _mark_taken(self, row_id: int) -> None:
        self._taken[row_id] = None
        self._taken.move_to_end(row_id)
        while len(self._taken) > _TAKEN_WINDOW:
            self._taken.popitem(last=False)

    def stop(self) -> None:
        """Stop dispatching; :meth:`run` returns once the sends in flight have stored
        their outcome (each is bounded by its notifier's timeout)."""
        self._stopping = True
        self._wake.set()

    @property
    def in_flight(self) -> frozenset[str]:
        """Notifiers with a message being sent."""
        return frozenset(self._sending)

    async def flush(self) -> None:
        """Wait until no send is in flight (their outcomes stored, or kept to store)."""
        while self._sending:
            await asyncio.wait(list(self._sending.values()))

    async def run(self) -> None:
        """Deliver until :meth:`stop` (or cancellation, which cancels sends in flight)."""
        try:
            while not self._stopping:
                self._wake.clear()
                delay = await self.run_once()
                if delay > 0 and not self._stopping and not self._handed and not self._poll:
                    try:
                        async with asyncio.timeout(delay):
                            await self._wake.wait()
                    except TimeoutError:
                        pass
            await self.flush()
        finally:
            tasks = list(self._sending.values())
            for task in tasks:
                task.cancel()
            if tasks:
                await asyncio.gather(*tasks, return_exceptions=True)

    async def run_once(self) -> float:
        """Take the rows handed over, poll the store if asked to or if it is time, and
        start a send for every idle notifier with rows (rate limits permitting).

        Sends run on their own; :meth:`flush` waits for them.

        Returns:
            Seconds until the next pass is due.
        """
        loop = asyncio.get_running_loop()
        async with self._pass_lock:
            try:
                if self._unrecorded:
                    await self._store_unrecorded()
                if self._handed:
                    handed, self._handed = self._handed, []
                    self._queue_handed(self._take(handed))
                if not self._active():
                    self._stand_by()
                elif self._poll or loop.time() >= self._next_poll:
                    self._poll = False
                    self._next_poll = loop.time() + 1.0
                    await self._poll_due()
                else:
                    # A notifier whose last message left more due rows behind: read its
                    # next ones as soon as it is idle again.
                    more = [n for n in self._more
                            if n not in self._sending and not self._queued[n]]
                    if more:
                        await self._poll_due(more)
                wait = self._dispatch() if self._active() else None  # (lost while polling)
                if wait is not None:
                    self._next_poll = min(self._next_poll, loop.time() + wait)
            except (OSError, sa.exc.SQLAlchemyError) as exc:
                log.warning("outbox pass failed, retrying: %s", type(exc).__name__)
                self._next_poll = loop.time() + 1.0
            except Exception:
                log.exception("outbox pass failed unexpectedly, retrying")
                self._next_poll = loop.time() + 1.0
        return max(0.0, self._next_poll - loop.time())

    async def deliver_due(self) -> float:
        """One pass: poll every idle notifier's due rows and start their sends.

        Returns:
            Seconds until the next pass is worth making (capped at 1 s).
        """
        async with self._pass_lock:
            if not self._active():
                self._stand_by()
                return 1.0
            await self._poll_due()
            wait = self._dispatch()
        return 1.0 if wait is None else min(1.0, wait)

    def _stand_by(self) -> None:
        """Not the leader: drop what waits (the rows are durable, the leader sends them),
        and look again in a second. Sends in flight finish and store their outcome."""
        self._handed.clear()
        for queued in self._queued.values():
            queued.clear()
        self._more.clear()
        self._poll = False
        self._next_poll = asyncio.get_running_loop().time() + 1.0
        self.pending = 0  # the leader's gauge counts them

    def _queue_handed(self, rows: Sequence[OutboxMessage]) -> None:
        batch_max = self._config.outbox_batch_max
        for row in rows:
            assert row.id is not None
            queued = self._queued.get(row.notifier)
            if queued is None or len(queued) >= batch_max:
                # Unknown notifier (the poll fails the row), or more than a message's
                # worth is waiting: the row is durable, the poll picks it up in order.
                self._poll = True
                continue
            queued[row.id] = row

    async def _poll_due(self, names: Iterable[str] | None = None) -> None:
        """Refill the queue of each idle notifier with its next due rows, first sends
        first; fail due rows whose notifier is not configured."""
        now = self._clock.now()
        idle = [n for n in (self._notifiers if names is None else names)
                if n not in self._sending]
        limit = self._config.outbox_batch_max + 1
        due = (col(OutboxMessage.status) == "pending", col(OutboxMessage.next_attempt_at) <= now)
        async with self._store.session() as session:
            found: dict[str, list[OutboxMessage]] = {}
            for name in idle:
                found[name] = list((await session.exec(
                    select(OutboxMessage)
                    .where(col(OutboxMessage.notifier) == name, *due)
                    .order_by(sa.case((col(OutboxMessage.attempts) == 0, 0), else_=1),
                              col(OutboxMessage.id))
                    .limit(limit + len(self._unrecorded)))).all())
            orphans: list[OutboxMessage] = []
            if names is None:
                orphans = list((await session.exec(
                    select(OutboxMessage)
                    .where(col(OutboxMessage.notifier).not_in(list(self._notifiers)), *due)
                    .order_by(col(OutboxMessage.id)).limit(100))).all())
                # The gauge need not be exact per pass; keep the query off the alert path.
                if self._clock.monotonic() - self._counted_at >= 5.0 \
                        or not any(found.values()):
                    self._counted_at = self._clock.monotonic()
                    self.pending = int((await session.exec(
                        select(func.count()).select_from(OutboxMessage)
                        .where(col(OutboxMessage.status) == "pending"))).one())
        for name, read in found.items():
            rows = [r for r in read if r.id not in self._unrecorded]
            for row in rows:
                assert row.id is not None
                self._mark_taken(row.id)  # a later hand-off of it is ignored
            # The store is the truth for an idle notifier: its queue becomes the rows read.
            self._queued[name] = {r.id: r for r in rows[:limit - 1] if r.id is not None}
            if len(rows) >= limit:
                self._more.add(name)
            else:
                self._more.discard(name)
        if orphans:
            outcomes: list[_Outcome] = []
            for row in orphans:
                assert row.id is not None
                self._mark_taken(row.id)
                outcomes.append((row.id, NotifyError(
                    f"notifier {row.notifier!r} is not configured")))
            self._count(refused=len(outcomes))
            await self._record("(unknown)", outcomes)

    def _dispatch(self) -> float | None:
        """Start one send per idle notifier with queued rows, rate limits permitting.

        Returns:
            Seconds until a rate-limited notifier may send, or None if none waits.
        """
        delay: float | None = None
        batch_max = self._config.outbox_batch_max
        for name, queued in self._queued.items():
            if not queued or name in self._sending or self._stopping:
                continue
            rows = sorted(queued.values(), key=lambda r: (r.attempts > 0, r.id or 0))
            retry = rows[0].attempts > 0  # only retries waiting: they use the retry share
            limiter = self._limiters[name]
            wait = limiter.wait_time(self._clock.monotonic(), retry=retry)
            if wait > 0:
                delay = wait if delay is None else min(delay, wait)
                continue
            batch = rows[:batch_max]
            for row in batch:
                assert row.id is not None
                del queued[row.id]
            limiter.record(self._clock.monotonic(), retry=retry)
            task = asyncio.get_running_loop().create_task(
                self._deliver(name, batch), name=f"netguard[outbox].{name}")
            self._sending[name] = task
            task.add_done_callback(functools.partial(self._sent, name))
        return delay

    def _sent(self, name: str, _task: asyncio.Task[None]) -> None:
        self._sending.pop(name, None)
        self._wake.set()  # the notifier is idle: its next rows may go

    async def _deliver(self, name: str, rows: list[OutboxMessage]) -> None:
        """Send one message and store its outcome. Never raises (except cancellation)."""
        try:
            notifier = self._notifiers[name]
            outcomes: list[_Outcome] = []
            batch: list[tuple[int, Notification]] = []
            refused = 0
            for row in rows:
                assert row.id is not None
                try:
                    notification = self._with_link(Notification.from_json(row.body))
                    notifier.check(notification)
                except NotifyError as exc:
                    outcomes.append((row.id, exc))
                    refused += 1
                except (ValueError, TypeError, KeyError) as exc:
                    outcomes.append((row.id, NotifyError(
                        f"unreadable outbox body: {type(exc).__name__}")))
                    refused += 1
                else:
                    batch.append((row.id, notification))
            if refused:
                log.warning("alert delivery via %s refused %d alert(s): %s", name, refused,
                            outcomes[0][1], extra={"notifier": name})
            error = None
            if batch:
                error = await self._send(name, notifier, [n for _, n in batch])
                outcomes.extend((row_id, error) for row_id, _ in batch)
                if error is not None:
                    log.warning("alert delivery via %s failed: %s", name, error,
                                extra={"notifier": name, "alerts": len(batch)})
            self._count(messages_sent=1 if batch else 0,
                        send_errors=1 if error is not None else 0, refused=refused)
            await self._record(name, outcomes)
        except Exception:
            log.exception("outbox send via %s failed unexpectedly", name)

    def _with_link(self, n: Notification) -> Notification:
        """``n`` with a fresh acknowledgement link (minted per send, so that its expiry
        counts from when staff see it), bound to the recipient when there is exactly one."""
        if self._links is None or n.reason in ("recovery", "resolved") \
                or n.subject not in LINK_KINDS:
            return n  # a recovery or resolution closes nothing that needs acknowledging
        recipient = n.recipients[0] if len(n.recipients) == 1 else ""
        url = self._links.url(n.subject, n.alert_id, self._clock.now(), recipient=recipient)
        return dataclasses.replace(n, ack_url=url)

    async def _send(self, name: str, notifier: Notifier,
                    batch: list[Notification]) -> NotifyError | None:
        """Send one message; any failure becomes the error to store, never an exception."""
        timeout = self._send_timeout[name]
        async with self._slots:
            try:
                async with asyncio.timeout(timeout):
                    await notifier.send(batch)
            except NotifyError as exc:
                return exc
            except TimeoutError:
                return NotifyTransientError(f"{name}: no answer within {timeout:g} s")
            except Exception as exc:
                # A bug or an unexpected library error (e.g. a client refusing a topic)
                # is still an attempt with a reason: retried with backoff, then failed.
                log.warning("alert delivery via %s raised %s", name, type(exc).__name__,
                            exc_info=True, extra={"notifier": name})
                reason = SECRETS.redact(f"{name}: {type(exc).__name__}: {exc}")
                return NotifyTransientError(reason)
        return None

    def _count(self, **more: int) -> None:
        s = self.stats
        self.stats = dataclasses.replace(
            s, **{key: getattr(s, key) + value for key, value in more.items()})

    async def _store_unrecorded(self) -> None:
        pending, self._unrecorded = self._unrecorded, {}
        by_name: dict[str, list[_Outcome]] = {}
        for row_id, (name, error) in pending.items():
            by_name.setdefault(name, []).append((row_id, error))
        for name, outcomes in by_name.items():
            await self._record(name, outcomes)

    async def _record(self, name: str, outcomes: Sequence[_Outcome]) -> None:
        """Store the outcome of one message: one attempt for each of its rows."""
        now = self._clock.now()
        errors = dict(outcomes)
        delivered = failed = attempted = 0
        try:
            async with self._store.session() as session:
                rows = (await session.exec(select(OutboxMessage).where(
                    col(OutboxMessage.id).in_(list(errors))))).all()
                for row in rows:
                    assert row.id is not None
                    if row.status != "pending":
                        continue  # already stored (a retried store that had succeeded)
                    error = errors[row.id]
                    row.attempts += 1
                    attempted += 1
                    if error is None:
                        row.status, row.delivered_at, row.last_error = "delivered", now, None
                        delivered += 1
                    else:
                        row.last_error = str(error)[:500]
                        if (not isinstance(error, NotifyTransientError)
                                or row.attempts >= self._config.outbox_max_attempts):
                            row.status = "failed"
                            failed += 1
                        else:
                            row.next_attempt_at = now + timedelta(seconds=backoff_seconds(
                                row.attempts, self._config.outbox_backoff_min_seconds,
                                self._config.outbox_backoff_max_seconds, self._rng))
                    session.add(row)
                await session.commit()
        except (OSError, sa.exc.SQLAlchemyError) as exc:
            # Not stored: keep the outcome (the rows stay out of every poll, so they are
            # not sent twice) and store it on a later pass.
            log.warning("outbox: could not store the outcome of a send via %s (%s); "
                        "keeping it", name, type(exc).__name__)
            for row_id, error in outcomes:
                self._unrecorded[row_id] = (name, error)
            return
        if failed:
            log.warning("gave up on %d alert notification(s) via %s: %s", failed, name,
                        next(e for _, e in outcomes if e is not None),
                        extra={"notifier": name, "gave_up": failed})
        self._count(delivered=delivered, failed=failed, attempts=attempted)
        s = self.stats
        self.stats = dataclasses.replace(
            s, delivered_by=_bump(s.delivered_by, name, delivered),
            failed_by=_bump(s.failed_by, name, failed))
