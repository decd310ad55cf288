"""The door-sensor service: intake -> durable hash-chained log -> rules -> alerts -> outbox.

:class:`IotService` is the one object the daemon, the demo and the benches use. Each batch
of messages is decoded (pure codecs), deduplicated (:mod:`netguard.iot.dedup`), planned
(:mod:`netguard.iot.batch`: rows, sensor states and alert actions), chained, and
committed in *one* transaction together with the alert changes and the outbox rows the
rules produced; only after that commit are the MQTT messages acknowledged. A crash at any
point therefore either loses nothing or redelivers messages that deduplication drops.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timedelta
from types import TracebackType
from typing import Any

import aiohttp
import sqlalchemy as sa
from sqlmodel.ext.asyncio.session import AsyncSession

from netguard.acklinks import AckLinks
from netguard.clock import Clock, SystemClock
from netguard.errors import PayloadError, StoreError
from netguard.iot import seen
from netguard.iot.actions import apply_action, count_open_alerts, renotify_due
from netguard.iot.admin import IotAdmin
from netguard.iot.anchor import Anchorer
from netguard.iot.batch import (
    BatchPlan,
    Incoming,
    IngestResult,
    attach,
    file_under_sensor,
    parse,
    plan_batch,
    results,
)
from netguard.iot.chainlock import ChainLock
from netguard.iot.config import IotConfig
from netguard.iot.dedup import NATIVE_WINDOW, Deduplicator
from netguard.iot.eventlog import ChainWriter, purge
from netguard.iot.events import AlertType, RawMessage
from netguard.iot.followups import FollowUps
from netguard.iot.intake import MqttIntake
from netguard.iot.liveness import LAG, confirm_offline, heard_back, merge_liveness, reclaimed
from netguard.iot.messages import MessageRenderer
from netguard.iot.models import Event, OutboxMessage, fit_text
from netguard.iot.mqtt import tls_context
from netguard.iot.notifiers import Notifier, build_notifier
from netguard.iot.outbox import OutboxWorker
from netguard.iot.refusals import MessageRefusedError, error_summary, message_specific
from netguard.iot.registry import RegistryView, load_view
from netguard.iot.status import IngestCounters, IotSnapshot
from netguard.iot.upkeep import due_heartbeats, shift_due_times, shift_states, write_states
from netguard.store import Store

log = logging.getLogger(__name__)

DEFAULT_SHUTDOWN_TIMEOUT_SECONDS = 10.0
"""The default of ``daemon.shutdown_timeout_seconds``."""

_SLOW_COMMIT_SECONDS = 0.05
_RECOUNT_DELAY_SECONDS = 0.25
_RELOAD_MIN_SECONDS = 2.0
_OUTBOX_TASK = "netguard[iot].outbox"


class IotService:
    """The door-sensor service (an async context manager).

    Args:
        config: The ``iot`` section of the configuration.
        store: An open store at the current schema.
        shutdown_timeout: How long closing waits for a batch being committed and for a
            delivery in flight (``daemon.shutdown_timeout_seconds``).
        clock: Time source; inject a ManualClock in tests.
        notifiers: Override the notifiers built from config (tests, benches).
        links: Mints the acknowledgement link of each message (``ack_links``), or None.
        messages: Renders the texts of chat messages (``Settings.display.renderer()``);
            default zh-CN in Asia/Shanghai with the built-in templates.
        outbox_active: Whether the outbox delivers now (in a cluster, while this instance
            leads: decision 18); always, without one.
        shared: Other instances share the intake (``cluster.enabled``): the sweep and
            the intake keep sensor liveness in the store (:mod:`netguard.iot.liveness`).

    Example::

        async with Store(settings.store) as store, IotService(settings.iot, store) as iot:
            await iot.sweep()
    """

    def __init__(self, config: IotConfig, store: Store, *,
                 shutdown_timeout: float = DEFAULT_SHUTDOWN_TIMEOUT_SECONDS,
                 clock: Clock | None = None,
                 notifiers: Mapping[str, Notifier] | None = None,
                 links: AckLinks | None = None,
                 messages: MessageRenderer | None = None,
                 outbox_active: Callable[[], bool] | None = None,
                 shared: bool = False) -> None:
        self.config = config
        self._shared = shared
        self._outbox_active = outbox_active
        self._links = links
        self._messages = messages or MessageRenderer()
        self.store = store
        self.clock = clock or SystemClock()
        self._shutdown_timeout = shutdown_timeout
        key = self.config.audit_key
        self._key = None if key is None else key.get_secret_value().encode("utf-8")
        self._chain = ChainWriter(self.config.mqtt.client_id, self._key)
        anchor = self.config.audit_anchor
        self.anchors = Anchorer(store, anchor.file, self._key, self.clock,
                                anchor.interval_seconds)
        self._view = RegistryView()
        self._lock = asyncio.Lock()
        self._notifier_override = notifiers
        self._recent_max = 2 * self.config.mqtt.receive_maximum
        self._dedup = Deduplicator(self._recent_max)
        self._counters = IngestCounters()
        self._alerts_open: dict[tuple[str, str], int] = {}
        self._last_reload = float("-inf")
        self._stored_seen: dict[str, datetime | None] = {}
        self._stack = contextlib.AsyncExitStack()
        self._tasks: list[asyncio.Task[None]] = []
        self.intake: MqttIntake | None = None
        self._tg: asyncio.TaskGroup | None = None
        self._recount: asyncio.Task[None] | None = None
        self._recount_again = False
        self.outbox: OutboxWorker | None = None
        self.followups = FollowUps(self.config, self.clock)
        self._skip_retention = False
        self._chain_lock: ChainLock | None = None

    # ------------------------------------------------------------------ lifecycle

    async def __aenter__(self) -> IotService:
        # A TLS file that is missing or does not load is a configuration error: refuse to
        # start, rather than fail (with a traceback) on every reconnect.
        tls = tls_context(self.config.mqtt) if self.config.mqtt.enabled or any(
            n.type == "mqtt" for n in self.config.notifiers) else None
        await self._stack.__aenter__()
        try:
            await self._lock_chain()
            async with self.store.session() as session:
                await self._chain.load(session)
                self._view = await load_view(session)
                self._stored_seen = {k: v.last_seen for k, v in self._view.states.items()}
                self._dedup.seed(
                    await seen.recent_keys(session, self._chain.chain, self._recent_max),
                    await seen.native_identities(session, NATIVE_WINDOW))
                await self._count_alerts(session)
            # Never carry on from a chain head older than the last anchor (rows
            # truncated, an older backup restored): AnchorError says what to do.
            await self.anchors.check_start()
            self._last_reload = self.clock.monotonic()
            notifiers = await self._build_notifiers()
            self.outbox = OutboxWorker(self.store, notifiers, self.config, self.clock,
                                       links=self._links, active=self._outbox_active)
            tg = await self._stack.enter_async_context(asyncio.TaskGroup())
            self._tg = tg
            self._tasks.append(tg.create_task(self.outbox.run(), name=_OUTBOX_TASK))
            self._tasks.append(tg.create_task(self.anchors.run(), name="netguard[iot].anchor"))
            if self._chain_lock is not None:
                self._tasks.append(tg.create_task(self._chain_lock.run(),
                                                  name="netguard[iot].chain-lock"))
            if self.config.mqtt.enabled:
                self.intake = MqttIntake(self.config.mqtt, self.ingest_batch,
                                         batch_max=self.config.intake_batch_max,
                                         clock=self.clock, tls=tls)
                self._tasks.append(tg.create_task(self.intake.run(),
                                                  name="netguard[mqtt].intake"))
        except BaseException:
            await self._stack.aclose()
            raise
        return self

    async def _lock_chain(self) -> None:
        # One process per chain: two with the same client id would number rows from one
        # head (docs/scale-out.md). Before the head is read and the broker is joined.
        if not self.config.mqtt.enabled or self.store.dialect != "postgresql":
            return
        lock = ChainLock(self.store.config, self._chain.chain)
        self._stack.push_async_callback(lock.close)
        await lock.acquire()
        self._chain_lock = lock

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        # Stop the intake first: messages not yet committed stay unacknowledged in the
        # broker's session and come back next time. Each batch commits in one
        # transaction, so there is nothing half-written to flush.
        # Let a batch being committed finish (it is then acknowledged or redelivered and
        # deduplicated), but never wait longer than the daemon's shutdown timeout.
        locked = False
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(self._shutdown_timeout):
                await self._lock.acquire()
                locked = True
        try:
            for task in self._tasks:
                if task.get_name() != _OUTBOX_TASK:
                    task.cancel()
            if self._recount is not None:
                self._recount.cancel()  # a gauge: nothing to finish
            if self.outbox is not None:
                # Let a delivery in flight record its outcome, so it is not sent twice.
                self.outbox.stop()
                outbox_task = next(t for t in self._tasks if t.get_name() == _OUTBOX_TASK)
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self._shutdown_timeout):
                        await asyncio.shield(outbox_task)
                outbox_task.cancel()
            await self._stack.aclose()
            self._tasks.clear()
            # The shutdown anchor: the head as this instance leaves it.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._shutdown_timeout):
                    await self.anchors.try_anchor()
        finally:
            if locked:
                self._lock.release()

    async def _build_notifiers(self) -> dict[str, Notifier]:
        if self._notifier_override is not None:
            return dict(self._notifier_override)
        http = await self._stack.enter_async_context(aiohttp.ClientSession())
        return {n.name: build_notifier(n, http, self.config.mqtt, self._messages)
                for n in self.config.notifiers}

    # ------------------------------------------------------------------ status

    @property
    def mqtt_connected(self) -> bool:
        """True while the intake holds a broker connection."""
        return self.intake is not None and self.intake.connected

    async def ready(self) -> bool:
        """Ready to serve: the store answers and, if MQTT is enabled, we are connected."""
        if self.config.mqtt.enabled and not self.mqtt_connected:
            return False
        return await self.store.ping()

    def snapshot(self) -> IotSnapshot:
        """The current counters (no I/O)."""
        states = list(self._view.states.values())
        low = self.config.rules.battery_low_percent
        stats = self.outbox.stats if self.outbox else None
        counters = self._counters
        return IotSnapshot(
            mqtt_connected=self.mqtt_connected,
            mqtt_connect_failures=self.intake.connect_failures if self.intake else 0,
            door_events=dict(counters.events),
            duplicates=counters.duplicates,
            dead_letters=dict(counters.dead),
            store_failures=counters.store_failures,
            sensors_online=sum(1 for s in states if s.online),
            sensors_offline=sum(1 for s in states if not s.online),
            sensors_low_battery=sum(1 for s in states
                                    if s.battery is not None and s.battery < low),
            alerts_open=dict(self._alerts_open),
            deliveries_delivered=stats.delivered if stats else 0,
            deliveries_failed=stats.failed if stats else 0,
            delivery_send_errors=stats.send_errors if stats else 0,
            deliveries_refused=stats.refused if stats else 0,
            outbox_pending=self.outbox.pending if self.outbox else 0,
            mqtt_enabled=self.config.mqtt.enabled,
            delivered_by=stats.delivered_by if stats else {},
            failed_by=stats.failed_by if stats else {},
            audit_anchor_sequence=self.anchors.sequences(),
            audit_anchor_time=None if self.anchors.last_at is None
            else self.anchors.last_at.timestamp(),
            audit_anchor_failures=self.anchors.failures,
            payload_field_errors=dict(counters.field_errors),
        )

    # ------------------------------------------------------------------ intake

    async def ingest(self, topic: str, payload: bytes) -> IngestResult:
        """Run one message through the pipeline without a broker (demo, benches, tests)."""
        return (await self.ingest_batch([RawMessage(topic, payload)]))[0]

    async def ingest_batch(self, messages: Sequence[RawMessage]) -> list[IngestResult]:
        """Decode, deduplicate, store, evaluate and commit a batch in one transaction.

        Returns when the batch is durable (then it is safe to acknowledge). A message the
        database refuses by itself (a value it cannot store, which the checks before the
        insert missed) never blocks the others: the batch is then stored message by
        message, and that one becomes a ``store_rejected`` dead letter.

        Raises:
            StoreError: The store refused the batch as a whole (unreachable, disk full,
                read-only); nothing of it was stored. The intake then holds the
                acknowledgements, so the broker redelivers the batch later.
        """
        async with self._lock:
            try:
                return await self._store(messages)
            except MessageRefusedError as exc:
                if len(messages) == 1:
                    return await self._store(messages, refused=exc)
                log.warning("the store refused a message of a batch of %d; storing them "
                            "one by one: %s", len(messages), exc)
            out: list[IngestResult] = []
            for message in messages:
                try:
                    out += await self._store([message])
                except MessageRefusedError as exc:
                    out += await self._store([message], refused=exc)
            return out

    async def _store(self, messages: Sequence[RawMessage], *,
                     refused: MessageRefusedError | None = None) -> list[IngestResult]:
        try:
            try:
                return await self._ingest_locked(messages, check_store=False, refused=refused)
            except sa.exc.IntegrityError:
                # An identity older than the in-memory window (or stored by another
                # instance), or another writer on our chain: look in the store, reload
                # the chain head and try once more.
                async with self.store.session() as session:
                    await self._chain.load(session)
                return await self._ingest_locked(messages, check_store=True, refused=refused)
        except Exception as exc:
            summary = error_summary(exc)
            if refused is None and message_specific(exc):
                raise MessageRefusedError(summary) from exc
            self._counters.store_failures += 1
            raise StoreError(f"storing events failed: {summary}") from exc

    async def _decode(self, incoming: Incoming) -> None:
        parsed = parse(incoming.message, self.config)
        if isinstance(parsed, PayloadError):
            incoming.error = parsed
            file_under_sensor(incoming, self._view, self.config)
            return
        fmt, event = parsed
        entry = self._view.lookup(fmt, event.address)
        if entry is None and self.clock.monotonic() - self._last_reload > _RELOAD_MIN_SECONDS:
            # The CLI may have just registered it.
            await self._reload_view()
            entry = self._view.lookup(fmt, event.address)
        attach(incoming, fmt, event, entry, self.config)

    async def _reload_view(self, *, sweep: bool = False) -> None:
        async with self.store.session() as session:
            fresh = await load_view(session)
        if sweep and self._shared:
            # Other intakes heard sensors this one did not: netguard.iot.liveness.
            fresh.states.update(merge_liveness(self._view.states, fresh.states))
        else:
            # Keep in-memory states: they are at least as new as the stored ones.
            fresh.states.update({k: v for k, v in self._view.states.items()
                                 if k in fresh.states})
        self._view = fresh
        self._last_reload = self.clock.monotonic()

    async def _ingest_locked(self, messages: Sequence[RawMessage], *, check_store: bool,
                             refused: MessageRefusedError | None = None
                             ) -> list[IngestResult]:
        now = self.clock.now()
        batch = [Incoming.of(m, now) for m in messages]
        for incoming in batch:
            if refused is None:
                await self._decode(incoming)
            else:
                incoming.error = PayloadError("store_rejected",
                                              f"the database refused it: {refused}")
        # Native identities are looked up in the deduplicator's window; an older one makes
        # the insert fail on the unique key, and the batch is then retried with
        # ``check_store`` (one query), so the common path has no extra round trip.
        stored: set[str] = set()
        native = [p.identity for p in batch if p.identity]
        if check_store and native:
            async with self.store.session() as session:
                stored = await seen.stored_identities(session, native)
        duplicates = self._dedup.duplicates([p.candidate() for p in batch], stored)
        plan = plan_batch(batch, duplicates, view=self._view, stored_seen=self._stored_seen,
                          rules=self.config.rules, chain=self._chain.chain,
                          raw_keep_bytes=self.config.raw_keep_bytes)
        head = self._chain.link(plan.rows)
        heard = heard_back(batch, duplicates, plan) if self._shared else {}
        raised = await self._commit(batch, plan, heard)
        self._chain.commit(head)
        self._view.states.update(plan.states)
        self._stored_seen.update((d.sensor_id, d.last_seen) for d in plan.dirty)
        if plan.actions:
            self._refresh_alert_counts()
        for i, incoming in enumerate(batch):
            self._dedup.record(incoming.dedupe_key, incoming.identity,
                               duplicate=i in duplicates)
        out = results(batch, duplicates, raised)
        self._tally(batch, out)
        return out

    async def _commit(self, batch: Sequence[Incoming], plan: BatchPlan,
                      heard: Mapping[str, int]) -> dict[int, list[int]]:
        """Write a planned batch in one transaction; the ids of the alerts each message
        opened, by its index. ``heard``: see :func:`~netguard.iot.liveness.heard_back`."""
        raised: dict[int, list[int]] = {}
        outbox_rows: list[OutboxMessage] = []
        started = time.perf_counter()
        async with self.store.session() as session:
            if plan.rows:
                await session.exec(sa.insert(Event), params=plan.rows)
            if heard:  # before the states: the store may hold one offline
                plan.actions.extend(await reclaimed(session, batch, heard))
            await write_states(session, plan.dirty)
            for i, action in plan.actions:
                incoming = batch[i]
                alert_id, new = await apply_action(
                    session, dialect=self.store.dialect, view=self._view,
                    sensor_id=incoming.sensor_id or "", action=action, now=incoming.when,
                    config=self.config, outbox_rows=outbox_rows, followups=self.followups)
                if alert_id is not None and new:
                    raised.setdefault(i, []).append(alert_id)
            await session.commit()
            if outbox_rows and self.outbox is not None:
                # Straight to delivery: the rows are durable now, and re-reading them would
                # cost a query (and its thread hops) on the alert's path. Detached first,
                # so the worker's session can take them while this one returns its
                # connection to the pool.
                for row in outbox_rows:
                    session.expunge(row)
                self.outbox.hand_off(outbox_rows)
        elapsed = time.perf_counter() - started
        if elapsed > _SLOW_COMMIT_SECONDS:
            log.info("slow event commit", extra={"seconds": round(elapsed, 3),
                                                 "events": len(plan.rows)})
        return raised

    def _tally(self, batch: Sequence[Incoming], out: Sequence[IngestResult]) -> None:
        self._counters.count(out)
        for incoming, result in zip(batch, out, strict=True):
            if result.status == "dead" and incoming.error is not None:
                log.warning("dead letter (%s): %s", incoming.error.reason,
                            fit_text(str(incoming.error), 300),
                            extra={"reason": incoming.error.reason,
                                   "topic": fit_text(incoming.message.topic, 200),
                                   "bytes": len(incoming.message.payload)})

    # ------------------------------------------------------------------ alerts

    def _refresh_alert_counts(self) -> None:
        """Recount open alerts in the background (coalesced), off the ingest path."""
        if self._tg is None or (self._recount is not None and not self._recount.done()):
            self._recount_again = self._tg is not None
            return
        self._recount_again = False
        self._recount = self._tg.create_task(self._recount_loop(),
                                             name="netguard[iot].alert-counts")

    async def _recount_loop(self) -> None:
        while True:
            # A gauge for metrics, scraped every few seconds: wait a moment so that the
            # query does not compete with the just-raised alert's delivery, and so that
            # one count covers a burst of batches.
            await asyncio.sleep(_RECOUNT_DELAY_SECONDS)
            self._recount_again = False
            try:
                async with self.store.session() as session:
                    await self._count_alerts(session)
            except sa.exc.SQLAlchemyError as exc:
                log.warning("counting open alerts failed: %s", type(exc).__name__)
            if not self._recount_again:
                return
            self._recount_again = False

    async def _count_alerts(self, session: AsyncSession) -> None:
        self._alerts_open = await count_open_alerts(session)

    async def acknowledge(self, alert_id: int, actor: str) -> dict[str, Any]:
        """Acknowledge an alert for ``actor`` (see :meth:`IotAdmin.acknowledge`, the one
        path every caller takes), then recount the open alerts for metrics."""
        acked = await IotAdmin(self.store, clock=self.clock).acknowledge(alert_id, actor)
        async with self.store.session() as session:
            await self._count_alerts(session)
        return acked

    # ------------------------------------------------------------------ clock steps

    async def on_clock_step(self, step_seconds: float) -> None:
        """Re-baseline after the wall clock stepped by ``step_seconds`` (see ``ClockWatch``).

        Heartbeat timeouts compare stored wall stamps with "now": after a forward step of
        an hour every sensor would look an hour more silent than it is and be declared
        offline, and a backward step would hide real silence. Moving each sensor's
        liveness baseline by the step keeps the timeout measured in elapsed time (the
        baselines are written at once, so a restart keeps them); likewise the due time of
        each alert retry waiting out its backoff and of each open alert's next reminder.
        Event records keep their stamps. The next retention purge is skipped: its cutoff
        moved with the step, and a purge cannot be undone.
        """
        delta = timedelta(seconds=step_seconds)
        async with self._lock:
            shifted = shift_states(self._view.states, delta)
            async with self.store.session() as session:
                await write_states(session, shifted.values())
                retries = await shift_due_times(session, delta)
                await session.commit()
            self._view.states.update(shifted)
            self._stored_seen.update((d.sensor_id, d.last_seen) for d in shifted.values())
            self._skip_retention = True
        log.warning("wall clock stepped: sensor heartbeat baselines moved with it and the "
                    "next retention purge is skipped",
                    extra={"step_seconds": round(step_seconds, 3), "sensors": len(shifted),
                           "retries": retries})

    # ------------------------------------------------------------------ sweep

    async def sweep(self) -> None:
        """Periodic work: heartbeat timeouts, re-notifications, folded repeat openings
        (:mod:`netguard.iot.followups`), retention purge.

        The daemon calls it every ``daemon.sweep_interval_seconds``; tests call it with a
        ManualClock.
        """
        async with self._lock:
            try:
                await self._sweep_locked()
            except sa.exc.SQLAlchemyError as exc:
                raise StoreError(f"iot sweep failed: {type(exc).__name__}") from exc

    async def _sweep_locked(self) -> None:
        await self._reload_view(sweep=True)
        now = self.clock.now()
        changed, actions = due_heartbeats(self._view, self.config.rules, now,
                                          lag=LAG if self._shared else timedelta(0))
        outbox_rows: list[OutboxMessage] = []
        async with self.store.session() as session:
            if self._shared:  # only what the store still holds online and unseen
                changed, actions = await confirm_offline(session, changed, actions)
            else:
                await write_states(session, changed.values())
            for sensor_id, action in actions:
                await apply_action(session, dialect=self.store.dialect, view=self._view,
                                   sensor_id=sensor_id, action=action, now=now,
                                   config=self.config, outbox_rows=outbox_rows,
                                   followups=self.followups)
            outbox_rows += await renotify_due(session, self.config, now)
            outbox_rows += await self.followups.sweep(session, now)
            redacted = deleted = 0
            if self._skip_retention:
                self._skip_retention = False
            else:
                cutoff = now - timedelta(days=self.config.retention_days)
                redacted, deleted = await purge(session, cutoff=cutoff, now=now, key=self._key)
            await session.commit()
            await self._count_alerts(session)
        self._view.states.update(changed)
        self._stored_seen.update((d.sensor_id, d.last_seen) for d in changed.values())
        if redacted or deleted:
            log.info("retention purge", extra={"redacted": redacted, "deleted": deleted})
        if outbox_rows and self.outbox is not None:
            self.outbox.wake()


__all__ = ["AlertType", "IngestResult", "IotService", "IotSnapshot"]
