"""The simulated sensors' payloads decode with netguard's own codecs as intended."""

from __future__ import annotations

from datetime import UTC, datetime

from netguard.demo.sensors import (
    Household,
    SensorState,
    native_message,
    zigbee2mqtt_availability,
    zigbee2mqtt_message,
)
from netguard.iot.codecs import decode
from netguard.iot.events import EventKind

NOW = datetime(2026, 11, 29, 14, 0, tzinfo=UTC)
NATIVE = Household("hh-1", "riverside", "1 River Road", "door-1", "native")
Z2M = Household("hh-2", "riverside", "4 River Road", "door-2", "zigbee2mqtt")


def test_native_open_decodes() -> None:
    msg = native_message(NATIVE, SensorState(closed=False, battery_percent=80, seq=3), NOW,
                         event="open", boot="b1")
    event = decode("native", msg.topic, msg.payload)
    assert event.kind is EventKind.OPEN
    assert event.address == "door-1"
    assert event.seq == 3
    assert event.battery == 80


def test_native_battery_and_heartbeat_decode() -> None:
    msg = native_message(NATIVE, SensorState(battery_percent=9, seq=4), NOW, event="battery")
    assert decode("native", msg.topic, msg.payload).kind is EventKind.BATTERY
    msg = native_message(NATIVE, SensorState(seq=5), NOW)
    assert decode("native", msg.topic, msg.payload).kind is EventKind.HEARTBEAT


def test_zigbee2mqtt_open_closed_and_availability_decode() -> None:
    opened = zigbee2mqtt_message(Z2M, SensorState(closed=False, battery_percent=12))
    event = decode("zigbee2mqtt", opened.topic, opened.payload)
    assert event.kind is EventKind.OPEN
    assert event.battery == 12
    closed = zigbee2mqtt_message(Z2M, SensorState(closed=True))
    assert decode("zigbee2mqtt", closed.topic, closed.payload).kind is EventKind.CLOSE
    online = zigbee2mqtt_availability(Z2M, True)
    assert decode("zigbee2mqtt", online.topic, online.payload).kind is EventKind.ONLINE
