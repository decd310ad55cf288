"""Property-based fuzzing of every registered codec (hypothesis; profiles in
tests/conftest.py, docs/testing.md).

For any topic and payload, near-valid or not:

* the codec returns a DoorEvent or raises PayloadError with a known reason, nothing else;
* a door opening (``contact == "open"``), and so a door-open alert from the rules, comes
  only from a *valid decisive field* that says open, checked here by an oracle written
  independently of the codec;
* a dropped field is always a bounded metric label.
"""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from netguard.errors import PayloadError
from netguard.iot.codecs import FIELD_LABELS, codec_names, decode
from netguard.iot.config import RulesConfig
from netguard.iot.events import AlertType, DoorEvent
from netguard.iot.rules import HouseholdRules, Period, RaiseAlert, SensorState, evaluate
from tests.iot.conftest import T0

REASONS = {"oversized", "malformed", "unsupported_topic", "topic_mismatch"}
HOUSEHOLD = HouseholdRules("h1", "c1", quarantines=(Period(T0 - timedelta(days=1)),))

_scalars = (st.none() | st.booleans() | st.integers(-3, 3) | st.integers()
            | st.floats(allow_nan=False) | st.sampled_from(
                ["open", "close", "closed", "true", "false", "1", "0", "", "dark", "s1"])
            | st.text(max_size=8))


def _tree(keys: list[str]) -> st.SearchStrategy[Any]:
    return st.recursive(_scalars, lambda c: st.lists(c, max_size=3)
                        | st.dictionaries(st.sampled_from(keys), c, max_size=6),
                        max_leaves=14)


_NATIVE_KEYS = ["v", "sensor", "sensor_id", "event", "door", "seq", "battery",
                "battery_percent", "ts", "boot", "tamper", "extra"]


