"""``POST /alertmanager/webhook`` on a real MetricsServer, with a real store, the real
outbox and notifiers, and a real HTTP receiver standing in for WeCom and DingTalk.

Auth refusals, the body limit, 400s that name the problem, exactly one chat message per
notification however often Alertmanager posts it (also at the same moment, on SQLite and
PostgreSQL), the resolution as a second message, a reminder after the dedupe window, and
a 503 (then a successful retry) while the store refuses writes.
"""

from __future__ import annotations

import asyncio
import base64
import json
import sqlite3
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import aiohttp
import pytest
import sqlalchemy as sa
from sqlmodel import select

from netguard.clock import ManualClock, as_utc
from netguard.config import Settings, settings_from_data
from netguard.daemon.amhook import PATH, AmWebhook
from netguard.daemon.http import MetricsServer
from netguard.iot.models import AmReceipt, OutboxMessage
from netguard.iot.service import IotService
from netguard.metrics import MetricsSnapshot
from netguard.metrics.snapshot import DaemonStats
from netguard.notify.alertmanager import sample_payload
from netguard.notify.amintake import AmIntake
from netguard.store import Store
from netguard.store.config import StoreConfig
from netguard.store.db import upgrade
from tests.iot.receiver import Receiver
from tests.support.wait import async_wait_until

pytestmark = pytest.mark.integration

TOKEN = "am-token-0123456789abcdef"
BEARER = {"Authorization": f"Bearer {TOKEN}"}
# The intake's clock: a day ago, so that what it queues is due at once for the outbox
# (which runs on the real clock); advanced by hand past the dedupe window.
START = datetime.now(UTC).replace(microsecond=0) - timedelta(days=1)
SINKS = ("/wecom", "/ding")


def _settings(store: StoreConfig, receiver: Receiver, quiet: dict[str, str] | None = None,
              severities: tuple[str, ...] = ("critical",), **alertmanager: Any) -> Settings:
    store_data: dict[str, Any] = {"path": str(store.path)}
    if store.url is not None:
        store_data = {"url": store.url.get_secret_value()}
    return settings_from_data({
        "store": store_data,
        "metrics": {"listen": "127.0.0.1:0"},
        "iot": {"notifiers": [
            {"name": "netops-wecom", "type": "wecom", "url": receiver.url("/wecom")},
            {"name": "duty-ding", "type": "dingtalk", "url": receiver.url("/ding")}]},
        "notifications": {
            "routes": [
                # Only (critical) Alertmanager alerts about the core tier go to the duty group.
                {"name": "core", "match": {"source": ["alertmanager"],
                                           "severity": list(severities),
                                           "labels": {"tier": "~core|access"}},
                 "notifiers": ["netops-wecom", "duty-ding"],
                 "recipients": [{"name": "王强", "wecom": "wangqiang",
                                 "mobile": "13900000001"}],
                 "quiet_hours": quiet}],
            "alertmanager": {"enabled": True, "token": TOKEN, "max_body_bytes": 8192,
                             **alertmanager}},
    })


@dataclass
class Hook:
    """The running endpoint and what it delivers to."""

    url: str
    webhook: AmWebhook
    store: Store
    receiver: Receiver
    clock: ManualClock
    http: aiohttp.ClientSession
    metrics: str

    async def post(self, data: object, headers: dict[str, str] | None = None,
                   **kwargs: Any) -> tuple[int, str]:
        # Bytes and async generators (a chunked body) as they are, the rest as JSON.
        body = data if isinstance(data, bytes) or hasattr(data, "__aiter__") \
            else json.dumps(data).encode()
        async with self.http.post(self.url, data=body, headers=BEARER if headers is None
                                  else headers, **kwargs) as resp:
            return resp.status, await resp.text()

    async def delivered(self) -> bool:
        """True once every queued outbox row is delivered."""
        async with self.store.session() as s:
            rows = (await s.exec(select(OutboxMessage.status))).all()
        return all(status == "delivered" for status in rows)

    def messages(self) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        for path in SINKS:
            bodies = [r.body for r in self.receiver.on(path)]
            out[path] = [b["markdown"]["content" if path == "/wecom" else "text"]
                         for b in bodies]
        return out


