"""Door sensors as they behave in the field, through a real Mosquitto and the whole path
(decoded, stored, judged by the rules, delivered at a real HTTP receiver): a Shelly DW2
wake-up with and without ``sleeping``, Shelly Gen2+ and BLU notification frames, and a
door opening carried in a message with bad optional fields."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import aiomqtt
import pytest
from sqlmodel import col, select

from netguard.clock import ManualClock
from netguard.iot import registry
from netguard.iot.models import Alert, Event
from netguard.iot.service import IotService
from netguard.store import Store
from tests.iot.conftest import make_settings, register_estate
from tests.iot.receiver import Receiver
from tests.support.servers import Broker
from tests.support.wait import async_wait_until

pytestmark = pytest.mark.integration

GEN2 = "shellyplusi4-a8032ab1c2d3"
GATEWAY = "shellyplus1-e465b8f0a1b2"
BLU_MAC = "3c:2e:f5:71:d5:2a"
SUBSCRIPTIONS = [
    {"topic": "zigbee2mqtt/+", "format": "zigbee2mqtt"},
    {"topic": "shellies/+/sensor/+", "format": "shelly"},
    {"topic": "shellies/+/online", "format": "shelly"},
    {"topic": "+/events/rpc", "format": "shelly_rpc"},
]


def _iot(broker: Broker, receiver: Receiver, **rules: Any) -> dict[str, Any]:
    return {
        "mqtt": {"enabled": True, "host": broker.host, "port": broker.port,
                 "client_id": "netguard-field-test", "subscriptions": SUBSCRIPTIONS},
        "notifiers": [{"name": "hook", "type": "webhook", "url": receiver.url("/hook")}],
        "routes": [{"community": "c1", "notifiers": ["hook"]}],
        "rules": {"heartbeat_timeout_seconds": 86400, **rules},
    }


async def _estate(store: Store) -> None:
    # The estate's h1 is quarantined (community c1); real time, as the intake stamps it.
    now = datetime.now(UTC)
    await register_estate(store, now)
    async with store.session() as s:
        await registry.add_sensor(s, "g1", "h1", fmt="shelly_rpc", address=GEN2, now=now)
        await registry.add_sensor(s, "b1", "h1", fmt="shelly_rpc", address=BLU_MAC, now=now)
        await s.commit()


async def _publish(broker: Broker, messages: list[tuple[str, bytes]]) -> None:
    async with aiomqtt.Client(broker.host, broker.port, identifier="field-test-pub") as c:
        for topic, payload in messages:
            await c.publish(topic, payload, qos=1)


def _handled(service: IotService, n: int) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        snap = service.snapshot()
        return sum(snap.door_events.values()) + sum(snap.dead_letters.values()) >= n
    return check


def _connected(service: IotService) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        return service.mqtt_connected
    return check


async def _alerts(store: Store) -> list[tuple[str, str]]:
    async with store.session() as s:
        rows = (await s.exec(select(Alert).order_by(col(Alert.id)))).all()
    return [(a.type, a.sensor_id) for a in rows]


def _delivered(receiver: Receiver) -> list[tuple[str, str]]:
    return sorted((a["type"], a["sensor"]) for r in receiver.on("/hook")
                  for a in r.body["alerts"])


def _sink(receiver: Receiver, expected: list[tuple[str, str]]
          ) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        return _delivered(receiver) == sorted(expected)
    return check


DW2 = "shellies/shellydw2-ABC"
# One wake-up of a Shelly Door/Window 2: every reading it documents, then its last will.
WAKE_UP = [
    (f"{DW2}/online", b"true"),
    (f"{DW2}/sensor/act_reasons", b'["sensor"]'),
    (f"{DW2}/sensor/state", b"close"),
    (f"{DW2}/sensor/lux", b"87"),
    (f"{DW2}/sensor/illumination", b"twilight"),
    (f"{DW2}/sensor/tilt", b"0"),
    (f"{DW2}/sensor/vibration", b"0"),
    (f"{DW2}/sensor/temperature", b"21.4"),
    (f"{DW2}/sensor/battery", b"98"),
    (f"{DW2}/sensor/error", b"0"),
    (f"{DW2}/online", b"false"),
]


async def test_a_sleeping_dw2_wake_up_is_all_stored_and_raises_nothing(
        broker: Broker, sqlite_store: Store, receiver: Receiver) -> None:
    await _estate(sqlite_store)
    rules = {"devices": [{"format": "shelly", "address": "shellydw2-*", "sleeping": True}]}
    async with IotService(make_settings(sqlite_store.config, _iot(broker, receiver, **rules)).iot,
                          sqlite_store) as service:
        await async_wait_until(_connected(service), timeout=60, what="connected")
        await _publish(broker, WAKE_UP)
        await async_wait_until(_handled(service, len(WAKE_UP)), timeout=60,
                               what="the wake-up handled")
        snap = service.snapshot()
        assert snap.dead_letters == {}
        assert snap.door_events == {"online": 1, "heartbeat": 7, "close": 1, "battery": 1,
                                    "offline": 1}
        assert snap.payload_field_errors == {}
    # The alert (or its absence) commits with the event: nothing raised, nothing sent.
    assert await _alerts(sqlite_store) == []
    assert receiver.on("/hook") == []
    async with sqlite_store.session() as s:
        kinds = (await s.exec(select(Event.kind).where(col(Event.sensor_id) == "s1")
                              .order_by(col(Event.id)))).all()
    assert kinds[-1] == "offline"  # the last will is on record


async def test_a_sleeping_device_goes_offline_after_its_own_heartbeat_timeout(
        broker: Broker, sqlite_store: Store, receiver: Receiver) -> None:
    # Every sensor of h1 but the DW2 is offline after the global 600 s of silence; the
    # DW2, which sleeps for hours, only after its own 13 h.
    await _estate(sqlite_store)
    clock = ManualClock(datetime.now(UTC))
    rules = {"heartbeat_timeout_seconds": 600,
             "devices": [{"format": "shelly", "address": "shellydw2-*", "sleeping": True,
                          "heartbeat_timeout_seconds": 13 * 3600}]}
    async with IotService(make_settings(sqlite_store.config, _iot(broker, receiver, **rules)).iot,
                          sqlite_store, clock=clock) as service:
        await async_wait_until(_connected(service), timeout=60, what="connected")
        await _publish(broker, WAKE_UP)
        await async_wait_until(_handled(service, len(WAKE_UP)), timeout=60,
                               what="the wake-up handled")
        clock.advance(700)
        await service.sweep()
        offline = {sensor for kind, sensor in await _alerts(sqlite_store) if kind == "offline"}
        assert offline == {"n1", "z1", "g1", "b1"}
        clock.advance(13 * 3600)
        await service.sweep()
        offline = {sensor for kind, sensor in await _alerts(sqlite_store) if kind == "offline"}
        assert offline == {"n1", "z1", "g1", "b1", "s1"}
        # (with the others' reminders, due by now too)

        async def s1_delivered() -> bool:
            return ("offline", "s1") in _delivered(receiver)

        await async_wait_until(s1_delivered, timeout=60, what="s1 offline at the receiver")


async def test_without_sleeping_the_dw2_last_will_is_an_offline_alert(
        broker: Broker, sqlite_store: Store, receiver: Receiver) -> None:
    await _estate(sqlite_store)
    async with IotService(make_settings(sqlite_store.config, _iot(broker, receiver)).iot,
                          sqlite_store) as service:
        await async_wait_until(_connected(service), timeout=60, what="connected")
        await _publish(broker, WAKE_UP)
        await async_wait_until(_handled(service, len(WAKE_UP)), timeout=60,
                               what="the wake-up handled")
        assert service.snapshot().dead_letters == {}
        await async_wait_until(_sink(receiver, [("offline", "s1")]), timeout=60,
                               what="the offline alert at the receiver")
    assert await _alerts(sqlite_store) == [("offline", "s1")]


def _frame(src: str, method: str, params: dict[str, Any]) -> bytes:
    return json.dumps({"src": src, "dst": f"{src}/events", "method": method,
                       "params": params}).encode()


async def test_gen2_notify_status_and_blu_reports(broker: Broker, sqlite_store: Store,
                                                  receiver: Receiver) -> None:
    await _estate(sqlite_store)
    ts = datetime.now(UTC).timestamp()
    blu = {"encryption": False, "BTHome_version": 2, "pid": 7, "battery": 96,
           "illuminance": 120, "window": 1, "rotation": 0.0, "rssi": -71,
           "address": BLU_MAC}
    messages = [
        (f"{GEN2}/events/rpc", _frame(GEN2, "NotifyStatus", {
            "ts": ts, "input:0": {"id": 0, "state": True}})),
        (f"{GEN2}/events/rpc", _frame(GEN2, "NotifyStatus", {
            "ts": ts, "wifi": {"sta_ip": "10.0.0.7", "status": "got ip", "rssi": -58}})),
        (f"{GEN2}/events/rpc", _frame(GEN2, "NotifyStatus", {
            "ts": ts, "input:0": {"id": 0, "state": False}})),
        (f"{GATEWAY}/events/rpc", _frame(GATEWAY, "NotifyEvent", {"ts": ts, "events": [
            {"component": "script:1", "id": 1, "event": "shelly-blu", "data": blu,
             "ts": ts}]})),
    ]
    async with IotService(make_settings(sqlite_store.config, _iot(broker, receiver)).iot,
                          sqlite_store) as service:
        await async_wait_until(_connected(service), timeout=60, what="connected")
        await _publish(broker, messages)
        await async_wait_until(_handled(service, len(messages)), timeout=60,
                               what="the frames handled")
        snap = service.snapshot()
        assert snap.dead_letters == {}
        assert snap.door_events == {"close": 1, "heartbeat": 1, "open": 2}
        await async_wait_until(_sink(receiver, [("door_open", "b1"), ("door_open", "g1")]),
                               timeout=60, what="both door openings at the receiver")
    async with sqlite_store.session() as s:
        battery = (await s.exec(select(Event.battery).where(col(Event.sensor_id) == "b1"))).one()
    assert battery == 96.0


async def test_a_door_opening_with_a_bad_battery_raises_the_alert_and_counts_the_field(
        broker: Broker, sqlite_store: Store, receiver: Receiver) -> None:
    await _estate(sqlite_store)
    payload = b'{"contact": false, "linkquality": "high", "battery": "full"}'
    async with IotService(make_settings(sqlite_store.config, _iot(broker, receiver)).iot,
                          sqlite_store) as service:
        await async_wait_until(_connected(service), timeout=60, what="connected")
        await _publish(broker, [("zigbee2mqtt/door_z1", payload)])
        await async_wait_until(_handled(service, 1), timeout=60, what="the message handled")
        snap = service.snapshot()
        assert snap.dead_letters == {}
        assert snap.door_events == {"open": 1}
        assert snap.payload_field_errors == {"battery": 1, "linkquality": 1}
        await async_wait_until(_sink(receiver, [("door_open", "z1")]), timeout=60,
                               what="the door alert at the receiver")
    async with sqlite_store.session() as s:
        row = (await s.exec(select(Event).where(col(Event.sensor_id) == "z1"))).one()
    # Stored as received: the raw message keeps the dropped fields.
    assert (row.kind, row.contact, row.battery, row.payload) == ("open", "open", None, payload)
