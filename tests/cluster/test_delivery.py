"""Decision 18: in a cluster, alert and ticket notifications go out once, not once per
instance. Two outbox workers share one PostgreSQL outbox with leader gates, and two
ticket notifiers share one cursor. Real PostgreSQL, real HTTP receiver."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from datetime import UTC, datetime
from typing import Any

import aiohttp
from sqlmodel import col, select

from netguard.clock import ManualClock
from netguard.cluster.gate import LeaderGate
from netguard.config import Settings, settings_from_data
from netguard.faults import FaultKey, FaultOpened
from netguard.iot.models import OutboxMessage
from netguard.iot.notifiers import build_notifier
from netguard.iot.notifiers.base import Notification
from netguard.iot.outbox import OutboxWorker, enqueue
from netguard.notify.texts import TicketTexts
from netguard.notify.tickets import TicketNotifier
from netguard.store import Store
from netguard.store.config import StoreConfig
from netguard.tickets.config import TicketsConfig
from netguard.tickets.domain import format_ref
from netguard.tickets.service import TicketService
from tests.iot.receiver import Receiver
from tests.support.wait import async_wait_until

T0 = datetime(2026, 3, 5, 2, 0, tzinfo=UTC)


def _settings(config: StoreConfig, receiver: Receiver) -> Settings:
    assert config.url is not None
    return settings_from_data({
        "store": {"url": config.url.get_secret_value()},
        "iot": {"notifiers": [{"name": "hook", "type": "webhook", "url": receiver.url("/hook"),
                               "rate_per_minute": 1000}],
                "routes": [{"community": "*", "notifiers": ["hook"]}]},
        "notifications": {"routes": [{"name": "noc", "notifiers": ["hook"],
                                      "group_wait_seconds": 0}]},
    })


def _notification(alert_id: int) -> Notification:
    return Notification(alert_id=alert_id, reason="raised", type="door_open",
                        severity="critical", community="c1", household="h1",
                        sensor="n1", reasons=("opened",), count=1, first_seen=T0.isoformat())


async def _enqueue(store: Store, settings: Settings, ids: Sequence[int]) -> list[OutboxMessage]:
    async with store.session() as s:
        rows = [row for i in ids
                for row in enqueue(s, _notification(i), settings.iot.routes, T0)]
        await s.commit()
        for row in rows:
            s.expunge(row)
    return rows


async def _statuses(store: Store) -> Counter[str]:
    async with store.session() as s:
        return Counter(r.status for r in (await s.exec(select(OutboxMessage))).all())


def _received(receiver: Receiver) -> Counter[int]:
    return Counter(a["alert_id"] for r in receiver.on("/hook") for a in r.body["alerts"])


@asynccontextmanager
async def _instance(config: StoreConfig, settings: Settings, gate: LeaderGate,
                    ) -> AsyncIterator[OutboxWorker]:
    """One instance's outbox worker: its own store (connection pool), its own HTTP
    client, running in the background behind ``gate``."""
    async with Store(config) as store, aiohttp.ClientSession() as http:
        notifiers = {n.name: build_notifier(n, http, settings.iot.mqtt)
                     for n in settings.iot.notifiers}
        worker = OutboxWorker(store, notifiers, settings.iot, ManualClock(T0), active=gate)
        task = asyncio.create_task(worker.run(), name="test-outbox")
        try:
            yield worker
        finally:
            worker.stop()
            await task


async def test_only_the_leader_delivers_and_a_flip_hands_over_without_duplicates(
        pg_config: StoreConfig, pg_store: Store, receiver: Receiver) -> None:
    settings = _settings(pg_config, receiver)
    gate_a, gate_b = LeaderGate(True), LeaderGate(False)
    async with AsyncExitStack() as stack:
        a = await stack.enter_async_context(_instance(pg_config, settings, gate_a))
        b = await stack.enter_async_context(_instance(pg_config, settings, gate_b))

        # Written by the non-leader (its hand-off is dropped): the leader's poll sends them.
        rows = await _enqueue(pg_store, settings, range(1, 31))
        b.hand_off(rows)
        b.wake()

        async def delivered(n: int) -> bool:
            return (await _statuses(pg_store))["delivered"] == n

        await async_wait_until(lambda: delivered(30), timeout=30, what="30 rows delivered")
        await a.flush()
        assert _received(receiver) == dict.fromkeys(range(1, 31), 1)
        assert (a.stats.delivered, b.stats.delivered, b.stats.messages_sent) == (30, 0, 0)

        # Leadership moves to b; rows handed to both and woken on both.
        gate_a.set(False)
        gate_b.set(True)
        rows = await _enqueue(pg_store, settings, range(31, 61))
        for worker in (a, b):
            worker.hand_off(rows)
            worker.wake()
        await async_wait_until(lambda: delivered(60), timeout=30, what="60 rows delivered")
        await b.flush()
        assert _received(receiver) == dict.fromkeys(range(1, 61), 1)
        assert (a.stats.delivered, b.stats.delivered) == (30, 30)
        sent_by_a = a.stats.messages_sent

        # And back: a leads again and picks up what is due, still nothing twice.
        gate_b.set(False)
        gate_a.set(True)
        await _enqueue(pg_store, settings, range(61, 71))
        await async_wait_until(lambda: delivered(70), timeout=30, what="70 rows delivered")
        await a.flush()
        assert _received(receiver) == dict.fromkeys(range(1, 71), 1)
        assert a.stats.messages_sent > sent_by_a
        assert (a.stats.delivered, b.stats.delivered) == (40, 30)
        assert (a.pending, b.pending) == (0, 0)


async def test_two_ticket_notifiers_on_one_cursor_queue_each_message_once(
        pg_config: StoreConfig, pg_store: Store, receiver: Receiver) -> None:
    """Every instance runs the ticket notifier; the cursor row is taken FOR UPDATE in each
    pass, so two passes at once take turns and no ticket event is planned twice."""
    settings = _settings(pg_config, receiver)
    clock = ManualClock(T0)
    async with AsyncExitStack() as stack:
        engines: list[TicketNotifier] = []
        for _ in range(2):
            store = await stack.enter_async_context(Store(pg_config))
            engines.append(TicketNotifier(store, settings.notifications,
                                          texts=TicketTexts("zh-CN"), ref=format_ref,
                                          clock=clock, poll_seconds=0.05))
        for engine in engines:
            await engine.begin()
        tickets = TicketService(pg_store, TicketsConfig(), clock=clock,
                                on_change=lambda: [e.wake() for e in engines])

        async def fault(i: int) -> None:
            await tickets.handle(FaultOpened(
                key=FaultKey(f"olt-{i}", "agent", "unreachable"), category="uplink", site=None,
                severity="major", summary=f"olt-{i} 中断", reasons=("no answer",),
                at=clock.now()))

        # A backlog, then two passes at the same moment: one plans it, the other waits
        # for the cursor and finds nothing left (without the row lock both planned it).
        await asyncio.gather(*(fault(i) for i in range(10)))
        results = await asyncio.gather(*(e.run_once() for e in engines))
        assert sorted(r.messages for r in results) == [0, 10]

        # Both running in the background, woken by concurrent ticket writes.
        for engine in engines:
            await stack.enter_async_context(engine)
        await asyncio.gather(*(fault(i) for i in range(10, 30)))

        async def queued() -> bool:
            async with pg_store.session() as s:
                return len((await s.exec(select(OutboxMessage))).all()) >= 30

        await async_wait_until(queued, timeout=30, what="30 outbox rows")
        # Both engines pass again at once: nothing is left to plan, nothing is repeated.
        await asyncio.gather(*(e.run_once() for e in engines))
    async with pg_store.session() as s:
        rows = list((await s.exec(select(OutboxMessage).order_by(col(OutboxMessage.id)))).all())
    per_ticket: Counter[Any] = Counter((r.alert_id, r.notifier) for r in rows)
    assert len(per_ticket) == 30
    assert set(per_ticket.values()) == {1}
    assert sum(e.failed_passes for e in engines) == 0
    # Each message counted once over both engines.
    assert sum(sum(e.sent.values()) for e in engines) == 30
