"""Acknowledging tickets from the chat: the ``/ack/<token>`` pages over real HTTP (the
daemon's MetricsServer, a real aiohttp client) against a real store (SQLite and
PostgreSQL) holding a real ticket and a real door alert."""

# ruff: noqa: RUF001

from __future__ import annotations

import asyncio
import base64
import re
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from typing import Any

import aiohttp
import pytest
import sqlalchemy as sa

from netguard.acklinks import AckLinks, mint
from netguard.clock import ManualClock
from netguard.daemon.ackpage import AckPages
from netguard.daemon.config import MetricsConfig
from netguard.daemon.http import MetricsServer
from netguard.faults import Severity
from netguard.iot import alerts as alert_store
from netguard.iot.admin import IotAdmin
from netguard.iot.config import Recipient
from netguard.iot.events import AlertType
from netguard.iot.rules import RaiseAlert
from netguard.iot.service import IotService
from netguard.metrics import MetricsSnapshot
from netguard.notify.config import TicketRoute
from netguard.notify.enqueue import RoutedMessage, enqueue_routed
from netguard.store import Store
from netguard.tickets.acklink import TicketLinkAcks
from netguard.tickets.config import TicketsConfig
from netguard.tickets.domain import Ticket, TicketState
from netguard.tickets.service import TicketService
from tests.iot.conftest import make_settings, register_estate
from tests.iot.receiver import Receiver
from tests.support.wait import async_wait_until

pytestmark = pytest.mark.integration

KEY = b"ticket-ack-link-key-0123456789"
TTL = timedelta(hours=24)


async def _ready() -> dict[str, bool]:
    return {"store": True}


class Site:
    """The ack pages behind a real MetricsServer, a client, and the ticket service."""

    def __init__(self, server: MetricsServer, pages: AckPages, http: aiohttp.ClientSession,
                 service: TicketService, admin: IotAdmin, clock: ManualClock) -> None:
        self.server, self.pages, self.http = server, pages, http
        self.service, self.admin, self.clock = service, admin, clock

    def url(self, ident: int, *, kind: str = "ticket", recipient: str = "",
            key: bytes = KEY, expires: timedelta = TTL, now: datetime | None = None) -> str:
        start = self.clock.now() if now is None else now
        token = mint(key, kind, ident, start + expires, recipient=recipient)
        return f"{self.server.url}/ack/{token}"

    async def get(self, url: str) -> tuple[int, str]:
        async with self.http.get(url) as resp:
            return resp.status, await resp.text()

    async def post(self, url: str) -> tuple[int, str]:
        async with self.http.post(url) as resp:
            return resp.status, await resp.text()

    async def ticket(self, ticket_id: int) -> Ticket:
        return await self.service.get(self.service.ref(ticket_id))


async def _site(store: Store, config: TicketsConfig, clock: ManualClock, language: str
                ) -> AsyncIterator[Site]:
    admin = IotAdmin(store, clock=clock)
    pages = AckPages(admin, KEY, clock, tickets=TicketLinkAcks(store, config, clock=clock),
                     language=language, timezone="Asia/Shanghai")
    async with MetricsServer(MetricsConfig(listen="127.0.0.1:0"),
                             lambda: MetricsSnapshot(targets={}), _ready,
                             ack=pages) as server, aiohttp.ClientSession() as http:
        yield Site(server, pages, http, TicketService(store, config, clock=clock), admin,
                   clock)


@pytest.fixture
async def site(store: Store, tickets_config: TicketsConfig, clock: ManualClock
               ) -> AsyncIterator[Site]:
    """English pages (the wording the assertions below read)."""
    async for s in _site(store, tickets_config, clock, "en"):
        yield s


async def _open(site: Site) -> Ticket:
    return await site.service.open(category="fiber", summary="olt-1: uplink down",
                                   severity="critical", actor="ops", target="olt-1",
                                   site="hotel-1")


async def _nonces(store: Store) -> list[tuple[Any, ...]]:
    async with store.engine.connect() as conn:
        rows = await conn.execute(sa.text(
            "SELECT subject, alert_id, actor FROM iot_ack_nonce ORDER BY used_at"))
        return [tuple(r) for r in rows]


