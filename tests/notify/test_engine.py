"""The ticket notifier against real parts: the ticket service on SQLite and PostgreSQL,
the real outbox worker and WeCom/DingTalk notifiers posting to a real HTTP receiver.

Time is a ManualClock shared by tickets, notifier and outbox: a 2-minute outage takes no
2 minutes, and nothing waits on the wall clock.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import aiohttp
import pytest
import sqlalchemy as sa
from sqlmodel import col, select

from netguard.clock import ManualClock, SystemClock
from netguard.config import settings_from_data
from netguard.faults import FaultKey, FaultOpened, FaultSeverity
from netguard.iot.models import OutboxMessage
from netguard.iot.notifiers.registry import build_notifier
from netguard.iot.outbox import OutboxWorker
from netguard.notify.models import NotifyCursor, NotifyGroup
from netguard.notify.texts import TicketTexts
from netguard.notify.tickets import GAP_SECONDS, TicketNotifier
from netguard.store import Store
from netguard.tickets.config import TicketsConfig
from netguard.tickets.domain import format_ref
from netguard.tickets.models import EVENT
from netguard.tickets.notifications import ticket_notifications
from netguard.tickets.service import TicketService
from tests.iot.receiver import Receiver
from tests.support.wait import async_wait_until

T0 = datetime(2026, 3, 5, 2, 0, tzinfo=UTC)  # 10:00 in Shanghai
DING_SECRET = "SEC0123456789abcdef"


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    """A real HTTP receiver in the robots' formats."""
    r = Receiver()
    await r.start()
    yield r
    await r.stop()


def _settings(store: Store, receiver: Receiver, **route: Any) -> Any:
    noc: dict[str, Any] = {"name": "noc", "notifiers": ["wecom", "ding"],
                           "group_wait_seconds": 30, "group_interval_seconds": 300,
                           "repeat_interval_seconds": 0}
    noc.update(route)
    store_data: dict[str, Any] = {"path": str(store.config.path)}
    if store.config.url is not None:
        store_data = {"url": store.config.url.get_secret_value()}
    return settings_from_data({
        "store": store_data,
        "iot": {"notifiers": [
            {"name": "wecom", "type": "wecom", "url": receiver.url("/wecom?key=abc")},
            {"name": "ding", "type": "dingtalk", "url": receiver.url("/ding?access_token=t"),
             "secret": DING_SECRET},
            {"name": "boss", "type": "webhook", "url": receiver.url("/boss")}]},
        "notifications": {"routes": [
            noc, {"name": "manager", "match": {"site": ["nowhere"]}, "notifiers": ["boss"],
                  "group_wait_seconds": 0}]},
    })


@dataclass
class Rig:
    """Tickets, notifier and outbox on one store and one manual clock."""

    store: Store
    clock: ManualClock
    settings: Any
    worker: OutboxWorker
    tickets: TicketService
    notifier: TicketNotifier

    def new_notifier(self) -> TicketNotifier:
        """A fresh engine on the same database (a restart)."""
        return TicketNotifier(self.store, self.settings.notifications,
                              texts=TicketTexts("zh-CN"), ref=format_ref, outbox=self.worker,
                              clock=self.clock)

    async def step(self, seconds: float = 0) -> None:
        """Advance the clock, run one notifier pass and one outbox pass."""
        if seconds:
            self.clock.advance(seconds)
        await self.notifier.run_once()
        self.worker.wake()
        await self.worker.run_once()
        await self.worker.flush()

    async def fault(self, target: str, *, upstream: str | None = None,
                    severity: FaultSeverity = "major", site: str | None = None) -> None:
        await self.tickets.handle(FaultOpened(
            key=FaultKey(target, "agent", "unreachable"), category="uplink", site=site,
            severity=severity, summary=f"{target} 中断", reasons=("no answer",),
            at=self.clock.now(), suppressed_by=upstream))


