"""Device families byte for byte: the codec registry, every Shelly DW2 reading, Shelly
Gen2+ RPC frames and BLU reports, per-field leniency and tamper-first decoding."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from netguard.errors import PayloadError
from netguard.iot.codecs import (
    FIELD_LABELS,
    Codec,
    codec_names,
    decode,
    field_label,
    get_codec,
    register,
)
from netguard.iot.config import Subscription
from netguard.iot.events import DoorEvent, EventKind
from netguard.iot.registry import FORMATS

DW2 = "shellies/shellydw2-8A1B2C/sensor"

# ------------------------------------------------------------------ registry


def test_every_family_is_registered_once_and_config_follows_the_registry() -> None:
    assert set(codec_names()) == {"native", "zigbee2mqtt", "shelly", "shelly_rpc"}
    assert codec_names() == FORMATS
    assert Subscription(topic="+/events/rpc", format="shelly_rpc").format == "shelly_rpc"
    with pytest.raises(ValueError, match="unknown payload format 'lora'"):
        Subscription(topic="x/+", format="lora")


def test_a_registered_name_cannot_be_taken_twice() -> None:
    with pytest.raises(ValueError, match="already registered"):
        register(Codec("shelly", get_codec("native").decode, (), "a second shelly"))


def test_an_unknown_format_is_refused_loudly() -> None:
    with pytest.raises(PayloadError) as info:
        decode("lora", "a/b", b"{}")
    assert info.value.reason == "unsupported_topic"
    assert "known: native" in str(info.value)


def test_field_labels_are_bounded() -> None:
    assert field_label("battery") == "battery"
    assert field_label("x" * 500) == "other"
    assert "other" in FIELD_LABELS

# ------------------------------------------------------------------ Shelly Gen1 DW2


@pytest.mark.parametrize(("reading", "payload", "kind", "extra"), [
    ("state", b"open", EventKind.OPEN, {"contact": "open"}),
    ("state", b"close", EventKind.CLOSE, {"contact": "closed"}),
    ("lux", b"230", EventKind.HEARTBEAT, {}),
    ("lux", b"-1", EventKind.HEARTBEAT, {}),
    ("illumination", b"dark", EventKind.HEARTBEAT, {}),
    ("illumination", b"twilight", EventKind.HEARTBEAT, {}),
    ("illumination", b"bright", EventKind.HEARTBEAT, {}),
    ("tilt", b"37", EventKind.HEARTBEAT, {}),
    ("tilt", b"-1", EventKind.HEARTBEAT, {}),
    ("vibration", b"0", EventKind.HEARTBEAT, {"tamper": False}),
    ("vibration", b"1", EventKind.TAMPER, {"tamper": True}),
    ("vibration", b"-1", EventKind.HEARTBEAT, {"tamper": None}),
    ("temperature", b"21.5", EventKind.HEARTBEAT, {}),
    ("temperature", b"999", EventKind.HEARTBEAT, {}),
    ("battery", b"87", EventKind.BATTERY, {"battery": 87.0}),
    ("battery", b"-1", EventKind.HEARTBEAT, {"battery": None}),
    ("error", b"0", EventKind.HEARTBEAT, {}),
    ("error", b"1", EventKind.HEARTBEAT, {}),
    ("act_reasons", b'["sensor"]', EventKind.HEARTBEAT, {}),
    ("act_reasons", b'["button", "periodic"]', EventKind.HEARTBEAT, {}),
    ("charger", b"false", EventKind.HEARTBEAT, {}),  # a reading we do not know: awake
])
def test_every_dw2_reading(reading: str, payload: bytes, kind: EventKind,
                           extra: dict[str, object]) -> None:
    event = decode("shelly", f"{DW2}/{reading}", payload)
    assert (event.address, event.kind, event.dropped) == ("shellydw2-8A1B2C", kind, ())
    for name, value in extra.items():
        assert getattr(event, name) == value


@pytest.mark.parametrize(("reading", "payload"), [
    ("battery", b"lots"), ("battery", b"140"), ("lux", b"bright"), ("tilt", b"200"),
    ("illumination", b"dim"), ("temperature", b"nan"), ("error", b"maybe"),
    ("act_reasons", b"sensor"), ("act_reasons", b'[1, 2]'), ("act_reasons", b'{"a": 1}'),
])
def test_a_bad_dw2_reading_is_a_heartbeat_without_it(reading: str, payload: bytes) -> None:
    event = decode("shelly", f"{DW2}/{reading}", payload)
    assert (event.kind, event.dropped, event.battery) == (EventKind.HEARTBEAT, (reading,), None)


@pytest.mark.parametrize(("reading", "payload"), [
    ("state", b"ajar"), ("state", b""), ("vibration", b"2"), ("vibration", b"x"),
    ("state", b"\xff"),
])
def test_a_bad_decisive_dw2_reading_is_refused(reading: str, payload: bytes) -> None:
    with pytest.raises(PayloadError) as info:
        decode("shelly", f"{DW2}/{reading}", payload)
    assert info.value.reason == "malformed"


def test_dw2_last_will() -> None:
    event = decode("shelly", "shellies/shellydw2-8A1B2C/online", b"false")
    assert (event.kind, event.online) == (EventKind.OFFLINE, False)

# ------------------------------------------------------------------ Shelly Gen2+ RPC


def _frame(method: str, params: dict[str, object], src: str = "shellyplusi4-a8032ab1c2d3"
           ) -> bytes:
    return json.dumps({"src": src, "dst": f"{src}/events", "method": method,
                       "params": params}).encode()


RPC = "shellyplusi4-a8032ab1c2d3/events/rpc"
TS = 1772352000.25  # 2026-03-01T08:00:00.25Z


@pytest.mark.parametrize(("state", "kind", "contact"), [
    (True, EventKind.CLOSE, "closed"), (False, EventKind.OPEN, "open"),
    (None, EventKind.HEARTBEAT, None),
])
def test_gen2_input_state(state: bool | None, kind: EventKind, contact: str | None) -> None:
    event = decode("shelly_rpc", RPC, _frame(
        "NotifyStatus", {"ts": TS, "input:0": {"id": 0, "state": state}}))
    assert (event.format, event.address, event.kind, event.contact) == (
        "shelly_rpc", "shellyplusi4-a8032ab1c2d3", kind, contact)
    assert event.device_time == datetime(2026, 3, 1, 8, 0, 0, 250000, tzinfo=UTC)


def test_gen2_other_status_is_a_heartbeat_and_battery_is_read() -> None:
    wifi = decode("shelly_rpc", RPC, _frame("NotifyStatus", {"ts": TS, "wifi": {"rssi": -60}}))
    assert (wifi.kind, wifi.contact) == (EventKind.HEARTBEAT, None)
    power = decode("shelly_rpc", RPC, _frame("NotifyStatus", {
        "ts": TS, "devicepower:0": {"id": 0, "battery": {"V": 5.9, "percent": 76}}}))
    assert (power.kind, power.battery) == (EventKind.BATTERY, 76.0)
    bad = decode("shelly_rpc", RPC, _frame("NotifyStatus", {
        "ts": TS, "input:0": {"id": 0, "state": False},
        "devicepower:0": {"id": 0, "battery": {"percent": "full"}}}))
    assert (bad.kind, bad.battery, bad.dropped) == (EventKind.OPEN, None, ("battery",))


def _blu(data: dict[str, object]) -> bytes:
    return _frame("NotifyEvent", {"ts": TS, "events": [
        {"component": "script:1", "id": 1, "event": "shelly-blu", "data": data, "ts": TS}]},
        src="shellyplus1-e465b8f0a1b2")


BLU = {"encryption": False, "BTHome_version": 2, "pid": 118, "battery": 100,
       "illuminance": 0, "window": 1, "rotation": 0, "rssi": -62,
       "address": "3c:2e:f5:71:d5:2a"}


def test_blu_door_window_through_a_gateway() -> None:
    event = decode("shelly_rpc", "shellyplus1-e465b8f0a1b2/events/rpc", _blu(BLU))
    assert (event.address, event.kind, event.contact, event.battery, event.dropped) == (
        "3c:2e:f5:71:d5:2a", EventKind.OPEN, "open", 100.0, ())
    closed = decode("shelly_rpc", RPC, _blu({**BLU, "window": 0, "rotation": 12.5}))
    assert (closed.kind, closed.contact) == (EventKind.CLOSE, "closed")
    button = decode("shelly_rpc", RPC, _blu({"pid": 3, "battery": 90, "button": 1,
                                             "address": "3C:2E:F5:71:D5:2A"}))
    assert (button.address, button.kind, button.battery) == (
        "3c:2e:f5:71:d5:2a", EventKind.BATTERY, 90.0)
    lenient = decode("shelly_rpc", RPC, _blu({**BLU, "battery": 300, "rotation": "left"}))
    assert (lenient.kind, lenient.dropped) == (EventKind.OPEN, ("battery", "rotation"))


def test_other_gen2_events_are_heartbeats_of_the_device() -> None:
    event = decode("shelly_rpc", RPC, _frame("NotifyEvent", {"ts": TS, "events": [
        {"component": "input:1", "id": 1, "event": "single_push", "ts": TS}]}))
    assert (event.address, event.kind) == ("shellyplusi4-a8032ab1c2d3", EventKind.HEARTBEAT)


def test_gen2_online() -> None:
    event = decode("shelly_rpc", "shellyplusi4-a8032ab1c2d3/online", b"false")
    assert (event.address, event.kind) == ("shellyplusi4-a8032ab1c2d3", EventKind.OFFLINE)


@pytest.mark.parametrize(("topic", "payload", "reason"), [
    (RPC, _frame("NotifyStatus", {"input:0": {"id": 0, "state": "on"}}), "malformed"),
    (RPC, _blu({**BLU, "window": 2}), "malformed"),
    (RPC, _blu({**BLU, "window": True}), "malformed"),
    (RPC, _blu({"window": 1}), "malformed"),
    (RPC, _blu({**BLU, "address": "3c 2e"}), "malformed"),
    (RPC, _frame("NotifyEvent", {"events": {}}), "malformed"),
    (RPC, _frame("Switch.Set", {"id": 0}), "malformed"),
    (RPC, b'{"src": "x", "method": "NotifyStatus"}', "malformed"),
    (RPC, b'{"method": "NotifyStatus", "params": {}}', "malformed"),
    (RPC, b"[]", "malformed"),
    ("a/b/status/input:0", b"{}", "unsupported_topic"),
    ("x/online", b"yes", "malformed"),
])
def test_bad_gen2_frames(topic: str, payload: bytes, reason: str) -> None:
    with pytest.raises(PayloadError) as info:
        decode("shelly_rpc", topic, payload)
    assert info.value.reason == reason

# ------------------------------------------------------------------ leniency and tamper


def test_a_door_opening_survives_bad_optional_fields() -> None:
    event = decode("zigbee2mqtt", "zigbee2mqtt/door_z1",
                   b'{"contact": false, "linkquality": "high", "battery": "full", '
                   b'"voltage": null, "temperature": [1], "battery_low": "no"}')
    assert (event.kind, event.contact, event.battery) == (EventKind.OPEN, "open", None)
    assert event.dropped == ("battery", "linkquality", "temperature", "battery_low")


def test_native_optional_fields_are_lenient_decisive_ones_are_not() -> None:
    topic = "netguard/sensors/s1/event"
    event = decode("native", topic,
                   b'{"sensor":"s1","seq":1,"event":"open","battery":101,"ts":"2026-01-01"}')
    assert (event.kind, event.battery, event.device_time, event.dropped) == (
        EventKind.OPEN, None, None, ("battery", "ts"))
    spoke = decode("native", topic, b'{"sensor":"s1","seq":2,"event":"battery","battery":-4}')
    assert (spoke.kind, spoke.dropped) == (EventKind.HEARTBEAT, ("battery",))
    for bad in (b'{"sensor":"s1","seq":3,"door":"ajar"}', b'{"sensor":"s1","seq":3,"tamper":1}',
                b'{"sensor":"s1","seq":"3"}'):
        with pytest.raises(PayloadError):
            decode("native", topic, bad)


@pytest.mark.parametrize(("fmt", "topic", "payload", "contact"), [
    ("zigbee2mqtt", "zigbee2mqtt/d", b'{"tamper": true, "contact": true}', "closed"),
    ("zigbee2mqtt", "zigbee2mqtt/d", b'{"tamper": true, "contact": false}', "open"),
    ("native", "netguard/sensors/d/event", b'{"sensor":"d","seq":1,"door":"closed",'
                                           b'"tamper":true}', "closed"),
])
def test_a_tamper_report_is_a_tamper_event_whatever_the_contact(
        fmt: str, topic: str, payload: bytes, contact: str) -> None:
    event = decode(fmt, topic, payload)
    assert (event.kind, event.tamper, event.contact) == (EventKind.TAMPER, True, contact)


def test_tamper_false_leaves_the_contact_deciding() -> None:
    event = decode("zigbee2mqtt", "zigbee2mqtt/d", b'{"tamper": false, "contact": true}')
    assert (event.kind, event.tamper) == (EventKind.CLOSE, False)


def test_dropped_is_part_of_the_value_object() -> None:
    assert DoorEvent("shelly", "a", EventKind.HEARTBEAT).dropped == ()
