"""Zigbee2MQTT contact sensors (Aqara, Sonoff SNZB-04, Tuya...): device state and
availability messages, in both the 1.x text and the 2.x JSON availability forms."""

from __future__ import annotations

from typing import Any

from netguard.errors import PayloadError
from netguard.iot.codecs.base import (
    Codec,
    address,
    is_number,
    json_object,
    register,
    short,
    valid_battery,
)
from netguard.iot.events import Contact, DoorEvent, EventKind

# Optional readings a contact sensor reports, and what a valid one is. A bad one is
# dropped and counted; other keys (Z2M adds many per model) are ignored.
_NUMBERS = ("linkquality", "voltage", "temperature", "device_temperature")
_BOOLEANS = ("battery_low",)


def _availability(name: str, payload: bytes) -> DoorEvent:
    # 1.x publishes plain text, 2.x a JSON object.
    plain = payload.strip()
    state: Any = (plain.decode() if plain in (b"online", b"offline")
                  else json_object(payload).get("state"))
    if state not in ("online", "offline"):
        raise PayloadError("malformed", f"availability state must be online/offline, "
                                        f"got {short(state)}")
    online = state == "online"
    return DoorEvent(format="zigbee2mqtt", address=name,
                     kind=EventKind.ONLINE if online else EventKind.OFFLINE, online=online)


def _optional(data: dict[str, Any]) -> tuple[float | None, list[str]]:
    dropped = [k for k in _NUMBERS if data.get(k) is not None and not is_number(data[k])]
    dropped += [k for k in _BOOLEANS if data.get(k) is not None
                and not isinstance(data[k], bool)]
    battery = valid_battery(data.get("battery"))
    if data.get("battery") is not None and battery is None:
        dropped.insert(0, "battery")
    return battery, dropped


def decode_zigbee2mqtt(topic: str, payload: bytes) -> DoorEvent:
    """Decode a Zigbee2MQTT device state or availability message.

    ``zigbee2mqtt/<friendly name>`` carries the device state (``contact: true`` means
    closed); ``zigbee2mqtt/<name>/availability`` carries ``{"state": "online"}`` (or the
    legacy plain ``online``/``offline``). Decisive: ``contact`` and ``tamper``; a bad
    ``battery``, ``linkquality``, ``voltage``, ``temperature`` or ``battery_low`` is
    dropped. A report with ``tamper: true`` is a tamper event whatever ``contact`` says
    (the contact still updates the door state).
    """
    base, _, rest = topic.partition("/")
    if not base or not rest:
        raise PayloadError("unsupported_topic", f"not a Zigbee2MQTT device topic: {topic!r}")
    if rest.startswith("bridge/") or rest == "bridge":
        raise PayloadError("unsupported_topic", "Zigbee2MQTT bridge topics are not sensors")
    if rest.endswith("/availability"):
        return _availability(address(rest.removesuffix("/availability"),
                                     "Zigbee2MQTT friendly name"), payload)
    name = address(rest, "Zigbee2MQTT friendly name")
    data = json_object(payload)
    contact_value = data.get("contact")
    if contact_value is not None and not isinstance(contact_value, bool):
        raise PayloadError("malformed", f"contact must be true or false, "
                                        f"got {short(contact_value)}")
    tamper = data.get("tamper")
    if tamper is not None and not isinstance(tamper, bool):
        raise PayloadError("malformed", f"tamper must be true or false, got {short(tamper)}")
    battery, dropped = _optional(data)
    contact: Contact | None = None
    if contact_value is not None:
        # Zigbee2MQTT: contact true = magnet near = door closed.
        contact = "closed" if contact_value else "open"
    if tamper:
        kind = EventKind.TAMPER
    elif contact is not None:
        kind = EventKind.CLOSE if contact == "closed" else EventKind.OPEN
    elif battery is not None:
        kind = EventKind.BATTERY
    else:
        kind = EventKind.HEARTBEAT
    return DoorEvent(format="zigbee2mqtt", address=name, kind=kind, contact=contact,
                     battery=battery, tamper=tamper, dropped=tuple(dropped))


ZIGBEE2MQTT = register(Codec(
    "zigbee2mqtt", decode_zigbee2mqtt, ("zigbee2mqtt/+", "zigbee2mqtt/+/availability"),
    "Zigbee2MQTT contact sensors: device state and availability"))
