"""netguard's own JSON door-sensor schema (docs/iot.md, "Native payload")."""

from __future__ import annotations

from typing import Any

from netguard.errors import PayloadError
from netguard.iot.codecs.base import (
    Codec,
    address,
    device_time,
    json_object,
    register,
    short,
    valid_battery,
)
from netguard.iot.events import BOOT_MAX, SEQ_MAX, Contact, DoorEvent, EventKind

NATIVE_VERSION = 1
_NATIVE_EVENTS = {
    "open": EventKind.OPEN,
    "close": EventKind.CLOSE,
    "heartbeat": EventKind.HEARTBEAT,
    "tamper": EventKind.TAMPER,
    "battery": EventKind.BATTERY,
}
_NATIVE_KEYS = frozenset({"v", "sensor", "sensor_id", "event", "door", "seq", "battery",
                          "battery_percent", "ts", "boot", "tamper"})


def native_topic_sensor(topic: str) -> str | None:
    """The sensor id a native topic names: ``.../<id>/event`` or ``.../<id>``."""
    levels = topic.split("/")
    if len(levels) >= 2 and levels[-1] == "event":
        return levels[-2]
    return levels[-1] or None


def _alias(data: dict[str, Any], name: str, alias: str) -> Any:
    if name in data and alias in data:
        raise PayloadError("malformed", f"give {name} or {alias}, not both")
    return data.get(name, data.get(alias))


def _identity(topic: str, data: dict[str, Any]) -> tuple[str, int, str | None]:
    """Sensor, seq and boot: they make the dedup identity, so all three must be valid."""
    sensor = _alias(data, "sensor", "sensor_id")
    if not isinstance(sensor, str):
        raise PayloadError("malformed", "sensor must be a string")
    sensor = address(sensor, "sensor id")
    on_topic = native_topic_sensor(topic)
    if on_topic is not None and on_topic != sensor:
        raise PayloadError("topic_mismatch",
                           f"sensor {sensor!r} published on the topic of {on_topic!r}")
    seq = data.get("seq")
    if isinstance(seq, bool) or not isinstance(seq, int) or not 0 <= seq <= SEQ_MAX:
        raise PayloadError("malformed",
                           f"seq must be an integer from 0 to 2^63-1, got {short(seq)}")
    boot = data.get("boot")
    # isprintable(): no NUL (PostgreSQL text refuses it), no control characters, no lone
    # surrogates (not encodable as UTF-8).
    if boot is not None and (not isinstance(boot, str) or not 0 < len(boot) <= BOOT_MAX
                             or not boot.isprintable()):
        raise PayloadError("malformed", "boot must be a string of 1-64 printable characters")
    return sensor, seq, boot


def _kind(data: dict[str, Any], door: str | None, tamper: bool | None,
          battery: float | None) -> EventKind:
    event = data.get("event")
    if event is None:
        # A tamper report is a tamper event whatever the door state says.
        if tamper:
            event = "tamper"
        elif door is not None:
            event = "open" if door == "open" else "close"
        else:
            event = "battery" if battery is not None else "heartbeat"
    if not isinstance(event, str) or event not in _NATIVE_EVENTS:
        raise PayloadError("malformed", f"event must be one of {sorted(_NATIVE_EVENTS)}, "
                                        f"got {short(event)}")
    return _NATIVE_EVENTS[event]


def decode_native(topic: str, payload: bytes) -> DoorEvent:
    """Decode netguard's own JSON.

    ``event`` names what happened; a pure state report may give ``door`` instead, and
    then an opening is detected as a change of state, as for Zigbee2MQTT. Decisive:
    ``sensor``, ``seq``, ``boot``, ``event``, ``door``, ``tamper``; a bad ``battery`` or
    ``ts`` is dropped (see :attr:`DoorEvent.dropped`).
    """
    data = json_object(payload)
    unknown = set(data) - _NATIVE_KEYS
    if unknown:
        raise PayloadError("malformed", f"unknown fields {sorted(unknown)[:10]}")
    if data.get("v", NATIVE_VERSION) != NATIVE_VERSION:
        raise PayloadError("malformed", f"unsupported schema version {short(data.get('v'))}")
    sensor, seq, boot = _identity(topic, data)
    dropped: list[str] = []
    raw_battery = _alias(data, "battery", "battery_percent")
    battery = valid_battery(raw_battery)
    if raw_battery is not None and battery is None:
        dropped.append("battery")
    tamper = data.get("tamper")
    if tamper is not None and not isinstance(tamper, bool):
        raise PayloadError("malformed", "tamper must be true or false")
    door = data.get("door")
    if door is not None and door not in ("open", "closed"):
        raise PayloadError("malformed", f"door must be open or closed, got {short(door)}")
    edge = data.get("event") is not None
    kind = _kind(data, door, tamper, battery)
    if kind is EventKind.BATTERY and battery is None:
        if raw_battery is None:
            raise PayloadError("malformed", "a battery event needs battery")
        kind = EventKind.HEARTBEAT  # the sensor spoke; its reading did not parse
    if kind is EventKind.TAMPER and tamper is None:
        tamper = True
    contact: Contact | None = None
    if kind is EventKind.OPEN:
        contact = "open"
    elif kind is EventKind.CLOSE:
        contact = "closed"
    if door is not None and contact is not None and door != contact:
        raise PayloadError("malformed", f"event {data.get('event')!r} contradicts "
                                        f"door {door!r}")
    if contact is None and door is not None:
        contact = "open" if door == "open" else "closed"
    when = None
    if data.get("ts") is not None:
        try:
            when = device_time(data["ts"])
        except PayloadError:
            dropped.append("ts")
    return DoorEvent(
        format="native", address=sensor, kind=kind, contact=contact,
        battery=battery, tamper=tamper, device_time=when, seq=seq, boot=boot,
        edge=edge and kind is EventKind.OPEN, dropped=tuple(dropped),
    )


NATIVE = register(Codec(
    "native", decode_native, ("netguard/sensors/+/event",),
    "netguard's own JSON: one event per message, with a sequence number"))
