"""Acknowledgement links end to end: a real aiohttp server (the daemon's MetricsServer),
a real HTTP client, real SQLite and PostgreSQL, and a message at a real HTTP receiver."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from netguard.acklinks import AckLinks, mint
from netguard.clock import ManualClock
from netguard.config import settings_from_data
from netguard.daemon.ackpage import AckPages
from netguard.daemon.app import Daemon
from netguard.daemon.config import MetricsConfig
from netguard.daemon.http import MetricsServer
from netguard.iot import alerts as alert_store
from netguard.iot.admin import IotAdmin
from netguard.iot.events import AlertType
from netguard.iot.messages import MessageRenderer
from netguard.iot.notifiers.base import Notification
from netguard.iot.rules import RaiseAlert
from netguard.iot.service import IotService
from netguard.metrics import MetricsSnapshot
from netguard.metrics.snapshot import DaemonStats
from netguard.store import Store
from netguard.store.config import StoreConfig
from netguard.store.db import upgrade
from tests.iot.conftest import T0, make_settings, register_estate
from tests.iot.receiver import Receiver
from tests.support.ports import free_tcp_port
from tests.support.wait import async_wait_until

pytestmark = pytest.mark.integration

KEY = b"ack-link-test-key-0123456789"
TTL = timedelta(hours=24)


async def _ready() -> dict[str, bool]:
    return {"store": True}


async def _raise(store: Store, sensor: str = "n1", household: str = "h1") -> int:
    async with store.session() as s:
        alert_id, new = await alert_store.raise_alert(
            s, store.dialect, alert_store.AlertTarget(sensor, household, "c1"),
            RaiseAlert(AlertType.DOOR_OPEN, "critical", ("door opened",)), now=T0,
            schedule=[5, 15])
        await s.commit()
    assert new
    return alert_id


class Site:
    """The ack pages behind a real MetricsServer, and a client."""

    def __init__(self, server: MetricsServer, pages: AckPages, http: aiohttp.ClientSession,
                 admin: IotAdmin) -> None:
        self.server, self.pages, self.http, self.admin = server, pages, http, admin

    def url(self, alert_id: int, *, recipient: str = "", key: bytes = KEY,
            expires: timedelta = TTL, now: Any = T0) -> str:
        token = mint(key, "alert", alert_id, now + expires, recipient=recipient)
        return f"{self.server.url}/ack/{token}"

    async def get(self, url: str) -> tuple[int, str]:
        async with self.http.get(url) as resp:
            return resp.status, await resp.text()

    async def post(self, url: str, data: bytes = b"") -> tuple[int, str]:
        async with self.http.post(url, data=data) as resp:
            return resp.status, await resp.text()


@pytest.fixture
async def site(store: Store, clock: ManualClock) -> AsyncIterator[Site]:
    await register_estate(store, T0)
    admin = IotAdmin(store, clock=clock)
    pages = AckPages(admin, KEY, clock)

    def snapshot() -> MetricsSnapshot:
        return MetricsSnapshot(targets={}, daemon=DaemonStats(ack_links=dict(pages.outcomes)))

    async with MetricsServer(MetricsConfig(listen="127.0.0.1:0"), snapshot, _ready,
                             ack=pages) as server, aiohttp.ClientSession() as http:
        yield Site(server, pages, http, admin)


async def test_a_valid_link_acknowledges_once_and_stops_reminders(
        site: Site, store: Store, clock: ManualClock) -> None:
    alert_id = await _raise(store)
    url = site.url(alert_id, recipient="wang.fang")
    # GET shows what would be acknowledged, with a POST button, and changes nothing.
    for _ in range(2):
        status, page = await site.get(url)
        assert status == 200
        assert 'method="post"' in page
        assert "h1" in page
        assert "2026-03-01 08:00 +0000" in page  # first_seen, in the pages' zone
    assert (await site.admin.alert(alert_id))["acked_at"] is None

    clock.advance(60)
    status, page = await site.post(url)
    assert status == 200, page
    assert "Acknowledged" in page
    acked = await site.admin.alert(alert_id)
    assert (acked["acked_by"], acked["acked_via"], acked["acked_at"], acked["state"]) == (
        "wang.fang", "chat-link", clock.now().isoformat(), "closed")
    assert acked["next_notify_at"] is None
    clock.advance(3600)
    async with store.session() as s:
        assert await alert_store.due_renotify(s, clock.now()) == []

    # Replayed: the nonce is spent; nothing changes.
    status, page = await site.post(url)
    assert status == 409
    assert "already used" in page
    # Another genuine link for the same alert: already acknowledged, by whom.
    status, page = await site.post(site.url(alert_id, now=clock.now()))
    assert status == 409
    assert "already acknowledged by wang.fang" in page
    status, _ = await site.get(url)
    assert status == 409
    assert await site.admin.alert(alert_id) == acked

    async with site.http.get(f"{site.server.url}/metrics") as resp:
        metrics = await resp.text()
    assert 'netguard_ack_links_total{outcome="acknowledged"} 1' in metrics
    assert 'netguard_ack_links_total{outcome="used"} 1' in metrics
    assert 'netguard_ack_links_total{outcome="closed"} 2' in metrics
    assert 'netguard_ack_links_total{outcome="shown"} 2' in metrics


async def test_one_link_submitted_twice_at_once_acknowledges_once(
        site: Site, store: Store) -> None:
    alert_id = await _raise(store)
    url = site.url(alert_id, recipient="li.wei")
    results = await asyncio.gather(site.post(url), site.post(url))
    assert sorted(status for status, _ in results) == [200, 409]
    assert (await site.admin.alert(alert_id))["acked_by"] == "li.wei"
    assert (site.pages.outcomes["acknowledged"], site.pages.outcomes["used"]
            + site.pages.outcomes["closed"]) == (1, 1)


async def test_expired_forged_and_wrong_key_links_change_nothing(
        site: Site, store: Store, clock: ManualClock) -> None:
    alert_id = await _raise(store)
    before = await site.admin.alert(alert_id)
    good = site.url(alert_id, expires=timedelta(hours=1))
    token = good.rsplit("/", 1)[1]
    forged = token[:8] + ("A" if token[8] != "A" else "B") + token[9:]
    cases = {
        "wrong key": (site.url(alert_id, key=b"another-key-0123456789"), 400),
        "forged": (f"{site.server.url}/ack/{forged}", 400),
        "truncated": (f"{site.server.url}/ack/{token[:-6]}", 400),
        "garbage": (f"{site.server.url}/ack/%3Cscript%3E", 400),
    }
    for name, (url, expected) in cases.items():
        for method in (site.get, site.post):
            status, page = await method(url)
            assert status == expected, name
            assert "Nothing was acknowledged" in page
            assert "<script>" not in page
    clock.advance(3600)  # exactly at expiry
    for method in (site.get, site.post):
        status, page = await method(good)
        assert status == 410
        assert "expired" in page
    # A body larger than the (field-less) form is refused before anything is read.
    clock.advance(-7200)
    status, _ = await site.post(good, data=b"x" * 4096)
    assert status == 413
    assert await site.admin.alert(alert_id) == before
    assert site.pages.outcomes["invalid"] == 8
    assert site.pages.outcomes["expired"] == 2


async def test_unknown_alert_and_the_rate_limit(store: Store, clock: ManualClock,
                                                site: Site) -> None:
    status, page = await site.post(site.url(999_999))
    assert status == 404
    assert "no longer exists" in page
    limited = AckPages(site.admin, KEY, clock, per_minute=2)
    async with MetricsServer(MetricsConfig(listen="127.0.0.1:0"),
                             lambda: MetricsSnapshot(targets={}), _ready,
                             ack=limited) as server:
        url = f"{server.url}/ack/x"
        statuses = [(await site.get(url))[0] for _ in range(3)]
        assert statuses == [400, 400, 429]
        clock.advance(61)  # the window is monotonic time
        assert (await site.get(url))[0] == 400


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    r = Receiver()
    yield r
    await r.stop()


async def test_a_delivered_message_carries_a_working_link(
        sqlite_store: Store, receiver: Receiver, clock: ManualClock) -> None:
    await receiver.start()
    await register_estate(sqlite_store, T0)
    iot = {"notifiers": [
        {"name": "hook", "type": "webhook", "url": receiver.url("/hook")},
        {"name": "wecom", "type": "wecom", "url": receiver.url("/wecom?key=abc")}],
        "routes": [{"community": "c1", "notifiers": ["hook", "wecom"],
                    "recipients": [{"name": "zhao.lei", "wecom": "zhaolei"}]}],
        "rules": {"heartbeat_timeout_seconds": 86400}}
    settings = make_settings(sqlite_store.config, iot)
    admin = IotAdmin(sqlite_store, clock=clock)
    pages = AckPages(admin, KEY, clock)
    async with MetricsServer(MetricsConfig(listen="127.0.0.1:0"),
                             lambda: MetricsSnapshot(targets={}), _ready, ack=pages) as server, \
            aiohttp.ClientSession() as http:
        links = AckLinks(KEY, server.url, TTL)
        async with IotService(settings.iot, sqlite_store, clock=clock, links=links) as service:
            payload = json.dumps({"sensor": "n1", "seq": 1, "event": "open"}).encode()
            [alert_id] = (await service.ingest("netguard/sensors/n1/event", payload)
                          ).alerts_raised
            async def delivered() -> bool:
                return len(receiver.answered) >= 2

            await async_wait_until(delivered, what="2 deliveries")
        [hook] = receiver.on("/hook")
        [wecom] = receiver.on("/wecom")
        url = hook.body["alerts"][0]["ack_url"]
        assert url.startswith(f"{server.url}/ack/")
        # Each message gets its own link (its own nonce), bound to the one recipient.
        # (in zh-CN, the default display language)
        assert f"[一键确认]({server.url}/ack/" in wecom.body["markdown"]["content"]
        wecom_url = re.search(r"\[一键确认\]\(([^)]+)\)", wecom.body["markdown"]["content"])
        assert wecom_url is not None
        async with http.get(url) as resp:
            assert resp.status == 200
        async with http.post(wecom_url.group(1)) as resp:
            assert resp.status == 200
        acked = await admin.alert(alert_id)
        assert (acked["acked_by"], acked["acked_via"]) == ("zhao.lei", "chat-link")
        async with http.post(url) as resp:
            assert resp.status == 409  # the webhook's link: the alert is acknowledged


async def test_the_daemon_serves_the_links_it_is_configured_for(tmp_path: Path) -> None:
    config = StoreConfig(path=tmp_path / "daemon.db")
    await upgrade(config)
    port = free_tcp_port()
    settings = settings_from_data({
        "store": {"path": str(config.path)},
        "metrics": {"listen": f"127.0.0.1:{port}"},
        "ack_links": {"enabled": True, "key": KEY.decode(),
                      "base_url": f"http://127.0.0.1:{port}"},
    })
    async with Store(config) as store:
        await register_estate(store, T0)
        alert_id = await _raise(store)
    async with Daemon(settings) as daemon, aiohttp.ClientSession() as http:
        assert daemon.metrics_url == f"http://127.0.0.1:{port}"
        token = mint(KEY, "alert", alert_id, datetime.now(UTC) + TTL)
        async with http.post(f"{daemon.metrics_url}/ack/{token}") as resp:
            assert resp.status == 200
        async with http.post(f"{daemon.metrics_url}/ack/{token}") as resp:
            assert resp.status == 409
        async with http.get(f"{daemon.metrics_url}/metrics") as resp:
            metrics = await resp.text()
        assert 'netguard_ack_links_total{outcome="acknowledged"} 1' in metrics
        assert 'netguard_ack_links_total{outcome="used"} 1' in metrics
    async with Store(config) as store:
        acked = await IotAdmin(store).alert(alert_id)
    assert (acked["acked_by"], acked["acked_via"]) == ("chat-link", "chat-link")


def test_markdown_carries_the_link_for_one_alert_and_for_a_batch() -> None:
    one = Notification(alert_id=1, reason="raised", type="door_open", severity="critical",
                       community="c1", household="h1", sensor="n1", reasons=("x",), count=1,
                       first_seen=T0.isoformat(), ack_url="https://n.example/ack/T1")
    two = dataclasses.replace(one, alert_id=2, ack_url=None)
    en = MessageRenderer(language="en")
    assert "- [acknowledge](https://n.example/ack/T1)" in en.markdown([one]).splitlines()
    assert "acknowledge" not in en.markdown([two])
    batch = en.markdown([one, two]).splitlines()
    assert batch[1].endswith("alert id 1 [acknowledge](https://n.example/ack/T1)")
    assert batch[2].endswith("alert id 2")
    # In the district's language (the default), the same link.
    zh = MessageRenderer().markdown([one]).splitlines()
    assert "- [一键确认](https://n.example/ack/T1)" in zh
    # A body without a link is stored as before the field existed, and reads back.
    assert "ack_url" not in two.to_json()
    assert Notification.from_json(one.to_json()) == one