async def test_a_valid_link_acknowledges_the_ticket_once(site: Site, store: Store) -> None:
    ticket = await _open(site)
    url = site.url(ticket.id, recipient="wang.fang")
    # GET shows the ticket with a POST button, in display.timezone, and changes nothing.
    for _ in range(2):
        status, page = await site.get(url)
        assert status == 200, page
        assert 'method="post"' in page
        for shown in (ticket.ref, "olt-1: uplink down", "hotel-1 / olt-1", "critical"):
            assert shown in page
        assert "2026-11-29 16:00 +0800" in page  # opened 08:00 UTC, shown in Shanghai
    assert (await site.ticket(ticket.id)).state is TicketState.OPEN

    site.clock.advance(60)
    status, page = await site.post(url)
    assert status == 200, page
    assert "Acknowledged" in page
    acked = await site.ticket(ticket.id)
    assert acked.state is TicketState.ACKNOWLEDGED
    assert acked.acknowledged_at == site.clock.now()
    detail = await site.service.detail(ticket.ref)
    [event] = [e for e in detail.events if e.action == "acknowledged"]
    assert (event.actor, event.message, event.old_state, event.new_state) == (
        "wang.fang", "acknowledged via chat-link", "open", "acknowledged")
    assert await _nonces(store) == [("ticket", ticket.id, "wang.fang")]

    # Replayed: the same link again changes nothing and says so.
    for method in (site.post, site.get):
        status, page = await method(url)
        assert status == 409
        assert "Nothing was acknowledged" in page
    status, page = await site.post(url)
    assert "already used" in page
    # A fresh link for the acknowledged ticket: already done, by whom, nothing spent.
    status, page = await site.post(site.url(ticket.id))
    assert status == 409
    assert "already acknowledged by wang.fang" in page
    assert len((await site.service.detail(ticket.ref)).events) == len(detail.events)
    assert await _nonces(store) == [("ticket", ticket.id, "wang.fang")]
    assert site.pages.outcomes["acknowledged"] == 1


async def test_without_a_bound_recipient_the_actor_is_chat_link(site: Site) -> None:
    ticket = await _open(site)
    status, _ = await site.post(site.url(ticket.id))
    assert status == 200
    detail = await site.service.detail(ticket.ref)
    assert [(e.actor, e.message) for e in detail.events if e.action == "acknowledged"] == [
        ("chat-link", "acknowledged via chat-link")]


async def test_expired_forged_and_wrong_key_links_change_nothing(
        site: Site, store: Store) -> None:
    ticket = await _open(site)
    good = site.url(ticket.id, expires=timedelta(hours=1))
    token = good.rsplit("/", 1)[1]
    forged = token[:8] + ("A" if token[8] != "A" else "B") + token[9:]
    cases = {
        "wrong key": site.url(ticket.id, key=b"another-key-0123456789"),
        "forged": f"{site.server.url}/ack/{forged}",
        "truncated": f"{site.server.url}/ack/{token[:-6]}",
    }
    for name, url in cases.items():
        for method in (site.get, site.post):
            status, page = await method(url)
            assert status == 400, name
            assert "Not a valid acknowledgement link" in page
    site.clock.advance(3600)  # exactly at expiry
    for method in (site.get, site.post):
        status, page = await method(good)
        assert status == 410
        assert "This link expired at 2026-11-29 17:00 +0800" in page
    after = await site.ticket(ticket.id)
    assert (after.state, after.acknowledged_at) == (TicketState.OPEN, None)
    assert await _nonces(store) == []
    assert (site.pages.outcomes["invalid"], site.pages.outcomes["expired"]) == (6, 2)


async def test_unknown_and_resolved_tickets(site: Site) -> None:
    status, page = await site.post(site.url(999_999))
    assert status == 404
    assert "Ticket NG-999999 does not exist" in page
    ticket = await _open(site)
    await site.service.resolve(ticket.ref, actor="ops", message="spliced")
    status, page = await site.post(site.url(ticket.id))
    assert status == 409
    assert f"Ticket {ticket.ref} is resolved" in page
    assert (await site.ticket(ticket.id)).acknowledged_at is None


async def _alert(store: Store) -> int:
    await register_estate(store, datetime.fromisoformat("2026-11-29T07:00:00+00:00"))
    async with store.session() as s:
        alert_id, _ = await alert_store.raise_alert(
            s, store.dialect, alert_store.AlertTarget("n1", "h1", "c1"),
            RaiseAlert(AlertType.DOOR_OPEN, Severity.CRITICAL, ("door opened",)),
            now=datetime.fromisoformat("2026-11-29T07:30:00+00:00"), schedule=[5, 15])
        await s.commit()
    return alert_id


