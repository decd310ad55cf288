"""The door-sensor service: intake -> durable hash-chained log -> rules -> alerts -> outbox.

:class:`IotService` is the one object the daemon, the demo and the benches use. Each batch
of messages is decoded (pure codecs), deduplicated, chained, and committed in *one*
transaction together with the sensor states, the alert changes and the outbox rows the
rules produced; only after that commit are the MQTT messages acknowledged. A crash at any
point therefore either loses nothing or redelivers messages that deduplication drops.

Deduplication identities:

* native payloads: ``n:<len>:<sensor>:<len>:<boot>:<seq>`` (length-prefixed, so no
  sensor id or boot id can make two events share it), a database unique key. The last 100,000
  are also kept in memory, so the common path needs no lookup; an older one makes the
  insert fail, and the batch is retried once with a lookup;
* Zigbee2MQTT and Shelly payloads carry no sequence number, and identical payloads
  legitimately repeat, so a content hash cannot tell a redelivery from a new report.
  What can: the broker redelivers an unacknowledged message on the same persistent
  session with the DUP flag set and the *same packet id*. Because we acknowledge right
  after each commit, only the last ``receive_maximum`` messages can be unacknowledged, so
  a DUP message whose (packet id, topic, payload) matches one of our last
  2 x ``receive_maximum`` stored messages is that message again. Everything else is new.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hashlib
import logging
import time
import uuid
from collections import Counter, OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from types import TracebackType
from typing import Any, Literal

import sqlalchemy as sa
from sqlmodel import col, func, select
from sqlmodel.ext.asyncio.session import AsyncSession

from netguard.clock import Clock, SystemClock, as_utc
from netguard.config import Settings
from netguard.errors import PayloadError, StoreError
from netguard.iot import alerts as alert_store
from netguard.iot.anchor import Anchorer
from netguard.iot.codecs import decode, topic_matches
from netguard.iot.eventlog import ChainWriter, purge
from netguard.iot.events import AlertType, DoorEvent, RawMessage, native_identity
from netguard.iot.followups import FollowUps
from netguard.iot.intake import MqttIntake
from netguard.iot.models import (
    TOPIC_MAX,
    Alert,
    Event,
    OutboxMessage,
    Sensor,
    fit_text,
    printable,
    row_problems,
)
from netguard.iot.mqtt import tls_context
from netguard.iot.notifiers import Notifier, build_notifier
from netguard.iot.notifiers.base import Notification
from netguard.iot.outbox import OutboxWorker, enqueue
from netguard.iot.registry import RegistryView, load_view, states_to_rows
from netguard.iot.rules import (
    AlertAction,
    ClearAlert,
    RaiseAlert,
    SensorState,
    check_heartbeat,
    evaluate,
)
from netguard.store import Store
from netguard.store.health import store_wide_reason

log = logging.getLogger(__name__)

_STATE_WRITE_INTERVAL = timedelta(seconds=30)
_SLOW_COMMIT_SECONDS = 0.05
_RECOUNT_DELAY_SECONDS = 0.25
_OUTBOX_TASK = "netguard[iot].outbox"
# Native identities kept in memory for deduplication without a query (~100 bytes each).
_NATIVE_WINDOW = 100_000

IngestStatus = Literal["stored", "duplicate", "dead"]
_EVENT_TABLE: sa.Table = Event.__table__  # type: ignore[attr-defined]
_DETAIL_MAX = 500


@dataclass(frozen=True, slots=True)
class IngestResult:
    """What happened to one message."""

    status: IngestStatus
    kind: str | None = None
    reason: str | None = None
    sensor_id: str | None = None
    alerts_raised: tuple[int, ...] = ()


@dataclass(frozen=True, slots=True)
class IotSnapshot:
    """Counters and gauges for metrics; built without I/O.

    Attributes:
        mqtt_connected: The intake holds a broker connection.
        mqtt_connect_failures: Failed attempts to connect to the broker since start.
        door_events: Events stored since start, by kind (``open``, ``close``, ...).
        duplicates: Redeliveries dropped since start.
        dead_letters: Messages dead-lettered since start, by reason (``store_rejected``:
            the database refused the message itself, after every check passed).
        store_failures: Batches the store refused as a whole (unreachable, disk full,
            read-only); the intake then holds their acknowledgements and reconnects.
        sensors_online / sensors_offline / sensors_low_battery: Current sensor counts.
        alerts_open: Open alerts by (type, community).
        deliveries_delivered / deliveries_failed: Outbox rows since start.
        delivery_send_errors: Alert messages whose send failed (error answer, exception
            or timeout) since start; each failed row is retried until its attempts run out.
        deliveries_refused: Rows a notifier refused outright since start (a community name
            that cannot be an MQTT topic level); they also count in ``deliveries_failed``.
        outbox_pending: Rows waiting for delivery (as of the last outbox pass).
        mqtt_enabled: The MQTT intake is configured (``iot.mqtt.enabled``).
        delivered_by / failed_by: ``deliveries_*`` by notifier name.
        audit_anchor_sequence: The anchored head sequence number per chain.
        audit_anchor_time: Unix time of the last anchor pass (None before the first).
        audit_anchor_failures: Anchor passes that failed since start.
    """

    mqtt_connected: bool = False
    mqtt_connect_failures: int = 0
    door_events: Mapping[str, int] = field(default_factory=dict)
    duplicates: int = 0
    dead_letters: Mapping[str, int] = field(default_factory=dict)
    store_failures: int = 0
    sensors_online: int = 0
    sensors_offline: int = 0
    sensors_low_battery: int = 0
    alerts_open: Mapping[tuple[str, str], int] = field(default_factory=dict)
    deliveries_delivered: int = 0
    deliveries_failed: int = 0
    delivery_send_errors: int = 0
    deliveries_refused: int = 0
    outbox_pending: int = 0
    mqtt_enabled: bool = False
    delivered_by: Mapping[str, int] = field(default_factory=dict)
    failed_by: Mapping[str, int] = field(default_factory=dict)
    audit_anchor_sequence: Mapping[str, int] = field(default_factory=dict)
    audit_anchor_time: float | None = None
    audit_anchor_failures: int = 0


@dataclass(slots=True)
class _Pending:
    message: RawMessage
    received_at: datetime
    # When the rules judge the event: the device's own time when plausible, else
    # ``received_at`` (the first receipt).
    event_time: datetime | None = None
    event: DoorEvent | None = None
    error: PayloadError | None = None
    sensor_id: str | None = None
    household_id: str | None = None
    identity: str = ""
    dedupe_key: tuple[int, str, str] | None = None


class IotService:
    """The door-sensor service (an async context manager).

    Args:
        settings: The whole configuration (``settings.iot`` is used).
        store: An open store at the current schema.
        clock: Time source; inject a ManualClock in tests.
        notifiers: Override the notifiers built from config (tests, benches).

    Example::

        async with Store(settings.store) as store, IotService(settings, store) as iot:
            await iot.sweep()
    """

    def __init__(self, settings: Settings, store: Store, *, clock: Clock | None = None,
                 notifiers: Mapping[str, Notifier] | None = None) -> None:
        self.settings = settings
        self.config = settings.iot
        self.store = store
        self.clock = clock or SystemClock()
        key = self.config.audit_key
        self._key = None if key is None else key.get_secret_value().encode("utf-8")
        self._chain = ChainWriter(self.config.mqtt.client_id, self._key)
        anchor = self.config.audit_anchor
        self.anchors = Anchorer(store, anchor.file, self._key, self.clock,
                                anchor.interval_seconds)
        self._view = RegistryView()
        self._lock = asyncio.Lock()
        self._notifier_override = notifiers
        self._recent: OrderedDict[tuple[int, str, str], str] = OrderedDict()
        self._recent_max = 2 * self.config.mqtt.receive_maximum
        self._native_seen: OrderedDict[str, None] = OrderedDict()
        self._events: Counter[str] = Counter()
        self._dead: Counter[str] = Counter()
        self._duplicates = 0
        self._store_failures = 0
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
        self._skip_retention = False
        self.followups = FollowUps(self.config, self.clock)

    # ------------------------------------------------------------------ lifecycle

    async def __aenter__(self) -> IotService:
        # A TLS file that is missing or does not load is a configuration error: refuse to
        # start, rather than fail (with a traceback) on every reconnect.
        tls = tls_context(self.config.mqtt) if self.config.mqtt.enabled or any(
            n.type == "mqtt" for n in self.config.notifiers) else None
        async with self.store.session() as session:
            await self._chain.load(session)
            self._view = await load_view(session)
            self._stored_seen = {k: v.last_seen for k, v in self._view.states.items()}
            await self._load_recent(session)
            await self._load_native_window(session)
            await self._count_alerts(session)
        # Never carry on from a chain head older than the last anchor (rows truncated,
        # an older backup restored): AnchorError says what to do.
        await self.anchors.check_start()
        self._last_reload = self.clock.monotonic()
        await self._stack.__aenter__()
        try:
            notifiers = await self._build_notifiers()
            self.outbox = OutboxWorker(self.store, notifiers, self.config, self.clock)
            tg = await self._stack.enter_async_context(asyncio.TaskGroup())
            self._tg = tg
            self._tasks.append(tg.create_task(self.outbox.run(), name=_OUTBOX_TASK))
            self._tasks.append(tg.create_task(self.anchors.run(), name="netguard[iot].anchor"))
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

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        # Stop the intake first: messages not yet committed stay unacknowledged in the
        # broker's session and come back next time. Each batch commits in one
        # transaction, so there is nothing half-written to flush.
        # Let a batch being committed finish (it is then acknowledged or redelivered and
        # deduplicated), but never wait longer than the daemon's shutdown timeout.
        locked = False
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(self.settings.daemon.shutdown_timeout_seconds):
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
                    async with asyncio.timeout(self.settings.daemon.shutdown_timeout_seconds):
                        await asyncio.shield(outbox_task)
                outbox_task.cancel()
            await self._stack.aclose()
            self._tasks.clear()
            # The shutdown anchor: the head as this instance leaves it.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.settings.daemon.shutdown_timeout_seconds):
                    await self.anchors.try_anchor()
        finally:
            if locked:
                self._lock.release()

    async def _build_notifiers(self) -> dict[str, Notifier]:
        if self._notifier_override is not None:
            return dict(self._notifier_override)
        import aiohttp

        http = await self._stack.enter_async_context(aiohttp.ClientSession())
        return {n.name: build_notifier(n, http, self.config.mqtt)
                for n in self.config.notifiers}

    async def _load_native_window(self, session: AsyncSession) -> None:
        rows = (await session.exec(
            select(Event.identity).where(col(Event.identity).startswith("n:"))
            .order_by(col(Event.id).desc()).limit(_NATIVE_WINDOW))).all()
        self._native_seen = OrderedDict((str(i), None) for i in reversed(rows))

    async def _load_recent(self, session: AsyncSession) -> None:
        rows = (await session.exec(
            select(Event)
            .where(col(Event.chain) == self._chain.chain, col(Event.mqtt_mid).is_not(None))
            .order_by(col(Event.chain_seq).desc()).limit(self._recent_max))).all()
        for row in reversed(rows):
            if row.payload is not None and row.mqtt_mid is not None:
                # The stored payload may be cut to raw_keep_bytes: use the full one's hash
                # (rows from before revision 0004 kept the whole payload).
                self._remember((int(row.mqtt_mid), row.topic,
                                row.payload_sha256 or _sha(row.payload)), row.identity)

    def _remember(self, key: tuple[int, str, str], identity: str) -> None:
        self._recent[key] = identity
        self._recent.move_to_end(key)
        while len(self._recent) > self._recent_max:
            self._recent.popitem(last=False)

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
        return IotSnapshot(
            mqtt_connected=self.mqtt_connected,
            mqtt_connect_failures=self.intake.connect_failures if self.intake else 0,
            door_events=dict(self._events),
            duplicates=self._duplicates,
            dead_letters=dict(self._dead),
            store_failures=self._store_failures,
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
            except _MessageRefusedError as exc:
                if len(messages) == 1:
                    return await self._store(messages, refused=exc)
                log.warning("the store refused a message of a batch of %d; storing them "
                            "one by one: %s", len(messages), exc)
            results: list[IngestResult] = []
            for message in messages:
                try:
                    results += await self._store([message])
                except _MessageRefusedError as exc:
                    results += await self._store([message], refused=exc)
            return results

    async def _store(self, messages: Sequence[RawMessage], *,
                     refused: _MessageRefusedError | None = None) -> list[IngestResult]:
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
            summary = _error_summary(exc)
            if refused is None and message_specific(exc):
                raise _MessageRefusedError(summary) from exc
            self._store_failures += 1
            raise StoreError(f"storing events failed: {summary}") from exc

    def _format_for(self, topic: str) -> str | None:
        for sub in self.config.mqtt.subscriptions:
            if topic_matches(sub.topic, topic):
                return sub.format
        return None

    async def _decode(self, pending: _Pending) -> None:
        message = pending.message
        problem = topic_problem(message.topic)
        if problem is not None:
            pending.error = PayloadError("bad_topic", problem)
            return
        fmt = self._format_for(message.topic)
        if fmt is None:
            pending.error = PayloadError("unsupported_topic",
                                         f"no subscription format for topic {message.topic!r}")
            return
        try:
            event = decode(fmt, message.topic, message.payload,
                           max_bytes=self.config.mqtt.max_payload_bytes)
        except PayloadError as exc:
            pending.error = exc
            return
        except Exception as exc:
            # A decoder bug must not turn one message into a poison pill that the broker
            # redelivers forever: dead-letter it like any bad payload.
            log.exception("decoder failed on a message", extra={"topic": message.topic[:200]})
            pending.error = PayloadError("decoder_error", f"{type(exc).__name__}: {exc}")
            return
        entry = self._view.lookup(fmt, event.address)
        if entry is None and self.clock.monotonic() - self._last_reload > 2.0:
            # The CLI may have just registered it.
            await self._reload_view()
            entry = self._view.lookup(fmt, event.address)
        if entry is None:
            pending.error = PayloadError("unknown_sensor",
                                         f"no {fmt} sensor registered at {event.address!r}")
            return
        identity = "" if event.seq is None else native_identity(event.address, event.boot,
                                                                 event.seq)
        problems = row_problems(_EVENT_TABLE, {
            "identity": identity, "sensor_id": entry.sensor_id,
            "household_id": entry.household_id, "kind": event.kind.value,
            "contact": event.contact, "seq": event.seq})
        if problems:
            # The codecs should have refused it; never let the insert find out.
            pending.error = PayloadError("out_of_range", "; ".join(problems))
            return
        pending.event = event
        pending.sensor_id = entry.sensor_id
        pending.household_id = entry.household_id
        pending.identity = identity
        pending.event_time = self._event_time(event, pending.received_at)

    def _event_time(self, event: DoorEvent, received_at: datetime) -> datetime:
        """The device's own time when it is plausible, else the first receipt time."""
        device = event.device_time
        if device is None:
            return received_at
        behind = (received_at - device).total_seconds()
        if -self.config.device_time_max_ahead_seconds <= behind <= \
                self.config.device_time_max_delay_seconds:
            return device
        return received_at

    async def _reload_view(self) -> None:
        async with self.store.session() as session:
            fresh = await load_view(session)
        # Keep in-memory states: they are at least as new as the stored ones.
        fresh.states.update({k: v for k, v in self._view.states.items() if k in fresh.states})
        self._view = fresh
        self._last_reload = self.clock.monotonic()

    async def _ingest_locked(self, messages: Sequence[RawMessage], *, check_store: bool,
                             refused: _MessageRefusedError | None = None
                             ) -> list[IngestResult]:
        now = self.clock.now()
        batch = [_Pending(m, m.received_at or now) for m in messages]
        for pending in batch:
            if refused is None:
                await self._decode(pending)
            else:
                pending.error = PayloadError("store_rejected",
                                             f"the database refused it: {refused}")
        duplicates = await self._find_duplicates(batch, check_store)

        rows: list[dict[str, Any]] = []
        states: dict[str, SensorState] = {}
        actions: list[tuple[_Pending, AlertAction]] = []
        for i, pending in enumerate(batch):
            if i in duplicates:
                continue
            rows.append(self._row(pending))
            actions.extend((pending, a) for a in self._judge(pending, states))

        head = self._chain.link(rows)
        raised: dict[int, list[int]] = {}
        outbox_rows: list[OutboxMessage] = []
        started = time.perf_counter()
        async with self.store.session() as session:
            if rows:
                await session.exec(sa.insert(Event), params=rows)
            dirty = self._dirty_states(states)
            if dirty:
                await session.exec(sa.update(Sensor), params=states_to_rows(dirty))
            for pending, action in actions:
                alert_id, new = await self._apply(
                    session, pending.sensor_id or "", action,
                    pending.event_time or pending.received_at, outbox_rows)
                if alert_id is not None and new:
                    raised.setdefault(id(pending), []).append(alert_id)
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
                                                 "events": len(rows)})
        self._chain.commit(head)
        self._view.states.update(states)
        self._stored_seen.update((d.sensor_id, d.last_seen) for d in dirty)
        if actions:
            self._refresh_alert_counts()
        return self._results(batch, duplicates, raised)

    def _judge(self, pending: _Pending, states: dict[str, SensorState]
               ) -> tuple[AlertAction, ...]:
        """Run the rules on one stored event; its sensor's new state goes into ``states``."""
        if pending.event is None or pending.sensor_id is None:
            return ()
        household = self._view.households.get(pending.household_id or "")
        if household is None:
            return ()
        state = states.get(pending.sensor_id) or self._view.states.get(
            pending.sensor_id) or SensorState(pending.sensor_id, household.household_id)
        when = pending.event_time or pending.received_at
        try:
            result = evaluate(state, pending.event, household, self.config.rules, when)
        except Exception:
            # The event is stored either way; a rule bug must not block the intake.
            log.exception("rule evaluation failed", extra={"sensor": pending.sensor_id})
            return ()
        new_state = result.state
        if state.last_seen is not None and (new_state.last_seen is None
                                            or new_state.last_seen < state.last_seen):
            # An older event (queued on the device) does not make a sensor look silent
            # for longer than it has been.
            new_state = dataclasses.replace(new_state, last_seen=state.last_seen)
        states[pending.sensor_id] = new_state
        return result.actions

    def _dirty_states(self, states: dict[str, SensorState]) -> list[SensorState]:
        """Sensor states worth writing: any change but ``last_seen``, or a ``last_seen``
        more than 30 s ahead of the stored one. Keeps a heartbeat storm from rewriting
        sensor rows on every batch; events themselves are always stored, and after a
        crash a sensor's stored ``last_seen`` is at most 30 s stale."""
        dirty: list[SensorState] = []
        for sensor_id, new in states.items():
            old = self._view.states.get(sensor_id)
            stored = self._stored_seen.get(sensor_id)
            if (old is None or new.last_seen is None or stored is None
                    or dataclasses.replace(old, last_seen=new.last_seen) != new
                    or new.last_seen - stored > _STATE_WRITE_INTERVAL):
                dirty.append(new)
        return dirty

    def _row(self, p: _Pending) -> dict[str, Any]:
        m, ev = p.message, p.event
        if not p.identity:
            p.identity = f"m:{self._chain.chain}:{uuid.uuid4().hex}"
        keep = self.config.raw_keep_bytes
        row: dict[str, Any] = {
            "identity": p.identity, "received_at": p.received_at, "topic": m.topic,
            # Only the first raw_keep_bytes are kept, with the full size and hash: a
            # client that may publish must not be able to fill the disk (a full disk
            # stops the intake).
            "payload": m.payload[:keep], "payload_size": len(m.payload),
            "payload_sha256": _sha(m.payload),
            "sensor_id": p.sensor_id, "household_id": p.household_id,
            "kind": "dead", "contact": None, "battery": None, "device_time": None,
            "seq": None, "mqtt_mid": m.mid, "dead_reason": None, "detail": None,
        }
        if ev is not None:
            row.update(kind=ev.kind.value, contact=ev.contact, battery=ev.battery,
                       device_time=ev.device_time, seq=ev.seq)
        elif p.error is not None:
            # A dead letter always fits its row: the topic (refused as too long, or with
            # control characters) is stored escaped and cut, and the detail likewise.
            row.update(topic=fit_text(m.topic, TOPIC_MAX), dead_reason=p.error.reason,
                       detail=fit_text(str(p.error), _DETAIL_MAX),
                       mqtt_mid=m.mid if m.mid is not None and 0 < m.mid < 2**16 else None)
        return row

    async def _find_duplicates(self, batch: list[_Pending], check_store: bool) -> set[int]:
        """Indexes of redeliveries in ``batch``.

        Native identities are looked up in an in-memory window of recent ones; an older
        one makes the insert fail on the unique key, and the batch is then retried with
        ``check_store`` (one query), so the common path has no extra round trip.
        """
        duplicates: set[int] = set()
        seen: set[str] = set()
        existing: set[str] = set()
        native = [p.identity for p in batch if p.identity]
        if native and check_store:
            async with self.store.session() as session:
                found = await session.exec(select(Event.identity).where(
                    col(Event.identity).in_(native)))
                existing = set(found.all())
        existing.update(i for i in native if i in self._native_seen)
        for i, p in enumerate(batch):
            m = p.message
            if m.mid is not None:
                p.dedupe_key = (m.mid, m.topic, _sha(m.payload))
            if p.identity:
                if p.identity in existing or p.identity in seen:
                    duplicates.add(i)
                seen.add(p.identity)
            elif m.dup and p.dedupe_key is not None and p.dedupe_key in self._recent:
                duplicates.add(i)
        return duplicates

    def _results(self, batch: list[_Pending], duplicates: set[int],
                 raised: dict[int, list[int]]) -> list[IngestResult]:
        results: list[IngestResult] = []
        for i, p in enumerate(batch):
            if p.dedupe_key is not None and i not in duplicates:
                self._remember(p.dedupe_key, p.identity)
            if p.identity.startswith("n:"):
                self._native_seen[p.identity] = None
                self._native_seen.move_to_end(p.identity)
                if len(self._native_seen) > _NATIVE_WINDOW:
                    self._native_seen.popitem(last=False)
            if i in duplicates:
                self._duplicates += 1
                results.append(IngestResult("duplicate", sensor_id=p.sensor_id))
            elif p.error is not None:
                self._dead[p.error.reason] += 1
                log.warning("dead letter (%s): %s", p.error.reason,
                            fit_text(str(p.error), 300),
                            extra={"reason": p.error.reason,
                                   "topic": fit_text(p.message.topic, 200),
                                   "bytes": len(p.message.payload)})
                results.append(IngestResult("dead", reason=p.error.reason))
            else:
                assert p.event is not None
                self._events[p.event.kind.value] += 1
                results.append(IngestResult("stored", kind=p.event.kind.value,
                                            sensor_id=p.sensor_id,
                                            alerts_raised=tuple(raised.get(id(p), ()))))
        return results

    # ------------------------------------------------------------------ alerts

    async def _apply(self, session: AsyncSession, sensor_id: str, action: AlertAction,
                     now: datetime, outbox_rows: list[OutboxMessage]
                     ) -> tuple[int | None, bool]:
        state = self._view.states.get(sensor_id)
        household_id = state.household_id if state else ""
        entry = self._view.by_id.get(sensor_id)
        if entry is not None:
            household_id = entry.household_id
        household = self._view.households.get(household_id)
        community = household.community if household else ""
        if isinstance(action, ClearAlert):
            cleared = await alert_store.clear_alert(session, sensor_id, action, now)
            outbox_rows += await self.followups.after(session, sensor_id, action, cleared,
                                                      new=False, now=now)
            return cleared, False
        assert isinstance(action, RaiseAlert)
        target = alert_store.AlertTarget(sensor_id, household_id, community)
        alert_id, new = await alert_store.raise_alert(
            session, self.store.dialect, target, action, now=now,
            schedule=self.config.rules.renotify_minutes)
        if new:
            outbox_rows += enqueue(session, Notification(
                alert_id=alert_id, reason="raised", type=action.type.value,
                severity=action.severity, community=community, household=household_id,
                sensor=sensor_id, reasons=action.reasons, count=1,
                first_seen=now.isoformat()), self.config.routes, now)
        outbox_rows += await self.followups.after(session, sensor_id, action, alert_id,
                                                  new=new, now=now)
        return alert_id, new

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
        rows = (await session.exec(
            select(Alert.type, Alert.community, func.count())
            .where(col(Alert.closed_at).is_(None))
            .group_by(col(Alert.type), col(Alert.community)))).all()
        self._alerts_open = {(str(t), str(c)): int(n) for t, c, n in rows}

    async def acknowledge(self, alert_id: int, actor: str) -> dict[str, Any]:
        """Acknowledge an alert for ``actor`` (see :func:`alerts.acknowledge`)."""
        async with self.store.session() as session:
            alert = await alert_store.acknowledge(session, alert_id, actor, self.clock.now())
            await session.commit()
            await self._count_alerts(session)
            return alert_store.alert_dict(alert)

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
            shifted = {
                sensor_id: dataclasses.replace(
                    state,
                    last_seen=None if state.last_seen is None else state.last_seen + delta,
                    since=None if state.since is None else state.since + delta)
                for sensor_id, state in self._view.states.items()}
            async with self.store.session() as session:
                if shifted:
                    await session.exec(sa.update(Sensor),
                                       params=states_to_rows(shifted.values()))
                # A retry waiting out its backoff keeps the wait it had left: without
                # this, a backward step of an hour held every failed alert for an hour.
                waiting = (await session.exec(
                    select(OutboxMessage.id, OutboxMessage.next_attempt_at)
                    .where(col(OutboxMessage.status) == "pending"))).all()
                if waiting:
                    await session.exec(sa.update(OutboxMessage), params=[
                        {"id": row_id, "next_attempt_at": as_utc(due) + delta}
                        for row_id, due in waiting])
                # Reminders of open alerts likewise keep their distance.
                reminders = (await session.exec(
                    select(Alert.id, Alert.next_notify_at)
                    .where(col(Alert.closed_at).is_(None),
                           col(Alert.next_notify_at).is_not(None)))).all()
                if reminders:
                    await session.exec(sa.update(Alert), params=[
                        {"id": row_id, "next_notify_at": as_utc(due) + delta}
                        for row_id, due in reminders if due is not None])
                await session.commit()
            self._view.states.update(shifted)
            self._stored_seen.update((d.sensor_id, d.last_seen) for d in shifted.values())
            self._skip_retention = True
        log.warning("wall clock stepped: sensor heartbeat baselines moved with it and the "
                    "next retention purge is skipped",
                    extra={"step_seconds": round(step_seconds, 3), "sensors": len(shifted),
                               "retries": len(waiting)})

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
        await self._reload_view()
        now = self.clock.now()
        changed: dict[str, SensorState] = {}
        actions: list[tuple[str, AlertAction]] = []
        for sensor_id, state in self._view.states.items():
            household = self._view.households.get(state.household_id)
            if household is None or not household.supervised(now):
                continue  # a sensor left behind after quarantine ended is nobody's alarm
            result = check_heartbeat(state, self.config.rules, now)
            if result.actions:
                changed[sensor_id] = result.state
                actions.extend((sensor_id, a) for a in result.actions)
        outbox_rows: list[OutboxMessage] = []
        async with self.store.session() as session:
            if changed:
                await session.exec(sa.update(Sensor), params=states_to_rows(changed.values()))
            for sensor_id, action in actions:
                await self._apply(session, sensor_id, action, now, outbox_rows)
            for alert in await alert_store.due_renotify(session, now):
                assert alert.id is not None
                outbox_rows += enqueue(session, Notification(
                    alert_id=alert.id, reason="renotify", type=alert.type,
                    severity=alert.severity, community=alert.community,
                    household=alert.household_id, sensor=alert.sensor_id,
                    reasons=tuple(alert_store.alert_dict(alert)["reasons"]),
                    count=alert.count, first_seen=alert_store.alert_dict(alert)["first_seen"]),
                    self.config.routes, now)
                alert_store.mark_renotified(alert, self.config.rules.renotify_minutes, now)
                session.add(alert)
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