@pytest.fixture
async def rig_factory(store: Store, receiver: Receiver) -> AsyncIterator[Any]:
    sessions: list[aiohttp.ClientSession] = []

    async def make(**route: Any) -> Rig:
        settings = _settings(store, receiver, **route)
        clock = ManualClock(T0)
        http = aiohttp.ClientSession()
        sessions.append(http)
        notifiers = {n.name: build_notifier(n, http, settings.iot.mqtt)
                     for n in settings.iot.notifiers}
        worker = OutboxWorker(store, notifiers, settings.iot, clock)
        rig = Rig(store, clock, settings, worker, None, None)  # type: ignore[arg-type]
        rig.notifier = rig.new_notifier()
        # Late-bound: a test replaces rig.notifier to play a restart.
        rig.tickets = TicketService(store, TicketsConfig(), clock=clock,
                                    on_change=lambda: rig.notifier.wake())  # noqa: PLW0108
        await rig.notifier.begin()
        return rig

    yield make
    for http in sessions:
        await http.close()


def _text(body: Any) -> str:
    """The markdown of a WeCom (``content``) or DingTalk (``text``) body, else the body."""
    markdown = body.get("markdown") if isinstance(body, dict) else None
    if isinstance(markdown, dict):
        return str(markdown.get("content") or markdown.get("text"))
    return str(body)


def _texts(receiver: Receiver, path: str) -> list[str]:
    return [_text(r.body) for r in receiver.on(path)]


async def _outbox(store: Store) -> list[OutboxMessage]:
    async with store.session() as s:
        return list((await s.exec(select(OutboxMessage).order_by(col(OutboxMessage.id)))).all())


async def test_root_and_two_children_make_one_message_and_a_late_child_one_update(
        rig_factory: Any, receiver: Receiver) -> None:
    rig: Rig = await rig_factory()
    await rig.fault("pl-east")
    await rig.step()
    await rig.fault("site-a", upstream="pl-east")
    await rig.step(5)
    await rig.fault("site-b", upstream="pl-east")
    await rig.step(5)
    assert receiver.requests == []  # still within group_wait
    await rig.step(20)
    for path in ("/wecom", "/ding"):
        (text,) = _texts(receiver, path)
        assert text.startswith("### 【重要】NG-000001 pl-east\uff1apl-east 中断")
        assert "\uff1b其后 2 个站点受影响\n- 受影响站点\uff1asite-a、site-b" in text
    # Two late children: one update, after group_interval from the group message.
    await rig.fault("site-c", upstream="pl-east")
    await rig.step(30)
    await rig.fault("site-d", upstream="pl-east")
    await rig.step(30)
    assert len(receiver.on("/wecom")) == 1
    await rig.step(240)
    for path in ("/wecom", "/ding"):
        texts = _texts(receiver, path)
        assert len(texts) == 2
        assert "新增受影响站点\uff1asite-c、site-d" in texts[1]
        assert "(共 4 个)" in texts[1] or "\uff08共 4 个\uff09" in texts[1]
    await rig.step(3600)
    assert len(receiver.on("/wecom")) == 2
    assert len(receiver.on("/ding")) == 2
    assert receiver.on("/boss") == []


async def test_outage_of_two_minutes_then_each_message_delivered_once(
        rig_factory: Any, receiver: Receiver) -> None:
    rig: Rig = await rig_factory(group_wait_seconds=0)
    receiver.fail["/wecom"] = 503
    receiver.fail["/ding"] = 503
    for i in range(4):
        await rig.fault(f"olt-{i}")
        await rig.step(1)
    for _ in range(24):  # two minutes of a receiver answering 503
        await rig.step(5)
    failed = len(receiver.requests)
    assert failed >= 8
    assert all(r.status == "pending" for r in await _outbox(rig.store))
    del receiver.fail["/wecom"], receiver.fail["/ding"]
    for _ in range(30):
        await rig.step(5)
        if all(r.status == "delivered" for r in await _outbox(rig.store)):
            break
    rows = await _outbox(rig.store)
    assert len(rows) == 8
    assert all(r.status == "delivered" for r in rows)
    for path in ("/wecom", "/ding"):
        delivered = "\n".join(t for r, t in zip(receiver.on(path), _texts(receiver, path),
                                                strict=True)
                              if receiver.requests.index(r) >= failed)
        for i in range(4):
            assert delivered.count(f"NG-00000{i + 1} olt-{i}") == 1, delivered


