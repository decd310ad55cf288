"""Shelly Gen1 Door/Window (DW, DW2) over MQTT: one reading per topic.

``shellies/<id>/sensor/<reading>`` with a plain-text value, and the last-will
``shellies/<id>/online`` (``true``/``false``). The DW2 is a sleeping battery device: on
each wake-up it publishes every reading below, then sleeps (its last will may fire then;
see ``iot.rules.devices[].sleeping``).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable

from netguard.errors import PayloadError
from netguard.iot.codecs.base import Codec, address, register, text
from netguard.iot.events import DoorEvent, EventKind

_ILLUMINATION = frozenset({"dark", "twilight", "bright", "unknown"})
# The device's own wake-up reasons (``act_reasons``); an unknown one is no error.
_MAX_REASONS = 16


def _float(value: str) -> float | None:
    try:
        number = float(value)
    except ValueError:
        return None
    return number if math.isfinite(number) else None


def _ranged(low: float, high: float) -> Callable[[str], bool]:
    # -1 is the documented "not available" of tilt, lux, vibration and battery; 999 the
    # temperature sensor's error value: both are valid readings of an awake device.
    def check(value: str) -> bool:
        number = _float(value)
        return number is not None and (low <= number <= high or number in (-1, 999))
    return check


def _act_reasons(value: str) -> bool:
    try:
        reasons = json.loads(value)
    except (ValueError, RecursionError):
        return False
    return (isinstance(reasons, list) and len(reasons) <= _MAX_REASONS
            and all(isinstance(r, str) and len(r) <= 32 for r in reasons))


# Readings that only show the device is awake (a heartbeat), with what a valid value
# is; a bad value is dropped and counted, and the message still counts as a heartbeat.
_HEARTBEAT_READINGS: dict[str, Callable[[str], bool]] = {
    "lux": _ranged(0, 2**32),
    "tilt": _ranged(0, 180),
    "temperature": _ranged(-67, 257),  # -55..125 C or -67..257 F
    "illumination": lambda v: v in _ILLUMINATION,
    "error": lambda v: v in ("0", "1"),
    "act_reasons": _act_reasons,
}


def _online(device: str, value: str) -> DoorEvent:
    if value not in ("true", "false"):
        raise PayloadError("malformed", f"online must be true/false, got {value[:40]!r}")
    online = value == "true"
    return DoorEvent(format="shelly", address=device,
                     kind=EventKind.ONLINE if online else EventKind.OFFLINE, online=online)


def _reading(device: str, reading: str, value: str) -> DoorEvent:
    if reading == "state":
        if value == "open":
            return DoorEvent(format="shelly", address=device, kind=EventKind.OPEN,
                             contact="open")
        if value == "close":
            return DoorEvent(format="shelly", address=device, kind=EventKind.CLOSE,
                             contact="closed")
        raise PayloadError("malformed", f"state must be open/close, got {value[:40]!r}")
    if reading == "vibration":
        # Decisive: a vibration report is taken as tamper, so a bad one is refused.
        if value not in ("0", "1", "-1"):
            raise PayloadError("malformed", f"vibration must be 0/1, got {value[:40]!r}")
        if value == "-1":
            return DoorEvent(format="shelly", address=device, kind=EventKind.HEARTBEAT)
        return DoorEvent(format="shelly", address=device,
                         kind=EventKind.TAMPER if value == "1" else EventKind.HEARTBEAT,
                         tamper=value == "1")
    if reading == "battery":
        number = _float(value)
        if number is not None and 0 <= number <= 100:
            return DoorEvent(format="shelly", address=device, kind=EventKind.BATTERY,
                             battery=number)
        dropped = () if number == -1 else ("battery",)
        return DoorEvent(format="shelly", address=device, kind=EventKind.HEARTBEAT,
                         dropped=dropped)
    # A reading this codec does not know only shows that the device is awake.
    check = _HEARTBEAT_READINGS.get(reading)
    dropped = (reading,) if check is not None and not check(value) else ()
    return DoorEvent(format="shelly", address=device, kind=EventKind.HEARTBEAT,
                     dropped=dropped)


def decode_shelly(topic: str, payload: bytes) -> DoorEvent:
    """Decode a Shelly Gen1 Door/Window message.

    ``sensor/state`` (``open``/``close``) is decisive, and so is ``sensor/vibration``
    (``1`` is taken as tamper). ``sensor/battery`` (percent) updates the battery.
    ``lux``, ``illumination`` (dark/twilight/bright), ``tilt``, ``temperature``,
    ``error`` and ``act_reasons`` (a JSON list of wake-up reasons) are heartbeats; a bad
    value of one is dropped and counted. ``shellies/<id>/online`` is availability.
    """
    levels = topic.split("/")
    if len(levels) < 3:
        raise PayloadError("unsupported_topic", f"not a Shelly topic: {topic!r}")
    device = address(levels[1], "Shelly device id")
    value = text(payload, "Shelly")
    if len(levels) == 3 and levels[2] == "online":
        return _online(device, value)
    if len(levels) != 4 or levels[2] != "sensor":
        raise PayloadError("unsupported_topic", f"not a Shelly sensor topic: {topic!r}")
    return _reading(device, levels[3], value)


SHELLY = register(Codec(
    "shelly", decode_shelly, ("shellies/+/sensor/+", "shellies/+/online"),
    "Shelly Gen1 Door/Window 2: sensor readings and the online last will"))
