"""Acceptance 3: bodies and signatures at a real HTTP receiver, outage recovery with
exactly-once arrival, and robot rate limits respected by batching."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import time
from collections import Counter
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import aiohttp
import pytest
from sqlmodel import col, select

from netguard.clock import ManualClock
from netguard.iot import registry
from netguard.iot.models import OutboxMessage
from netguard.iot.notifiers import build_notifier
from netguard.iot.notifiers.base import Notification
from netguard.iot.notifiers.dingtalk import dingtalk_sign
from netguard.iot.outbox import OutboxWorker, enqueue
from netguard.iot.service import IotService
from netguard.store import Store
from tests.iot.conftest import T0, make_settings, register_estate
from tests.iot.receiver import Receiver
from tests.support.wait import async_wait_until

DING_SECRET = "SEC0123456789abcdef-test"


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    r = Receiver()
    yield r
    await r.stop()


def _iot(receiver: Receiver, **extra: Any) -> dict[str, Any]:
    return {
        "notifiers": [
            {"name": "hook", "type": "webhook", "url": receiver.url("/hook"),
             "headers": {"X-Team": "netguard"}},
            {"name": "wecom", "type": "wecom", "url": receiver.url("/wecom?key=abc")},
            {"name": "ding", "type": "dingtalk", "url": receiver.url("/ding?access_token=t"),
             "secret": DING_SECRET},
        ],
        "routes": [{"community": "c1", "notifiers": ["hook", "wecom", "ding"],
                    "recipients": ["13800000000"]}],
        "rules": {"heartbeat_timeout_seconds": 86400},
        **extra,
    }


def _door(sensor: str, seq: int) -> tuple[str, bytes]:
    return (f"netguard/sensors/{sensor}/event",
            json.dumps({"sensor": sensor, "seq": seq, "event": "open"}).encode())


async def _outbox(store: Store) -> list[OutboxMessage]:
    async with store.session() as s:
        return list((await s.exec(select(OutboxMessage).order_by(col(OutboxMessage.id)))).all())


async def test_bodies_and_dingtalk_signature(sqlite_store: Store, receiver: Receiver) -> None:
    await receiver.start()
    await register_estate(sqlite_store, T0)
    settings = make_settings(sqlite_store.config, _iot(receiver))
    async with IotService(settings.iot, sqlite_store) as service:
        # The estate's quarantine started at T0 - 1 day and is open-ended.
        result = await service.ingest(*_door("n1", 1))
        [alert_id] = result.alerts_raised
        await async_wait_until(_count(receiver, 3), what="3 deliveries")

    [hook] = receiver.on("/hook")
    assert hook.headers["X-Team"] == "netguard"
    assert hook.headers["Content-Type"].startswith("application/json")
    [alert] = hook.body["alerts"]
    assert alert["alert_id"] == alert_id
    assert (alert["type"], alert["severity"], alert["household"], alert["sensor"],
            alert["community"], alert["reason"]) == ("door_open", "critical", "h1", "n1",
                                                     "c1", "raised")

    [wecom] = receiver.on("/wecom")
    assert wecom.query == {"key": "abc"}
    assert wecom.body["msgtype"] == "markdown"
    content = wecom.body["markdown"]["content"]
    # zh-CN by default (display.language), never the type code or a UTC ISO time.
    assert "隔离期间开门" in content
    assert "北京时间" in content
    assert "+00:00" not in content
    assert "h1" in content
    # A plain recipient is a mobile, which WeCom markdown cannot mention.
    assert "<@" not in content
    assert len(content.encode()) <= 4096

    [ding] = receiver.on("/ding")
    assert ding.body["msgtype"] == "markdown"
    assert "隔离期间开门" in ding.body["markdown"]["title"]
    assert ding.body["at"]["atMobiles"] == ["13800000000"]
    assert ding.body["markdown"]["text"].endswith("\n@13800000000")
    timestamp = ding.query["timestamp"]
    assert abs(int(timestamp) - time.time() * 1000) < 60_000
    # The documented algorithm, written out independently of netguard's code:
    expected = base64.b64encode(hmac.new(DING_SECRET.encode(),
                                         f"{timestamp}\n{DING_SECRET}".encode(),
                                         hashlib.sha256).digest()).decode()
    assert ding.query["sign"] == expected  # aiohttp has undone the URL encoding
    assert ding.query["access_token"] == "t"

    rows = await _outbox(sqlite_store)
    assert {(r.notifier, r.status, r.attempts) for r in rows} == {
        ("hook", "delivered", 1), ("wecom", "delivered", 1), ("ding", "delivered", 1)}


def test_dingtalk_sign_is_url_encoded() -> None:
    sign = dingtalk_sign(DING_SECRET, 1_700_000_000_000)
    raw = base64.b64encode(hmac.new(DING_SECRET.encode(),
                                    f"1700000000000\n{DING_SECRET}".encode(),
                                    hashlib.sha256).digest()).decode()
    assert sign == raw.replace("+", "%2B").replace("/", "%2F").replace("=", "%3D")


async def _outage_run(store: Store, receiver: Receiver, outage_s: float) -> None:
    await register_estate(store, T0)
    iot = _iot(receiver, outbox_backoff_min_seconds=0.2,
               outbox_backoff_max_seconds=max(1.0, outage_s / 10))
    async with IotService(make_settings(store.config, iot).iot, store) as service:
        raised: list[int] = []
        for sensor in ("n1", "z1", "s1"):
            topic, payload = {
                "n1": _door("n1", 1),
                "z1": ("zigbee2mqtt/door_z1", b'{"contact":false}'),
                "s1": ("shellies/shellydw2-ABC/sensor/state", b"open"),
            }[sensor]
            raised.extend((await service.ingest(topic, payload)).alerts_raised)
        assert len(raised) == 3
        # The receiver is down: deliveries fail and are retried with backoff.
        await async_wait_until(_attempted(store), timeout=outage_s + 10,
                               what="failed attempts")
        deadline = time.monotonic() + outage_s
        await async_wait_until(_after(deadline), timeout=outage_s + 5, interval=0.2,
                               what="the outage to end")
        await receiver.start()
        await async_wait_until(_all_delivered(store), timeout=60, what="all delivered")

        async def counted() -> bool:
            # 3 alerts delivered through each of the 3 notifiers, counted by name.
            return sorted(service.snapshot().delivered_by.values()) == [3, 3, 3]

        await async_wait_until(counted, timeout=10, what="deliveries counted by notifier")
        assert set(service.snapshot().failed_by) == set(service.snapshot().delivered_by)
    per_path = Counter((r.path, a) for r in receiver.requests for a in _alert_ids(r))
    assert set(per_path.values()) == {1}, per_path
    assert {a for (_, a) in per_path} == set(raised)
    assert len(per_path) == 9  # 3 alerts x 3 channels, each exactly once
    rows = await _outbox(store)
    assert all(r.status == "delivered" and r.attempts >= 2 for r in rows)


async def test_receiver_down_then_every_alert_arrives_exactly_once(
        sqlite_store: Store, receiver: Receiver) -> None:
    await _outage_run(sqlite_store, receiver, outage_s=3.0)


@pytest.mark.slow
async def test_receiver_down_for_two_minutes(sqlite_store: Store, receiver: Receiver) -> None:
    await _outage_run(sqlite_store, receiver, outage_s=120.0)


async def test_robot_rate_limit_respected_by_batching(sqlite_store: Store,
                                                      receiver: Receiver) -> None:
    await receiver.start()
    clock = ManualClock(T0)
    async with sqlite_store.session() as s:
        await registry.add_household(s, "h1", "c1", start=T0 - timedelta(days=1), now=T0)
        await s.flush()
        for i in range(30):
            await registry.add_sensor(s, f"n{i}", "h1", now=T0)
        await s.commit()
    iot = {
        "notifiers": [{"name": "wecom", "type": "wecom", "url": receiver.url("/wecom"),
                       "rate_per_minute": 2}],
        "routes": [{"community": "c1", "notifiers": ["wecom"]}],
        "rules": {"heartbeat_timeout_seconds": 86400},
    }
    async with IotService(make_settings(sqlite_store.config, iot).iot, sqlite_store,
                          clock=clock) as service:
        assert service.outbox is not None
        for i in range(30):
            await service.ingest(*_door(f"n{i}", 1))
        await async_wait_until(_count(receiver, 2), what="2 messages")
        # The window is full: another pass sends nothing and says when to come back.
        assert await service.outbox.deliver_due() > 0
        assert len(receiver.requests) == 2
        clock.advance(60)
        service.outbox.wake()
        await async_wait_until(_all_delivered(sqlite_store), what="all delivered")
    ids = [a for r in receiver.requests for a in _wecom_alert_ids(r)]
    assert sorted(ids) == list(range(1, 31))
    # Never more than 2 messages per minute of (manual) time: 2 before, at most 2 after.
    assert len(receiver.requests) <= 4
    rows = await _outbox(sqlite_store)
    assert all(r.status == "delivered" for r in rows)


def _alert_ids(r: Any) -> list[int]:
    if r.path == "/hook":
        return [a["alert_id"] for a in r.body["alerts"]]
    return _wecom_alert_ids(r)


def _wecom_alert_ids(r: Any) -> list[int]:
    text = r.body["markdown"].get("content") or r.body["markdown"].get("text")
    # The alert id as each language's templates write it (display.language).
    return [int(m) for m in re.findall(r"(?:alert id|告警编号) (\d+)", text)]


def _count(receiver: Receiver, n: int) -> Any:
    async def check() -> bool:
        return len(receiver.requests) >= n
    return check


def _attempted(store: Store) -> Any:
    async def check() -> bool:
        return all(r.attempts >= 1 for r in await _outbox(store)) and bool(await _outbox(store))
    return check


def _after(deadline: float) -> Any:
    async def check() -> bool:
        return time.monotonic() >= deadline
    return check


def _all_delivered(store: Store) -> Any:
    async def check() -> bool:
        rows = await _outbox(store)
        return bool(rows) and all(r.status == "delivered" for r in rows)
    return check



async def _enqueue_one(store: Store, settings: Any, alert_id: int,
                       clock: ManualClock) -> list[OutboxMessage]:
    async with store.session() as s:
        rows = enqueue(s, Notification(
            alert_id=alert_id, reason="raised", type="door_open", severity="critical",
            community="c1", household="h1", sensor="n1", reasons=("opened",), count=1,
            first_seen=T0.isoformat()), settings.iot.routes, clock.now())
        await s.commit()
    assert len(rows) == 1
    assert rows[0].id is not None
    return rows


@pytest.mark.parametrize("order", ["poll_then_hand_off", "hand_off_then_poll"])
async def test_row_both_handed_off_and_polled_is_sent_once(
        sqlite_store: Store, receiver: Receiver, order: str) -> None:
    """The writer hands just-committed rows to the worker; a poll may find the same rows
    (committed before its query, handed over after it, or handed over and not yet taken).
    Either way each row goes out once."""
    await receiver.start()
    settings = make_settings(sqlite_store.config, _iot(
        receiver, routes=[{"community": "c1", "notifiers": ["hook"]}]))
    clock = ManualClock(T0)
    async with aiohttp.ClientSession() as http:
        hook = build_notifier(settings.iot.notifiers[0], http, settings.iot.mqtt)
        worker = OutboxWorker(sqlite_store, {"hook": hook}, settings.iot, clock)
        rows = await _enqueue_one(sqlite_store, settings, 7, clock)
        if order == "poll_then_hand_off":
            await worker.deliver_due()
            worker.hand_off(rows)
        else:
            worker.hand_off(rows)
            await worker.deliver_due()
        for _ in range(2):
            await worker.flush()
            await worker.run_once()
            worker.wake()
        await worker.flush()
    assert [_alert_ids(r) for r in receiver.requests] == [[7]]
    [row] = await _outbox(sqlite_store)
    assert (row.status, row.attempts) == ("delivered", 1)


async def test_hand_off_delivers_without_a_poll(sqlite_store: Store,
                                                receiver: Receiver) -> None:
    """A handed-over row is sent by the next pass even when no poll is due."""
    await receiver.start()
    settings = make_settings(sqlite_store.config, _iot(
        receiver, routes=[{"community": "c1", "notifiers": ["hook"]}]))
    clock = ManualClock(T0)
    async with aiohttp.ClientSession() as http:
        hook = build_notifier(settings.iot.notifiers[0], http, settings.iot.mqtt)
        worker = OutboxWorker(sqlite_store, {"hook": hook}, settings.iot, clock)
        assert await worker.run_once() > 0  # the first poll: nothing there
        worker.hand_off(await _enqueue_one(sqlite_store, settings, 8, clock))
        await worker.run_once()
        await worker.flush()
    assert [_alert_ids(r) for r in receiver.requests] == [[8]]


async def test_hand_off_behind_a_rate_limited_backlog_is_folded_in(
        sqlite_store: Store, receiver: Receiver) -> None:
    """When older alerts wait for a notifier's rate limit, a new one does not jump the
    queue on its own: the next allowed message carries the old ones and the new one."""
    await receiver.start()
    settings = make_settings(sqlite_store.config, _iot(
        receiver, notifiers=[{"name": "hook", "type": "webhook", "url": receiver.url("/hook"),
                              "rate_per_minute": 2}],
        routes=[{"community": "c1", "notifiers": ["hook"]}]))
    clock = ManualClock(T0)
    async with aiohttp.ClientSession() as http:
        hook = build_notifier(settings.iot.notifiers[0], http, settings.iot.mqtt)
        worker = OutboxWorker(sqlite_store, {"hook": hook}, settings.iot, clock)
        for alert_id in (1, 2, 3):  # the third meets the limit of 2 per minute
            worker.hand_off(await _enqueue_one(sqlite_store, settings, alert_id, clock))
            await worker.run_once()
            await worker.flush()
        clock.advance(60)
        worker.hand_off(await _enqueue_one(sqlite_store, settings, 4, clock))
        await worker.run_once()
        await worker.flush()
        worker.wake()
        await worker.run_once()
        await worker.flush()
    assert [_alert_ids(r) for r in receiver.requests] == [[1], [2], [3, 4]]
