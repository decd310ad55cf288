"""Acceptance 1: payload parsing, byte for byte, and bad payloads of every kind."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from netguard.errors import PayloadError
from netguard.iot.codecs import decode, topic_matches
from netguard.iot.events import DoorEvent, EventKind


def test_native_open_event_with_all_fields() -> None:
    payload = (b'{"v":1,"sensor":"door-101","event":"open","seq":42,"battery":87,'
               b'"ts":"2026-03-01T08:00:00+08:00","boot":"b7"}')
    event = decode("native", "netguard/sensors/door-101/event", payload)
    assert event == DoorEvent(format="native", address="door-101", kind=EventKind.OPEN,
                              contact="open", battery=87.0,
                              device_time=datetime(2026, 3, 1, 0, 0, tzinfo=UTC), seq=42,
                              boot="b7", edge=True)


@pytest.mark.parametrize(("body", "kind", "contact"), [
    ({"event": "close"}, EventKind.CLOSE, "closed"),
    ({"event": "heartbeat"}, EventKind.HEARTBEAT, None),
    ({"event": "battery", "battery": 12}, EventKind.BATTERY, None),
    ({"event": "tamper"}, EventKind.TAMPER, None),
    ({"door": "open"}, EventKind.OPEN, "open"),
    ({"door": "closed"}, EventKind.CLOSE, "closed"),
])
def test_native_event_kinds(body: dict[str, object], kind: EventKind, contact: str | None
                            ) -> None:
    payload = json.dumps({"sensor": "s1", "seq": 1, **body}).encode()
    event = decode("native", "netguard/sensors/s1/event", payload)
    assert event.kind is kind
    assert event.contact == contact
    assert event.edge is (body.get("event") == "open")
    if kind is EventKind.TAMPER:
        assert event.tamper is True


def test_native_epoch_millis_and_aliases() -> None:
    payload = b'{"sensor_id":"s1","seq":0,"battery_percent":55,"ts":1767225600000}'
    event = decode("native", "netguard/sensors/s1/event", payload)
    assert event.battery == 55.0
    assert event.device_time == datetime(2026, 1, 1, tzinfo=UTC)
    assert event.kind is EventKind.BATTERY


@pytest.mark.parametrize(("payload", "state"), [
    (b'{"battery":100,"battery_low":false,"contact":false,"linkquality":153,'
     b'"tamper":false,"voltage":3000}', "open"),
    (b'{"battery":100,"battery_low":false,"contact":true,"linkquality":153,'
     b'"tamper":false,"voltage":3000}', "closed"),
])
def test_zigbee2mqtt_contact_true_means_closed(payload: bytes, state: str) -> None:
    event = decode("zigbee2mqtt", "zigbee2mqtt/door_101", payload)
    assert event.address == "door_101"
    assert event.contact == state
    assert event.kind is (EventKind.OPEN if state == "open" else EventKind.CLOSE)
    assert event.battery == 100.0
    assert event.tamper is False
    assert event.seq is None


@pytest.mark.parametrize(("payload", "online"), [
    (b'{"state":"online"}', True), (b'{"state":"offline"}', False),
    (b"online", True), (b"offline", False),
])
def test_zigbee2mqtt_availability(payload: bytes, online: bool) -> None:
    event = decode("zigbee2mqtt", "zigbee2mqtt/door_101/availability", payload)
    assert event.address == "door_101"
    assert event.online is online
    assert event.kind is (EventKind.ONLINE if online else EventKind.OFFLINE)


def test_zigbee2mqtt_without_contact() -> None:
    assert decode("zigbee2mqtt", "zigbee2mqtt/d", b'{"battery":15}').kind is EventKind.BATTERY
    assert decode("zigbee2mqtt", "zigbee2mqtt/d", b'{"tamper":true}').kind is EventKind.TAMPER
    assert decode("zigbee2mqtt", "zigbee2mqtt/d", b'{"linkquality":9}').kind is \
        EventKind.HEARTBEAT


@pytest.mark.parametrize(("topic", "payload", "kind", "field", "value"), [
    ("shellies/shellydw2-A1/sensor/state", b"open", EventKind.OPEN, "contact", "open"),
    ("shellies/shellydw2-A1/sensor/state", b"close", EventKind.CLOSE, "contact", "closed"),
    ("shellies/shellydw2-A1/sensor/battery", b"87", EventKind.BATTERY, "battery", 87.0),
    ("shellies/shellydw2-A1/sensor/vibration", b"1", EventKind.TAMPER, "tamper", True),
    ("shellies/shellydw2-A1/sensor/lux", b"120", EventKind.HEARTBEAT, "contact", None),
    ("shellies/shellydw2-A1/online", b"true", EventKind.ONLINE, "online", True),
    ("shellies/shellydw2-A1/online", b"false", EventKind.OFFLINE, "online", False),
])
def test_shelly_door_window_2(topic: str, payload: bytes, kind: EventKind, field: str,
                              value: object) -> None:
    event = decode("shelly", topic, payload)
    assert event.address == "shellydw2-A1"
    assert event.kind is kind
    assert getattr(event, field) == value


@pytest.mark.parametrize(("fmt", "topic", "payload", "reason"), [
    ("native", "netguard/sensors/s1/event", b"x" * 5000, "oversized"),
    ("native", "netguard/sensors/s1/event", b"\xff\xfe", "malformed"),
    ("native", "netguard/sensors/s1/event", b"[1,2]", "malformed"),
    ("native", "netguard/sensors/s1/event", b'{"sensor":"s1","event":"open"}', "malformed"),
    ("native", "netguard/sensors/s1/event", b'{"sensor":"s1","seq":-1}', "malformed"),
    ("native", "netguard/sensors/s1/event", b'{"sensor":"s1","seq":true}', "malformed"),
    ("native", "netguard/sensors/s1/event", b'{"sensor":"s1","seq":1,"battery":NaN}',
     "malformed"),
    ("native", "netguard/sensors/s1/event", b'{"sensor":"s1","seq":1,"event":"fly"}',
     "malformed"),
    ("native", "netguard/sensors/s1/event", b'{"sensor":"s1","seq":1,"extra":1}',
     "malformed"),
    ("native", "netguard/sensors/s1/event", b'{"sensor":"s2","seq":1}', "topic_mismatch"),
    ("native", "netguard/sensors/s1/event", b'{"sensor":"a b","seq":1}', "malformed"),
    ("zigbee2mqtt", "zigbee2mqtt/d", b'{"contact":"yes"}', "malformed"),
    ("zigbee2mqtt", "zigbee2mqtt/d/availability", b'{"state":"maybe"}', "malformed"),
    ("zigbee2mqtt", "zigbee2mqtt/bridge/state", b'{"state":"online"}', "unsupported_topic"),
    ("shelly", "shellies/x/sensor/state", b"ajar", "malformed"),
    ("shelly", "shellies/x/relay/0", b"on", "unsupported_topic"),
    ("shelly", "shellies/x/online", b"yes", "malformed"),
    ("shelly", "shellies/x/sensor/vibration", b"strong", "malformed"),
    ("zigbee2mqtt", "zigbee2mqtt/d", b'{"contact":false,"tamper":"yes"}', "malformed"),
    ("nope", "a/b", b"{}", "unsupported_topic"),
])
def test_bad_payloads_are_refused_with_a_reason(fmt: str, topic: str, payload: bytes,
                                                 reason: str) -> None:
    with pytest.raises(PayloadError) as info:
        decode(fmt, topic, payload)
    assert info.value.reason == reason


@settings(max_examples=300, deadline=None)
@given(fmt=st.sampled_from(["native", "zigbee2mqtt", "shelly"]),
       topic=st.sampled_from(["netguard/sensors/s1/event", "zigbee2mqtt/s1",
                              "zigbee2mqtt/s1/availability", "shellies/s1/sensor/state",
                              "shellies/s1/sensor/battery", "shellies/s1/online", "x"]),
       payload=st.one_of(st.binary(max_size=300),
                         st.recursive(st.none() | st.booleans() | st.integers()
                                      | st.floats() | st.text(max_size=10),
                                      lambda c: st.lists(c, max_size=4)
                                      | st.dictionaries(st.sampled_from(
                                          ["sensor", "seq", "event", "battery", "contact",
                                           "ts", "state", "tamper", "door", "v"]), c,
                                          max_size=6),
                                      max_leaves=12).map(
                             lambda v: json.dumps(v).encode())))
def test_random_payloads_decode_or_raise_payload_error(fmt: str, topic: str,
                                                       payload: bytes) -> None:
    reason: str | None = None
    try:
        event: DoorEvent | None = decode(fmt, topic, payload)
    except PayloadError as exc:
        reason, event = exc.reason, None
    # Never anything but a DoorEvent or a PayloadError with a known reason.
    assert isinstance(event, DoorEvent) or reason in {
        "oversized", "malformed", "unsupported_topic", "topic_mismatch"}


@pytest.mark.parametrize(("flt", "topic", "match"), [
    ("zigbee2mqtt/+", "zigbee2mqtt/a", True),
    ("zigbee2mqtt/+", "zigbee2mqtt/a/availability", False),
    ("shellies/+/sensor/+", "shellies/x/sensor/state", True),
    ("a/#", "a/b/c", True),
    ("$share/g/a/+", "a/b", True),
    ("a/b", "a", False),
])
def test_topic_matches(flt: str, topic: str, match: bool) -> None:
    assert topic_matches(flt, topic) is match