async def test_restart_mid_stream_sends_nothing_twice_and_loses_nothing(
        rig_factory: Any, receiver: Receiver) -> None:
    rig: Rig = await rig_factory()
    await rig.fault("pl-east")
    await rig.fault("site-a", upstream="pl-east")
    await rig.step(5)  # the group waits
    # "Restart": a new engine on the same database; events written meanwhile.
    rig.notifier = rig.new_notifier()
    await rig.fault("site-b", upstream="pl-east")
    await rig.step(30)
    (text,) = _texts(receiver, "/wecom")
    assert "site-a、site-b" in text
    rig.notifier = rig.new_notifier()
    await rig.fault("pl-west")
    await rig.step(0)
    rig.notifier = rig.new_notifier()
    await rig.step(30)
    rig.notifier = rig.new_notifier()
    await rig.step(600)
    texts = _texts(receiver, "/wecom")
    assert len(texts) == 2
    assert "pl-west" in texts[1]
    assert len(await _outbox(rig.store)) == 4  # 2 messages x 2 notifiers


async def test_escalation_goes_once(rig_factory: Any, receiver: Receiver) -> None:
    rig: Rig = await rig_factory(escalate={"route": "manager", "after_seconds": 600})
    await rig.fault("pl-east", severity="critical")
    await rig.step(30)
    assert len(receiver.on("/wecom")) == 1
    assert receiver.on("/boss") == []
    await rig.step(600)
    (boss,) = receiver.on("/boss")
    assert "NG-000001" in str(boss.body)
    for _ in range(3):
        await rig.step(1800)
    assert len(receiver.on("/boss")) == 1


async def test_repeat_stops_after_acknowledge(rig_factory: Any, receiver: Receiver) -> None:
    rig: Rig = await rig_factory(repeat_interval_seconds=600,
                                 escalate={"route": "manager", "after_seconds": 3000})
    await rig.fault("pl-east", severity="critical")
    await rig.step(30)
    await rig.step(600)
    await rig.step(600)
    texts = _texts(receiver, "/wecom")
    assert len(texts) == 3
    assert all("提醒" in t for t in texts[1:])
    await rig.tickets.acknowledge("NG-000001", actor="duty")
    await rig.step(0)
    for _ in range(5):
        await rig.step(600)
    assert len(_texts(receiver, "/wecom")) == 3
    assert receiver.on("/boss") == []  # acknowledged before it was due to escalate


async def test_quiet_hours_defer_non_critical(rig_factory: Any, receiver: Receiver) -> None:
    rig: Rig = await rig_factory(group_wait_seconds=0,
                                 quiet_hours={"start": "22:00", "end": "07:00"})
    rig.clock.advance(13 * 3600)  # 23:00 in Shanghai
    await rig.fault("olt-minor", severity="minor")
    await rig.fault("olt-crit", severity="critical")
    await rig.step(1)
    texts = _texts(receiver, "/wecom")
    assert len(texts) == 1
    assert "olt-crit" in texts[0]
    assert "olt-minor" not in texts[0]  # not handed to the outbox ahead of its time
    await rig.step(7 * 3600)  # 06:00: still quiet
    assert len(_texts(receiver, "/wecom")) == 1
    await rig.step(3600)  # 07:00
    texts = _texts(receiver, "/wecom")
    assert len(texts) == 2
    assert "olt-minor" in texts[1]


async def test_runs_in_the_background_woken_by_ticket_changes(
        rig_factory: Any, receiver: Receiver) -> None:
    rig: Rig = await rig_factory(group_wait_seconds=0)
    async with rig.notifier:
        await rig.fault("pl-east")

        async def queued() -> bool:
            return len(await _outbox(rig.store)) == 2

        await async_wait_until(queued, what="the message queued")
    async with rig.store.session() as s:
        (group,) = (await s.exec(select(NotifyGroup))).all()
    assert group.phase == "sent"
    assert rig.notifier.sent[("noc", "opened")] == 1