async def test_the_kind_is_part_of_the_signature(site: Site, store: Store) -> None:
    """An alert link never acknowledges the ticket with the same id, nor the reverse."""
    ticket = await _open(site)
    alert_id = await _alert(store)
    assert alert_id == ticket.id  # the same number in both tables: only the kind differs

    # An alert-kind link acts on the alert, never on the ticket.
    status, _ = await site.post(site.url(alert_id, kind="alert", recipient="li.na"))
    assert status == 200
    assert (await site.ticket(ticket.id)).state is TicketState.OPEN
    assert (await site.admin.alert(alert_id))["acked_by"] == "li.na"

    # A ticket-kind link acts on the ticket, never on the alert.
    second = await _open(site)
    other_alert = await _alert_for(store, "n2", "h2")
    assert other_alert == second.id
    status, _ = await site.post(site.url(second.id, recipient="zhao.lei"))
    assert status == 200
    assert (await site.ticket(second.id)).state is TicketState.ACKNOWLEDGED
    assert (await site.admin.alert(other_alert))["acked_at"] is None

    # Re-labelling a ticket token as an alert one (or the reverse) breaks the MAC.
    token = site.url(ticket.id).rsplit("/", 1)[1]
    raw = bytearray(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
    raw[1] = 1  # kind byte: alert
    relabelled = base64.urlsafe_b64encode(bytes(raw)).rstrip(b"=").decode()
    status, _ = await site.post(f"{site.server.url}/ack/{relabelled}")
    assert status == 400
    assert (await site.ticket(ticket.id)).state is TicketState.OPEN
    assert sorted(await _nonces(store)) == sorted([("alert", alert_id, "li.na"),
                                                   ("ticket", second.id, "zhao.lei")])


async def _alert_for(store: Store, sensor: str, household: str) -> int:
    async with store.session() as s:
        alert_id, _ = await alert_store.raise_alert(
            s, store.dialect, alert_store.AlertTarget(sensor, household, "c1"),
            RaiseAlert(AlertType.DOOR_OPEN, Severity.CRITICAL, ("door opened",)),
            now=datetime.fromisoformat("2026-11-29T07:40:00+00:00"), schedule=[5, 15])
        await s.commit()
    return alert_id


async def test_ticket_pages_speak_chinese_by_default(
        store: Store, tickets_config: TicketsConfig, clock: ManualClock) -> None:
    async for site in _site(store, tickets_config, clock, "zh-CN"):
        ticket = await _open(site)
        url = site.url(ticket.id, recipient="王芳")
        status, page = await site.get(url)
        assert status == 200
        for shown in ("确认此工单？", "开单时间", "2026-11-29 16:00 +0800"):
            assert shown in page
        status, page = await site.post(url)
        assert (status, "已确认" in page) == (200, True)
        status, page = await site.post(url)
        assert status == 409
        assert "此链接已使用过" in page
        detail = await site.service.detail(ticket.ref)
        assert [e.actor for e in detail.events if e.action == "acknowledged"] == ["王芳"]


async def test_alert_pages_speak_chinese_too(
        store: Store, tickets_config: TicketsConfig, clock: ManualClock) -> None:
    async for site in _site(store, tickets_config, clock, "zh-CN"):
        alert_id = await _alert(store)
        url = site.url(alert_id, kind="alert", recipient="王芳")
        status, page = await site.get(url)
        assert status == 200
        for shown in ("确认此告警？", "住户", "2026-11-29 15:30 +0800"):
            assert shown in page
        status, _ = await site.post(url)
        assert status == 200
        status, page = await site.post(site.url(alert_id, kind="alert"))
        assert status == 409
        assert f"告警 {alert_id} 已于 2026-11-29 16:00 +0800 由 王芳 确认" in page


async def test_concurrent_submissions_acknowledge_once(site: Site, store: Store) -> None:
    ticket = await _open(site)
    url = site.url(ticket.id, recipient="wang.fang")
    statuses = sorted(s for s, _ in await asyncio.gather(*(site.post(url) for _ in range(4))))
    assert statuses == [200, 409, 409, 409]
    detail = await site.service.detail(ticket.ref)
    assert len([e for e in detail.events if e.action == "acknowledged"]) == 1
    assert await _nonces(store) == [("ticket", ticket.id, "wang.fang")]


async def test_a_delivered_ticket_message_carries_a_working_link(
        store: Store, tickets_config: TicketsConfig, clock: ManualClock) -> None:
    """A ticket message through the real outbox to a real WeCom-format receiver: its
    link, bound to the route's one recipient, acknowledges the ticket from the chat."""
    receiver = Receiver()
    await receiver.start()
    try:
        settings = make_settings(store.config, {"notifiers": [
            {"name": "netops-wecom", "type": "wecom", "url": receiver.url("/wecom?key=k")}]})
        route = TicketRoute(name="duty", notifiers=["netops-wecom"],
                            recipients=[Recipient(name="王芳", wecom="wangfang")])
        async for site in _site(store, tickets_config, clock, "zh-CN"):
            ticket = await _open(site)
            links = AckLinks(KEY, site.server.url, TTL)
            async with IotService(settings.iot, store, clock=clock, links=links) as iot:
                async with store.session() as s:
                    rows = enqueue_routed(s, route, RoutedMessage(
                        subject="ticket", ident=ticket.id, reason="opened",
                        severity="critical", category="fiber",
                        text=f"## 【紧急】{ticket.ref} olt-1: uplink down",
                        first_seen=ticket.opened_at.isoformat()), clock.now())
                    await s.commit()
                assert iot.outbox is not None
                iot.outbox.hand_off(rows)

                async def delivered() -> bool:
                    return len(receiver.answered) >= 1

                await async_wait_until(delivered, what="the ticket message")
            [wecom] = receiver.on("/wecom")
            content = wecom.body["markdown"]["content"]
            found = re.search(r"\[一键确认\]\(([^)]+)\)", content)
            assert found is not None, content
            status, page = await site.post(found.group(1))
            assert status == 200, page
            detail = await site.service.detail(ticket.ref)
            assert detail.ticket.state is TicketState.ACKNOWLEDGED
            assert [(e.actor, e.message) for e in detail.events
                    if e.action == "acknowledged"] == [("王芳", "acknowledged via chat-link")]
    finally:
        await receiver.stop()