@asynccontextmanager
async def running(store: Store, receiver: Receiver, quiet: dict[str, str] | None = None,
                  severities: tuple[str, ...] = ("critical",), start: datetime = START,
                  **alertmanager: Any) -> AsyncIterator[Hook]:
    """The webhook on a MetricsServer, its intake on a manual clock, the real outbox."""
    settings = _settings(store.config, receiver, quiet, severities, **alertmanager)
    clock = ManualClock(start)
    async with IotService(settings.iot, store) as iot:
        intake = AmIntake(store, settings.notifications, settings.display.renderer(), clock,
                          lambda: iot.outbox)
        webhook = AmWebhook(settings.notifications.alertmanager, intake)

        def snapshot() -> MetricsSnapshot:
            return MetricsSnapshot(targets={}, daemon=DaemonStats(
                alertmanager_webhooks=dict(webhook.outcomes)))

        async def ready() -> dict[str, bool]:
            return {"store": True}

        async with MetricsServer(settings.metrics, snapshot, ready,
                                 alertmanager=webhook) as server, \
                aiohttp.ClientSession() as http:
            yield Hook(server.url + PATH, webhook, store, receiver, clock, http,
                       server.url + "/metrics")


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    r = Receiver()
    await r.start()
    yield r
    await r.stop()


@pytest.fixture
async def sqlite_store(tmp_path: Path) -> AsyncIterator[Store]:
    config = StoreConfig(path=tmp_path / "am.db")
    await upgrade(config)
    async with Store(config) as s:
        yield s


@pytest.fixture
async def impatient_store(tmp_path: Path) -> AsyncIterator[Store]:
    """A SQLite store whose writers wait only 0.5 s for another writer's lock."""
    config = StoreConfig(path=tmp_path / "am.db", statement_timeout_seconds=0.5)
    await upgrade(config)
    async with Store(config) as s:
        yield s


def _firing(**labels: str) -> dict[str, Any]:
    return sample_payload("firing", now=START - timedelta(minutes=3), alerts=[
        {"target": "pl-east-1", "site": "east", "kind": "fiber", "tier": "core", **labels}])


def _resolved() -> dict[str, Any]:
    return sample_payload("resolved", now=START - timedelta(minutes=3), alerts=[
        {"target": "pl-east-1", "site": "east", "kind": "fiber", "tier": "core"}])


def _basic(user: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()
                                                          ).decode()}


async def _metric(hook: Hook, outcome: str) -> float:
    async with hook.http.get(hook.metrics) as resp:
        text = await resp.text()
    line = f'netguard_alertmanager_webhooks_total{{outcome="{outcome}"}} '
    return float(next(x for x in text.splitlines() if x.startswith(line)).split()[-1])


async def test_a_notification_reaches_both_robots_once_in_chinese(
        sqlite_store: Store, receiver: Receiver) -> None:
    async with running(sqlite_store, receiver) as hook:
        status, body = await hook.post(_firing())
        assert status == 200, body
        assert json.loads(body)["status"] == "accepted"
        await async_wait_until(hook.delivered, timeout=30, what="delivery")
        messages = hook.messages()
        assert {p: len(m) for p, m in messages.items()} == {"/wecom": 1, "/ding": 1}
        [wecom] = messages["/wecom"]
        assert wecom.startswith("### 【紧急】NetguardLinkDown\n")
        assert "\uff08北京时间\uff09" in wecom
        assert "fiber link pl-east-1 is down\uff08pl-east-1\uff09" in wecom
        assert wecom.endswith("\n<@wangqiang>")  # the route's recipient, WeCom's way
        [ding] = receiver.on("/ding")
        assert ding.body["at"]["atMobiles"] == ["13900000001"]
        assert ding.body["markdown"]["title"] == "【紧急】NetguardLinkDown"
        assert await _metric(hook, "accepted") == 1
        assert await _metric(hook, "duplicate") == 0


async def test_three_posts_of_one_notification_give_one_message_and_resolved_a_second(
        sqlite_store: Store, receiver: Receiver) -> None:
    async with running(sqlite_store, receiver) as hook:
        answers = [await hook.post(_firing()) for _ in range(3)]
        assert [json.loads(b)["status"] for _, b in answers] == \
            ["accepted", "duplicate", "duplicate"]
        await async_wait_until(hook.delivered, timeout=30, what="delivery")
        assert {p: len(m) for p, m in hook.messages().items()} == {"/wecom": 1, "/ding": 1}
        async with sqlite_store.session() as s:
            [receipt] = (await s.exec(select(AmReceipt))).all()
        assert receipt.count == 3
        assert receipt.status == "firing"

        status, body = await hook.post(_resolved())
        assert (status, json.loads(body)["status"]) == (200, "accepted")

        async def four() -> bool:
            return len(receiver.requests) >= 4

        await async_wait_until(four, timeout=30, what="the resolution at both robots")
        await async_wait_until(hook.delivered, timeout=30, what="delivery")
        messages = hook.messages()
        assert [len(m) for m in messages.values()] == [2, 2]
        assert messages["/wecom"][1].startswith("### 【已恢复】NetguardLinkDown\n")
        assert "已恢复 " in messages["/wecom"][1]
        assert await _metric(hook, "duplicate") == 2