def _sha(payload: bytes) -> str:
    return hashlib.sha256(payload).hexdigest()


def topic_problem(topic: str) -> str | None:
    """Why a topic cannot be stored (too long, control characters), or None."""
    if len(topic) > TOPIC_MAX:
        return f"topic of {len(topic)} characters exceeds {TOPIC_MAX}"
    if printable(topic) != topic:
        return "topic contains control characters"
    return None


class _MessageRefusedError(StoreError):
    """The database refused something specific to one message of the batch."""


# SQLSTATE classes of errors caused by the data of a row, not by the store: 22 data
# exception (value out of range, string too long, NUL or bad encoding), 23 integrity.
_ROW_SQLSTATE_CLASSES = ("22", "23")


def message_specific(exc: BaseException) -> bool:
    """True when ``exc`` is about the data being stored, not about the store.

    Store-wide errors (connection lost or refused, timeouts, disk full, read-only, the
    SQLite file locked) are False: the intake must hold its acknowledgements and wait.
    A data error (PostgreSQL SQLSTATE class 22/23, SQLAlchemy ``DataError`` and
    ``IntegrityError``, a value the driver cannot bind) is True, and so is any other
    Python error raised while handling the batch (a bug must not stall the intake:
    the message is kept as a dead letter instead).
    """
    if store_wide_reason(exc) is not None:  # the store's own classification comes first
        return False
    if isinstance(exc, sa.exc.DBAPIError):
        if exc.connection_invalidated:
            return False
        state = getattr(exc.orig, "sqlstate", None) or getattr(exc.orig, "pgcode", None)
        if isinstance(state, str) and state:
            return state[:2] in _ROW_SQLSTATE_CLASSES
        return isinstance(exc, sa.exc.DataError | sa.exc.IntegrityError)
    return not isinstance(exc, sa.exc.SQLAlchemyError | OSError | TimeoutError | MemoryError)


def _error_summary(exc: BaseException) -> str:
    text = str(exc).splitlines()[0] if str(exc) else ""
    return f"{type(exc).__name__}: {fit_text(text, 200)}"


__all__ = ["AlertType", "IngestResult", "IotService", "IotSnapshot"]
