"""Pure decoders: (topic, payload bytes) -> :class:`DoorEvent`, or :class:`PayloadError`.

No I/O here; every function is tested byte for byte. Reasons carried by PayloadError:
``oversized``, ``malformed``, ``unsupported_topic`` and ``topic_mismatch``
(``unknown_sensor`` is decided later, against the registry).
"""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime
from typing import Any

from netguard.errors import PayloadError
from netguard.iot.events import (
    BOOT_MAX,
    SEQ_MAX,
    Contact,
    DoorEvent,
    EventKind,
    check_sensor_id,
)

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


def decode(fmt: str, topic: str, payload: bytes, *, max_bytes: int = 4096) -> DoorEvent:
    """Decode one message in the given format.

    Args:
        fmt: ``native``, ``zigbee2mqtt`` or ``shelly``.
        topic: The MQTT topic it arrived on.
        payload: The raw payload.
        max_bytes: Larger payloads are refused as ``oversized`` before parsing.

    Raises:
        PayloadError: The message cannot be decoded; ``reason`` says why.
    """
    if len(payload) > max_bytes:
        raise PayloadError("oversized", f"payload of {len(payload)} bytes exceeds {max_bytes}")
    if fmt == "native":
        return decode_native(topic, payload)
    if fmt == "zigbee2mqtt":
        return decode_zigbee2mqtt(topic, payload)
    if fmt == "shelly":
        return decode_shelly(topic, payload)
    raise PayloadError("unsupported_topic", f"unknown payload format {fmt!r}")


def _short(value: Any) -> str:
    """A bounded repr for error details (a 4,000-digit number must not fill the log)."""
    text = repr(value)
    return text if len(text) <= 60 else f"{text[:40]}... ({len(text)} characters)"


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a number")


def _json_object(payload: bytes) -> dict[str, Any]:
    try:
        data = json.loads(payload.decode("utf-8"), parse_constant=_reject_constant)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise PayloadError("malformed", f"not UTF-8 JSON: {exc}") from None
    if not isinstance(data, dict):
        raise PayloadError("malformed", f"expected a JSON object, got {type(data).__name__}")
    return data