async def test_after_the_dedupe_window_the_same_notification_is_a_reminder(
        sqlite_store: Store, receiver: Receiver) -> None:
    async with running(sqlite_store, receiver, dedupe_window_seconds=600) as hook:
        assert json.loads((await hook.post(_firing()))[1])["status"] == "accepted"
        hook.clock.advance(599)
        assert json.loads((await hook.post(_firing()))[1])["status"] == "duplicate"
        hook.clock.advance(2)
        assert json.loads((await hook.post(_firing()))[1])["status"] == "reminder"
        # The window starts again from the reminder.
        hook.clock.advance(300)
        assert json.loads((await hook.post(_firing()))[1])["status"] == "duplicate"
        await async_wait_until(hook.delivered, timeout=30, what="delivery")
        wecom = hook.messages()["/wecom"]
        assert len(wecom) == 2
        assert wecom[1].startswith("### 【紧急】NetguardLinkDown\uff08提醒\uff09\n")


async def test_credentials_are_required_and_checked(sqlite_store: Store,
                                                    receiver: Receiver) -> None:
    async with running(sqlite_store, receiver) as hook:
        for headers in ({}, {"Authorization": "Bearer wrong"},
                        {"Authorization": f"Bearer {TOKEN}x"},
                        {"Authorization": f"Token {TOKEN}"},
                        _basic("alertmanager", TOKEN)):  # basic is not configured here
            status, body = await hook.post(_firing(), headers=headers)
            assert (status, body) == (401, "unauthorized\n"), headers
        assert await _metric(hook, "unauthorized") == 5
        assert receiver.requests == []
        async with sqlite_store.session() as s:
            assert (await s.exec(select(AmReceipt))).all() == []


async def test_basic_auth(sqlite_store: Store, receiver: Receiver) -> None:
    async with running(sqlite_store, receiver, token=None,
                       basic_auth={"username": "alertmanager",
                                   "password": "s3cret:with-colon"}) as hook:
        assert (await hook.post(_firing(), headers=_basic("alertmanager", "wrong")))[0] == 401
        assert (await hook.post(_firing(), headers=_basic("other", "s3cret:with-colon"))
                )[0] == 401
        assert (await hook.post(_firing(), headers=BEARER))[0] == 401
        status, _ = await hook.post(_firing(),
                                    headers=_basic("alertmanager", "s3cret:with-colon"))
        assert status == 200


async def test_bodies_over_the_limit_get_413_with_or_without_a_length(
        sqlite_store: Store, receiver: Receiver) -> None:
    async with running(sqlite_store, receiver) as hook:
        big = _firing(note="x" * 1000)
        big["alerts"] = big["alerts"] * 10  # ~12 KiB, over the 8 KiB limit
        status, body = await hook.post(big)
        assert status == 413
        assert "larger than 8192 bytes" in body

        async def chunks() -> AsyncIterator[bytes]:
            for _ in range(20):
                yield b" " * 1024

        status, _ = await hook.post(chunks())  # chunked: no Content-Length
        assert status == 413
        assert await _metric(hook, "too_large") == 2
        assert receiver.requests == []


@pytest.mark.parametrize(("mangle", "problem"), [
    (lambda d: d["alerts"][0].update(labels="x"), "alerts[0].labels: not an object"),
    (lambda d: d.update(version="3"), "version: '3' is not the supported version '4'"),
    (lambda d: d["alerts"][0].update(startsAt="soon"), "alerts[0].startsAt: not an RFC 3339"),
])
async def test_invalid_payloads_get_400_naming_the_problem(
        sqlite_store: Store, receiver: Receiver, mangle: Any, problem: str) -> None:
    async with running(sqlite_store, receiver) as hook:
        data = _firing()
        mangle(data)
        status, body = await hook.post(data)
        assert status == 400
        assert body == f"invalid payload: {problem}\n" or problem in body
        status, body = await hook.post(b"{not json")
        assert status == 400
        assert body.startswith("invalid payload: body: not JSON")
        assert await _metric(hook, "invalid") == 2
        # Still serving.
        assert (await hook.post(_firing()))[0] == 200