def _near(good: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """Mostly a valid value, sometimes anything."""
    # (one_of with a repeated branch would not weigh it: hypothesis merges them)
    return st.integers(0, 4).flatmap(lambda i: _scalars if i == 4 else good)


_battery = _near(st.integers(0, 100) | st.floats(0, 100)) | st.sampled_from(["full", 101, -1])
_native_object = st.fixed_dictionaries(
    {"sensor": _near(st.just("s1")), "seq": _near(st.integers(0, 2**63 - 1))},
    optional={"event": _near(st.sampled_from(["open", "close", "heartbeat", "tamper",
                                              "battery"])),
              "door": _near(st.sampled_from(["open", "closed", "Open", "closed ", 1])),
              "tamper": _near(st.booleans() | st.sampled_from([0, 1, "true"])),
              "battery": _battery, "battery_percent": _battery,
              "ts": _near(st.integers(0, 2**41) | st.just("2026-03-01T08:00:00+08:00")),
              "boot": _near(st.just("b7")), "v": _near(st.just(1))})
_z2m_object = st.fixed_dictionaries({}, optional={
    "contact": _near(st.booleans() | st.sampled_from([0, 1, "false", "open"])),
    "tamper": _near(st.booleans() | st.sampled_from([0, 1, "true"])), "battery": _battery,
    "linkquality": _near(st.integers(0, 255)), "voltage": _near(st.integers(2500, 3300)),
    "temperature": _near(st.floats(-20, 50)), "battery_low": _near(st.booleans()),
    "state": _scalars, "device_temperature": _scalars})
_readings = {
    "state": ["open", "close", "Open", "opened", " open"],
    "battery": ["87", "-1", "0", "100"], "vibration": ["0", "1"],
    "lux": ["230", "-1"], "tilt": ["37", "-1"], "illumination": ["dark", "twilight", "bright"],
    "temperature": ["21.5", "999"], "error": ["0", "1"], "act_reasons": ['["sensor"]'],
    "charger": ["false"]}
_shelly_message = st.sampled_from(sorted(_readings)).flatmap(lambda r: st.tuples(
    _near(st.just(f"shellies/shellydw2-A1/sensor/{r}")).map(str),
    st.one_of(st.sampled_from(_readings[r]), st.sampled_from(_readings[r]),
              st.text(max_size=12)).map(str.encode) | st.binary(max_size=20)))
_blu_data = st.fixed_dictionaries(
    {"address": _near(st.just("3c:2e:f5:71:d5:2a")),
     "window": _near(st.sampled_from([0, 1, True, False, 2, -1, "1", 1.0, 0.5]))},
    optional={"battery": _battery,
              "rotation": _near(st.floats(-180, 180)), "illuminance": _near(st.integers(0)),
              "rssi": _near(st.integers(-100, 0)), "pid": _scalars, "button": _scalars})
_blu_event = st.fixed_dictionaries({"event": st.sampled_from(["shelly-blu", "single_push"]),
                                    "data": _near(_blu_data)})
_input = _near(st.fixed_dictionaries({"id": st.just(0),
                                     "state": _near(st.booleans() | st.none()
                                                    | st.sampled_from([0, 1, "off"]))}))
_power = _near(st.fixed_dictionaries({"battery": _near(
    st.fixed_dictionaries({"percent": _battery}))}))
_status_frame = st.fixed_dictionaries(
    {"src": _near(st.just("shellyplusi4-a1")),
     "method": _near(st.sampled_from(["NotifyStatus", "NotifyFullStatus"])),
     "params": _near(st.fixed_dictionaries({"input:0": _input}, optional={
         "ts": _near(st.floats(0, 2**32)), "devicepower:0": _power, "wifi": _scalars}))})
_event_frame = st.fixed_dictionaries(
    {"src": _near(st.just("gw")), "method": _near(st.just("NotifyEvent")),
     "params": _near(st.fixed_dictionaries(
         {"events": _near(st.lists(_blu_event, min_size=1, max_size=2))},
         optional={"ts": _scalars}))})
_rpc_frame = st.one_of(_status_frame, _event_frame).map(lambda d: json.dumps(d).encode())


def _json(strategy: st.SearchStrategy[Any]) -> st.SearchStrategy[bytes]:
    return strategy.map(lambda v: json.dumps(v).encode())


CASES: dict[str, st.SearchStrategy[tuple[str, bytes]]] = {
    "native": st.tuples(
        _near(st.just("netguard/sensors/s1/event")).map(str),
        st.one_of(_json(_native_object), _json(_native_object),
                  _json(_tree(_NATIVE_KEYS)), st.binary(max_size=100))),
    "zigbee2mqtt": st.tuples(
        _near(st.just("zigbee2mqtt/s1")).map(str) | st.sampled_from(
            ["zigbee2mqtt/s1/availability", "zigbee2mqtt/bridge/state", "zigbee2mqtt/a b"]),
        st.one_of(_json(_z2m_object), _json(_z2m_object), _json(_tree(["contact", "state"])),
                  st.sampled_from([b"online", b"offline", b" online\n"]),
                  st.binary(max_size=100))),
    "shelly": _shelly_message | st.tuples(
        st.sampled_from(["shellies/x/online", "shellies/x", "shellies/x/relay/0"]),
        st.sampled_from([b"true", b"false", b"on"])),
    "shelly_rpc": st.tuples(
        _near(st.sampled_from(["shellyplusi4-a1/events/rpc", "gw/events/rpc"])).map(str)
        | st.sampled_from(["shellyplusi4-a1/online", "a/b/c", "events/rpc"]),
        st.one_of(_rpc_frame, _rpc_frame, _rpc_frame, st.binary(max_size=60),
                  _json(_tree(["src", "method", "params", "events", "data"])),
                  st.sampled_from([b"true", b"false"]))),
}


def test_every_registered_codec_is_fuzzed() -> None:
    assert set(CASES) == set(codec_names())


def _says_open(fmt: str, topic: str, payload: bytes) -> bool:
    """The oracle: the message's decisive field, read by hand, says "open"."""
    if fmt == "shelly":
        return topic.endswith("/sensor/state") and payload.strip() == b"open"
    data = json.loads(payload)
    if fmt == "native":
        # Either decisive field may say it (an explicit event, or a door state report).
        return bool(data.get("event") == "open" or data.get("door") == "open")
    if fmt == "zigbee2mqtt":
        return data.get("contact") is False
    params = data["params"]
    if data["method"] == "NotifyEvent":
        [blu] = [e for e in params["events"] if e.get("event") == "shelly-blu"]
        window = blu["data"]["window"]
        # JSON does not tell 1 from 1.0; a boolean is not a BTHome window value.
        return not isinstance(window, bool) and isinstance(window, int | float) and window == 1
    return params["input:0"]["state"] is False


def _check(fmt: str, topic: str, payload: bytes) -> None:
    try:
        event: DoorEvent | str = decode(fmt, topic, payload)
    except PayloadError as exc:
        event = exc.reason
    if isinstance(event, str):
        assert event in REASONS
        return
    assert isinstance(event, DoorEvent)
    assert event.format == fmt
    assert set(event.dropped) <= FIELD_LABELS
    state = SensorState("s1", "h1", contact="closed")
    raised = [a.type for a in evaluate(state, event, HOUSEHOLD, RulesConfig(), T0).actions
              if isinstance(a, RaiseAlert)]
    if event.contact == "open" or AlertType.DOOR_OPEN in raised:
        assert event.contact == "open"
        assert _says_open(fmt, topic, payload), (topic, payload)


@settings(max_examples=400)
@given(data=st.data())
def test_native(data: st.DataObject) -> None:
    _check("native", *data.draw(CASES["native"]))


@settings(max_examples=400)
@given(data=st.data())
def test_zigbee2mqtt(data: st.DataObject) -> None:
    _check("zigbee2mqtt", *data.draw(CASES["zigbee2mqtt"]))


@settings(max_examples=400)
@given(data=st.data())
def test_shelly(data: st.DataObject) -> None:
    _check("shelly", *data.draw(CASES["shelly"]))


@settings(max_examples=400)
@given(data=st.data())
def test_shelly_rpc(data: st.DataObject) -> None:
    _check("shelly_rpc", *data.draw(CASES["shelly_rpc"]))
