"""Repeat openings and recovery messages through the whole path: a private Mosquitto, the
intake, the store, the rules and a real HTTP sink (issue 13, items 1 and 6).

The clock is a ManualClock: time moves only when the test moves it, and the folded
openings go out when the test runs the sweep after the interval.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import Any

import aiomqtt
import pytest
from sqlmodel import col, select

from netguard.clock import ManualClock
from netguard.iot import registry
from netguard.iot.models import OutboxMessage
from netguard.iot.service import IotService
from netguard.store import Store
from tests.iot.conftest import T0, make_settings
from tests.iot.receiver import Receiver
from tests.support.servers import Broker
from tests.support.wait import async_wait_until

pytestmark = pytest.mark.integration

TOPIC = "netguard/sensors/{}/event"


def _iot(broker: Broker, receiver: Receiver, **rules: Any) -> dict[str, Any]:
    return {"mqtt": {"enabled": True, "host": broker.host, "port": broker.port,
                     "client_id": "netguard-repeat", "reconnect_min_seconds": 0.1,
                     "reconnect_max_seconds": 0.3},
            "notifiers": [{"name": "hook", "type": "webhook", "url": receiver.url("/hook")}],
            "routes": [{"community": "c1", "notifiers": ["hook"], "notify_recovery": True},
                       {"community": "c2", "notifiers": ["hook"]}],
            "rules": {"heartbeat_timeout_seconds": 3600, "renotify_minutes": [],
                      **rules}}


async def _register(store: Store, *households: tuple[str, str, str]) -> None:
    """Quarantined households ``(id, community, native sensor)`` since a day before T0."""
    start = T0 - timedelta(days=1)
    async with store.session() as s:
        for household, community, _ in households:
            await registry.add_household(s, household, community, start=start, now=start)
        await s.flush()
        for household, _, sensor in households:
            await registry.add_sensor(s, sensor, household, fmt="native", now=start)
        await s.commit()


class _Door:
    """Publishes a native sensor's events and waits until the service stored them."""

    def __init__(self, service: IotService, pub: aiomqtt.Client) -> None:
        self.service = service
        self.pub = pub
        self.seq: dict[str, int] = {}

    async def send(self, sensor: str, *events: str) -> None:
        before = sum(self.service.snapshot().door_events.values())
        for event in events:
            seq = self.seq.get(sensor, 0)
            self.seq[sensor] = seq + 1
            body = {"sensor": sensor, "seq": seq, "event": event}
            await self.pub.publish(TOPIC.format(sensor), json.dumps(body).encode(), qos=1)

        async def stored() -> bool:
            return sum(self.service.snapshot().door_events.values()) >= before + len(events)

        await async_wait_until(stored, what=f"{events} of {sensor} stored")


@asynccontextmanager
async def _running(broker: Broker, store: Store, receiver: Receiver, clock: ManualClock,
                   **rules: Any) -> AsyncIterator[_Door]:
    settings = make_settings(store.config, _iot(broker, receiver, **rules))
    async with IotService(settings.iot, store, clock=clock) as service, \
            aiomqtt.Client(broker.host, broker.port, identifier="repeat-pub") as pub:
        async def connected() -> bool:
            return service.mqtt_connected

        await async_wait_until(connected, what="intake connected")
        yield _Door(service, pub)


def _sink(receiver: Receiver) -> list[dict[str, Any]]:
    return [a for r in receiver.on("/hook") for a in r.body["alerts"]]


async def _sink_has(receiver: Receiver, n: int) -> None:
    async def check() -> bool:
        return len(_sink(receiver)) >= n

    await async_wait_until(check, what=f"{n} messages at the sink")


async def _rows(store: Store) -> list[OutboxMessage]:
    async with store.session() as s:
        return list((await s.exec(select(OutboxMessage).order_by(col(OutboxMessage.id)))).all())


def _brief(message: dict[str, Any]) -> tuple[str, int, int, str, list[str]]:
    return (message["reason"], message["alert_id"], message["count"], message["first_seen"],
            message["reasons"])