async def test_a_notification_no_route_takes_is_recorded_and_counted(
        sqlite_store: Store, receiver: Receiver) -> None:
    async with running(sqlite_store, receiver) as hook:
        status, body = await hook.post(_firing(tier="edge"))
        assert (status, json.loads(body)["status"]) == (200, "unrouted")
        assert await _metric(hook, "unrouted") == 1
        async with sqlite_store.session() as s:
            assert (await s.exec(select(OutboxMessage))).all() == []


async def test_a_refusing_store_gets_503_and_the_retry_is_sent_once(
        impatient_store: Store, receiver: Receiver) -> None:
    sqlite_store = impatient_store
    async with running(sqlite_store, receiver) as hook:
        # Another writer holds the database's write lock: the intake's insert waits its
        # busy timeout (0.5 s) and fails; nothing is recorded, Alertmanager must retry.
        locker = sqlite3.connect(sqlite_store.config.path, isolation_level=None)
        try:
            locker.execute("BEGIN IMMEDIATE")
            status, body = await hook.post(_firing())
            assert status == 503, body
            locker.execute("ROLLBACK")
        finally:
            locker.close()
        assert await _metric(hook, "unavailable") == 1
        status, body = await hook.post(_firing())
        assert (status, json.loads(body)["status"]) == (200, "accepted")
        assert json.loads((await hook.post(_firing()))[1])["status"] == "duplicate"
        await async_wait_until(hook.delivered, timeout=30, what="delivery")
        assert {p: len(m) for p, m in hook.messages().items()} == {"/wecom": 1, "/ding": 1}


async def test_identical_posts_at_once_queue_one_message(store: Store,
                                                         receiver: Receiver) -> None:
    """SQLite and PostgreSQL: the unique dedupe key decides, not the order of reads."""
    async with running(store, receiver) as hook:
        answers = await asyncio.gather(*(hook.post(_firing()) for _ in range(5)))
        outcomes = sorted(json.loads(body)["status"] for _, body in answers)
        assert outcomes == ["accepted", "duplicate", "duplicate", "duplicate", "duplicate"]
        await async_wait_until(hook.delivered, timeout=30, what="delivery")
        assert {p: len(m) for p, m in hook.messages().items()} == {"/wecom": 1, "/ding": 1}
        async with store.session() as s:
            count = (await s.exec(sa.select(sa.func.sum(AmReceipt.count)))).one()[0]
        assert count == 5


async def test_quiet_hours_hold_all_but_critical(sqlite_store: Store,
                                                receiver: Receiver) -> None:
    # Quiet from an hour ago to an hour ahead, in Asia/Shanghai; the intake's clock is
    # now here, as the outbox's is: what is held must not be due for it either.
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    local = now.astimezone(ZoneInfo("Asia/Shanghai"))
    quiet = {"start": (local - timedelta(hours=1)).strftime("%H:%M"),
             "end": (local + timedelta(hours=1)).strftime("%H:%M")}
    async with running(sqlite_store, receiver, quiet=quiet, severities=("critical", "major"),
                       start=now) as hook:
        status, body = await hook.post(_firing(severity="major"))
        assert (status, json.loads(body)["status"]) == (200, "accepted")
        status, body = await hook.post(_firing(severity="critical", target="pl-east-2"))
        assert (status, json.loads(body)["status"]) == (200, "accepted")

        async def critical_delivered() -> bool:
            async with sqlite_store.session() as s:
                rows = (await s.exec(select(OutboxMessage))).all()
            return sum(r.status == "delivered" for r in rows) == 2

        await async_wait_until(critical_delivered, timeout=30, what="the critical message")
        async with sqlite_store.session() as s:
            rows = (await s.exec(select(OutboxMessage))).all()
        # The major one waits for the end of the quiet hours (two rows: two notifiers).
        held = [r for r in rows if r.status == "pending"]
        assert len(held) == 2
        assert all(as_utc(r.next_attempt_at) > now + timedelta(minutes=59) for r in held)
        assert [len(m) for m in hook.messages().values()] == [1, 1]
        assert "pl-east-2" in hook.messages()["/wecom"][0]