def _number(value: Any, field: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise PayloadError("malformed", f"{field} must be a number, got {value!r}")
    return float(value)


def _battery(value: Any) -> float:
    pct = _number(value, "battery")
    if not 0 <= pct <= 100:
        raise PayloadError("malformed", f"battery must be 0-100, got {value!r}")
    return pct


def _address(value: str, what: str) -> str:
    try:
        return check_sensor_id(value, what)
    except ValueError as exc:
        raise PayloadError("malformed", str(exc)) from None


def _device_time(value: Any) -> datetime:
    if isinstance(value, int) and not isinstance(value, bool):
        try:
            return datetime.fromtimestamp(value / 1000, UTC)
        except (OverflowError, OSError, ValueError) as exc:
            raise PayloadError("malformed", f"ts out of range: {_short(value)}") from exc
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            raise PayloadError("malformed", f"ts is not ISO 8601: {_short(value)}") from None
        if parsed.tzinfo is None:
            raise PayloadError("malformed", f"ts needs a UTC offset: {_short(value)}")
        try:
            return parsed.astimezone(UTC)
        except OverflowError:  # e.g. 9999-12-31T23:00-05:00 is past datetime.max in UTC
            raise PayloadError("malformed", f"ts out of range: {_short(value)}") from None
    raise PayloadError("malformed",
                       f"ts must be epoch milliseconds or ISO 8601, got {_short(value)}")


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


def decode_native(topic: str, payload: bytes) -> DoorEvent:  # noqa: PLR0915  (one check per field)
    """Decode netguard's own JSON (schema in docs/iot.md).

    ``event`` names what happened; a pure state report may give ``door`` instead, and
    then an opening is detected as a change of state, as for Zigbee2MQTT.
    """
    data = _json_object(payload)
    unknown = set(data) - _NATIVE_KEYS
    if unknown:
        raise PayloadError("malformed", f"unknown fields {sorted(unknown)}")
    if data.get("v", NATIVE_VERSION) != NATIVE_VERSION:
        raise PayloadError("malformed", f"unsupported schema version {data.get('v')!r}")
    sensor = _alias(data, "sensor", "sensor_id")
    if not isinstance(sensor, str):
        raise PayloadError("malformed", "sensor must be a string")
    sensor = _address(sensor, "sensor id")
    on_topic = native_topic_sensor(topic)
    if on_topic is not None and on_topic != sensor:
        raise PayloadError("topic_mismatch",
                           f"sensor {sensor!r} published on the topic of {on_topic!r}")
    seq = data.get("seq")
    if isinstance(seq, bool) or not isinstance(seq, int) or not 0 <= seq <= SEQ_MAX:
        raise PayloadError("malformed",
                           f"seq must be an integer from 0 to 2^63-1, got {_short(seq)}")
    boot = data.get("boot")
    # isprintable(): no NUL (PostgreSQL text refuses it), no control characters, no lone
    # surrogates (not encodable as UTF-8).
    if boot is not None and (not isinstance(boot, str) or not 0 < len(boot) <= BOOT_MAX
                             or not boot.isprintable()):
        raise PayloadError("malformed", "boot must be a string of 1-64 printable characters")
    raw_battery = _alias(data, "battery", "battery_percent")
    battery = _battery(raw_battery) if raw_battery is not None else None
    tamper = data.get("tamper")
    if tamper is not None and not isinstance(tamper, bool):
        raise PayloadError("malformed", "tamper must be true or false")
    door = data.get("door")
    if door is not None and door not in ("open", "closed"):
        raise PayloadError("malformed", f"door must be open or closed, got {door!r}")
    event = data.get("event")
    edge = event is not None
    if event is None:
        if door is not None:
            event = "open" if door == "open" else "close"
        elif tamper:
            event = "tamper"
        else:
            event = "battery" if battery is not None else "heartbeat"
    if not isinstance(event, str) or event not in _NATIVE_EVENTS:
        raise PayloadError("malformed", f"event must be one of {sorted(_NATIVE_EVENTS)}, "
                                        f"got {event!r}")
    kind = _NATIVE_EVENTS[event]
    if kind is EventKind.BATTERY and battery is None:
        raise PayloadError("malformed", "a battery event needs battery")
    if kind is EventKind.TAMPER and tamper is None:
        tamper = True
    contact: Contact | None = None
    if kind is EventKind.OPEN:
        contact = "open"
    elif kind is EventKind.CLOSE:
        contact = "closed"
    if door is not None and contact is not None and door != contact:
        raise PayloadError("malformed", f"event {event!r} contradicts door {door!r}")
    if contact is None and door is not None:
        contact = "open" if door == "open" else "closed"
    return DoorEvent(
        format="native", address=sensor, kind=kind, contact=contact,
        battery=battery, tamper=tamper,
        device_time=_device_time(data["ts"]) if data.get("ts") is not None else None,
        seq=seq, boot=boot, edge=edge and kind is EventKind.OPEN,
    )


def decode_zigbee2mqtt(topic: str, payload: bytes) -> DoorEvent:
    """Decode a Zigbee2MQTT device state or availability message.

    ``zigbee2mqtt/<friendly name>`` carries the device state (``contact: true`` means
    closed); ``zigbee2mqtt/<name>/availability`` carries ``{"state": "online"}`` (or the
    legacy plain ``online``/``offline``).
    """
    base, _, rest = topic.partition("/")
    if not base or not rest:
        raise PayloadError("unsupported_topic", f"not a Zigbee2MQTT device topic: {topic!r}")
    if rest.startswith("bridge/") or rest == "bridge":
        raise PayloadError("unsupported_topic", "Zigbee2MQTT bridge topics are not sensors")
    if rest.endswith("/availability"):
        name = _address(rest.removesuffix("/availability"), "Zigbee2MQTT friendly name")
        text = payload.strip()
        state: Any
        if text in (b"online", b"offline"):
            state = text.decode()
        else:
            state = _json_object(payload).get("state")
        if state not in ("online", "offline"):
            raise PayloadError("malformed", f"availability state must be online/offline, "
                                            f"got {state!r}")
        online = state == "online"
        return DoorEvent(format="zigbee2mqtt", address=name,
                         kind=EventKind.ONLINE if online else EventKind.OFFLINE, online=online)
    name = _address(rest, "Zigbee2MQTT friendly name")
    data = _json_object(payload)
    contact_value = data.get("contact")
    if contact_value is not None and not isinstance(contact_value, bool):
        raise PayloadError("malformed", f"contact must be true or false, got {contact_value!r}")
    tamper = data.get("tamper")
    if tamper is not None and not isinstance(tamper, bool):
        raise PayloadError("malformed", f"tamper must be true or false, got {tamper!r}")
    battery = _battery(data["battery"]) if data.get("battery") is not None else None
    if contact_value is not None:
        # Zigbee2MQTT: contact true = magnet near = door closed.
        kind = EventKind.CLOSE if contact_value else EventKind.OPEN
    elif tamper:
        kind = EventKind.TAMPER
    elif battery is not None:
        kind = EventKind.BATTERY
    else:
        kind = EventKind.HEARTBEAT
    contact: Contact | None = None
    if contact_value is not None:
        contact = "closed" if contact_value else "open"
    return DoorEvent(format="zigbee2mqtt", address=name, kind=kind, contact=contact,
                     battery=battery, tamper=tamper)


def decode_shelly(topic: str, payload: bytes) -> DoorEvent:
    """Decode a Shelly Door/Window 2 (Gen1 MQTT) message.

    Topics: ``shellies/<id>/sensor/state`` (``open``/``close``), ``.../sensor/battery``
    (percent), ``.../sensor/vibration`` (``1`` is taken as tamper), other ``sensor/*``
    readings (heartbeat), and ``shellies/<id>/online`` (``true``/``false``).
    """
    levels = topic.split("/")
    if len(levels) < 3:
        raise PayloadError("unsupported_topic", f"not a Shelly topic: {topic!r}")
    device = _address(levels[1], "Shelly device id")
    try:
        text = payload.decode("utf-8").strip()
    except UnicodeDecodeError:
        raise PayloadError("malformed", "Shelly payload is not UTF-8") from None
    if len(levels) == 3 and levels[2] == "online":
        if text not in ("true", "false"):
            raise PayloadError("malformed", f"online must be true/false, got {text[:40]!r}")
        online = text == "true"
        return DoorEvent(format="shelly", address=device,
                         kind=EventKind.ONLINE if online else EventKind.OFFLINE, online=online)
    if len(levels) != 4 or levels[2] != "sensor":
        raise PayloadError("unsupported_topic", f"not a Shelly sensor topic: {topic!r}")
    reading = levels[3]
    if reading == "state":
        if text == "open":
            return DoorEvent(format="shelly", address=device, kind=EventKind.OPEN,
                             contact="open")
        if text == "close":
            return DoorEvent(format="shelly", address=device, kind=EventKind.CLOSE,
                             contact="closed")
        raise PayloadError("malformed", f"state must be open/close, got {text[:40]!r}")
    try:
        value = float(text)
    except ValueError:
        raise PayloadError("malformed", f"{reading} must be a number, got {text[:40]!r}") from None
    if not math.isfinite(value):
        raise PayloadError("malformed", f"{reading} must be finite")
    if reading == "battery":
        return DoorEvent(format="shelly", address=device, kind=EventKind.BATTERY,
                         battery=_battery(value))
    if reading == "vibration":
        return DoorEvent(format="shelly", address=device,
                         kind=EventKind.TAMPER if value else EventKind.HEARTBEAT,
                         tamper=bool(value))
    return DoorEvent(format="shelly", address=device, kind=EventKind.HEARTBEAT)


def topic_matches(topic_filter: str, topic: str) -> bool:
    """MQTT topic-filter matching (``+`` one level, ``#`` the rest); ``$share/g/`` ignored."""
    if topic_filter.startswith("$share/"):
        topic_filter = topic_filter.split("/", 2)[2]
    f_levels = topic_filter.split("/")
    t_levels = topic.split("/")
    for i, level in enumerate(f_levels):
        if level == "#":
            return True
        if i >= len(t_levels):
            return False
        if level not in ("+", t_levels[i]):
            return False
    return len(f_levels) == len(t_levels)