async def test_open_close_open_open_again_ack_and_open(broker: Broker, store: Store,
                                                       receiver: Receiver) -> None:
    await _register(store, ("h1", "c1", "n1"))
    clock = ManualClock(T0)
    t0 = T0.isoformat()
    async with _running(broker, store, receiver, clock) as door:
        await door.send("n1", "open")
        await _sink_has(receiver, 1)
        first = _sink(receiver)[0]["alert_id"]
        await door.send("n1", "close")
        clock.advance(150)  # past min_repeat_interval (120 s): told at once
        await door.send("n1", "open")
        await _sink_has(receiver, 2)
        clock.advance(150)
        await door.send("n1", "close", "open")
        await _sink_has(receiver, 3)
        acked = await door.service.acknowledge(first, actor="warden")
        clock.advance(30)  # within the interval, but a new alert is told at once
        await door.send("n1", "close", "open")
        await _sink_has(receiver, 4)
        await door.service.sweep()  # nothing folded: nothing more to send
    messages = _sink(receiver)
    second = messages[3]["alert_id"]
    assert second != first
    assert [_brief(m) for m in messages] == [
        ("raised", first, 1, t0, [f"door opened at {T0:%Y-%m-%dT%H:%M:%S+00:00} during "
                                  "quarantine of household h1"]),
        ("repeat", first, 2, t0, [f"door opened again (2nd time in 2 min; first opening at "
                                  f"{T0:%Y-%m-%dT%H:%M:%S+00:00})"]),
        ("repeat", first, 3, t0, [f"door opened again (3rd time in 5 min; first opening at "
                                  f"{T0:%Y-%m-%dT%H:%M:%S+00:00})"]),
        ("raised", second, 1, (T0 + timedelta(seconds=330)).isoformat(),
         [f"door opened at {T0 + timedelta(seconds=330):%Y-%m-%dT%H:%M:%S+00:00} during "
          "quarantine of household h1"]),
    ]
    # The acknowledged alert keeps each opening in its history, and says who covered them.
    assert acked["count"] == acked["count_notified"] == 3
    assert acked["acked_by"] == "warden"
    assert acked["state"] == "closed"
    assert acked["reasons"][1:] == [
        f"door opened again at {T0 + timedelta(seconds=150):%Y-%m-%dT%H:%M:%S+00:00} "
        "(2nd opening)",
        f"door opened again at {T0 + timedelta(seconds=300):%Y-%m-%dT%H:%M:%S+00:00} "
        "(3rd opening)"]
    assert [(r.reason, r.status) for r in await _rows(store)] == [
        ("raised", "delivered"), ("repeat", "delivered"), ("repeat", "delivered"),
        ("raised", "delivered")]


async def test_a_burst_of_ten_openings_makes_two_messages(broker: Broker, store: Store,
                                                          receiver: Receiver) -> None:
    await _register(store, ("h1", "c1", "n1"))
    clock = ManualClock(T0)
    async with _running(broker, store, receiver, clock) as door:
        for i in range(10):  # 10 openings in 54 s
            if i:
                clock.advance(6)
            await door.send("n1", "open", "close")
        await _sink_has(receiver, 1)
        await door.service.sweep()  # 54 s after the first message: still folded
        assert [(r.reason, r.status) for r in await _rows(store)] == [("raised", "delivered")]
        clock.advance(120 - 54)  # the interval has passed since the alert's message
        await door.service.sweep()
        await _sink_has(receiver, 2)
        await door.service.sweep()  # told: nothing left to send
        clock.advance(600)
        await door.service.sweep()
    messages = _sink(receiver)
    assert [(m["reason"], m["count"]) for m in messages] == [("raised", 1), ("repeat", 10)]
    assert messages[1]["reasons"] == [
        f"door opened again (10th time in 54 s; first opening at "
        f"{T0:%Y-%m-%dT%H:%M:%S+00:00}); 9 openings since the last message"]
    assert [r.reason for r in await _rows(store)] == ["raised", "repeat"]


async def test_a_sensor_back_online_is_told_on_routes_that_ask(broker: Broker, store: Store,
                                                               receiver: Receiver) -> None:
    # h1's community c1 has notify_recovery; h2's community c2 does not.
    await _register(store, ("h1", "c1", "n1"), ("h2", "c2", "n2"))
    clock = ManualClock(T0)
    async with _running(broker, store, receiver, clock) as door:
        await door.send("n1", "heartbeat")
        await door.send("n2", "heartbeat")
        clock.advance(3601)
        await door.service.sweep()  # both silent past the timeout: offline alerts
        await _sink_has(receiver, 2)
        clock.advance(3 * 3600 + 12 * 60 - 3601)
        await door.send("n1", "heartbeat")
        await door.send("n2", "heartbeat")
        await _sink_has(receiver, 3)
        await door.service.sweep()
    messages = _sink(receiver)
    assert sorted((m["reason"], m["type"], m["sensor"]) for m in messages[:2]) == [
        ("raised", "offline", "n1"), ("raised", "offline", "n2")]
    assert [(m["reason"], m["type"], m["sensor"], m["reasons"]) for m in messages[2:]] == [
        ("recovery", "offline", "n1", ["sensor back online after 3 h 12 min (heartbeat)"])]
    rows = await _rows(store)
    assert sorted((r.reason, r.community) for r in rows) == [
        ("raised", "c1"), ("raised", "c2"), ("recovery", "c1")]
    assert all(r.status == "delivered" for r in rows)