async def test_an_event_committed_late_below_the_cursor_is_still_read(
        rig_factory: Any, receiver: Receiver) -> None:
    """PostgreSQL hands out ids at insert: id 5 can commit before id 3. The cursor keeps
    the skipped ids as gaps and reads them when they appear."""
    rig: Rig = await rig_factory(group_wait_seconds=0)
    await rig.fault("pl-east")  # ticket 1, event 1 (opened)
    await rig.fault("pl-west")  # ticket 2, event 2 (opened)
    async with rig.store.session() as s:
        conn = await s.connection()
        await conn.execute(sa.delete(EVENT).where(EVENT.c.ticket_id == 2))
        await conn.execute(sa.insert(EVENT).values(
            id=5, ticket_id=1, at=rig.clock.now(), actor="netguard", action="commented",
            message=""))
        await s.commit()
    await rig.step()
    assert len(_texts(receiver, "/wecom")) == 1
    async with rig.store.session() as s:
        (cursor,) = (await s.exec(select(NotifyCursor))).all()
    assert cursor.last_event_id == 5
    assert [g[0] for g in cursor.gaps] == [2, 3, 4]
    async with rig.store.session() as s:  # the "slow" transaction commits now
        conn = await s.connection()
        await conn.execute(sa.insert(EVENT).values(
            id=3, ticket_id=2, at=rig.clock.now(), actor="netguard", action="opened",
            message=""))
        await s.commit()
    await rig.step(1)
    texts = _texts(receiver, "/wecom")
    assert len(texts) == 2
    assert "pl-west" in texts[1]
    await rig.step(GAP_SECONDS + 1)  # the rest of the gaps age out
    async with rig.store.session() as s:
        (cursor,) = (await s.exec(select(NotifyCursor))).all()
    assert cursor.gaps == []


async def test_concurrent_ticket_writes_each_notify_once(
        rig_factory: Any, receiver: Receiver) -> None:
    """Ticket writes in parallel with the running notifier: every ticket's message is
    queued once, none lost to a lock or an id committed out of order."""
    rig: Rig = await rig_factory(group_wait_seconds=0)
    async with rig.notifier:
        await asyncio.gather(*(rig.fault(f"olt-{i}") for i in range(20)))

        async def queued() -> bool:
            return len(await _outbox(rig.store)) >= 40

        await async_wait_until(queued, what="40 outbox rows")
        await rig.notifier.run_once()
    rows = await _outbox(rig.store)
    assert len(rows) == 40
    assert sorted({r.alert_id for r in rows}) == list(range(1, 21))
    assert rig.notifier.failed_passes == 0


async def test_tickets_show_reads_what_the_notifier_sent(
        rig_factory: Any, receiver: Receiver) -> None:
    rig: Rig = await rig_factory(group_wait_seconds=0)
    await rig.fault("pl-east")
    await rig.step()
    sent = await ticket_notifications(rig.store, 1)
    assert sorted((s.route, s.notifier, s.reason, s.state) for s in sent) == [
        ("noc", "ding", "opened", "delivered"), ("noc", "wecom", "opened", "delivered")]


async def test_ended_threads_are_forgotten_after_a_week(
        rig_factory: Any, receiver: Receiver) -> None:
    rig: Rig = await rig_factory(group_wait_seconds=0)
    await rig.fault("pl-east")
    await rig.step()
    await rig.tickets.resolve("NG-000001", actor="duty", message="fixed")
    await rig.step()
    assert "已恢复" in _texts(receiver, "/wecom")[-1]
    rig.notifier = rig.new_notifier()  # its prune is due at once; the thread is young
    await rig.step(1)

    async def groups() -> list[NotifyGroup]:
        async with rig.store.session() as s:
            return list((await s.exec(select(NotifyGroup))).all())

    assert [g.phase for g in await groups()] == ["done"]
    rig.notifier = rig.new_notifier()
    await rig.step(8 * 86400)
    assert await groups() == []


async def test_the_group_wait_timer_wakes_the_running_notifier(
        store: Store, receiver: Receiver) -> None:
    """No poll in sight (60 s): the message goes out when its group_wait ends."""
    settings = _settings(store, receiver, group_wait_seconds=0.3)
    clock = SystemClock()
    notifier = TicketNotifier(store, settings.notifications, texts=TicketTexts("zh-CN"),
                              ref=format_ref, clock=clock, poll_seconds=60)
    tickets = TicketService(store, TicketsConfig(), clock=clock, on_change=notifier.wake)
    async with notifier:
        await tickets.handle(FaultOpened(
            key=FaultKey("pl-east", "agent", "unreachable"), category="uplink", site=None,
            severity="major", summary="down", reasons=(), at=clock.now()))

        async def queued() -> bool:
            return len(await _outbox(store)) == 2

        await async_wait_until(queued, what="the group message after group_wait")
    assert notifier.sent == {("noc", "opened"): 1}
