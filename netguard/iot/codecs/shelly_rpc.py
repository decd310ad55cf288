"""Shelly Gen2+ (Plus, Pro, Gen3) JSON-RPC notifications over MQTT, and Shelly BLU
Door/Window reports relayed by such a device.

A Gen2+ device with "RPC status notifications over MQTT" on publishes its JSON-RPC 2.0
notification frames on ``<device-id>/events/rpc`` and its availability on
``<device-id>/online``:

* ``NotifyStatus`` / ``NotifyFullStatus``: ``params`` holds ``ts`` (Unix seconds) and
  one object per changed component. ``input:0`` with a boolean ``state`` is the door of
  a reed switch wired to the device's first input: ``true`` (circuit closed, magnet
  near) is closed. ``devicepower:0.battery.percent`` is the battery of a battery device.
  Any other component only shows the device is alive.
* ``NotifyEvent``: ``params.events`` is a list of ``{component, event, ts, data}``. The
  event ``shelly-blu`` is what Shelly's published BLU gateway script
  (``ble-shelly-blu.js``) emits for each BTHome advertisement: ``data.address`` is the
  BLU device's MAC address (the sensor's address), ``data.window`` 1 open / 0 closed,
  ``data.battery`` percent, ``data.rotation`` degrees, ``data.illuminance`` lux.
  Other events (button pushes, script events) are heartbeats of the relaying device.
"""

from __future__ import annotations

from typing import Any

from netguard.errors import PayloadError
from netguard.iot.codecs.base import (
    Codec,
    address,
    epoch_seconds,
    is_number,
    json_object,
    register,
    short,
    text,
    valid_battery,
)
from netguard.iot.events import Contact, DoorEvent, EventKind

BLU_EVENT = "shelly-blu"
_STATUS_METHODS = frozenset({"NotifyStatus", "NotifyFullStatus"})
_BLU_OPTIONAL = ("rotation", "illuminance", "rssi")


def _event(device: str, contact: Contact | None, battery: float | None,
           dropped: list[str], ts: Any) -> DoorEvent:
    if contact is not None:
        kind = EventKind.OPEN if contact == "open" else EventKind.CLOSE
    else:
        kind = EventKind.BATTERY if battery is not None else EventKind.HEARTBEAT
    return DoorEvent(format="shelly_rpc", address=device, kind=kind, contact=contact,
                     battery=battery, device_time=epoch_seconds(ts), dropped=tuple(dropped))


def _status(device: str, params: dict[str, Any]) -> DoorEvent:
    contact: Contact | None = None
    entry = params.get("input:0")
    if isinstance(entry, dict) and "state" in entry:
        state = entry["state"]
        # ``null`` is a button-type input (no state): not a door.
        if state is not None and not isinstance(state, bool):
            raise PayloadError("malformed", f"input:0.state must be true, false or null, "
                                            f"got {short(state)}")
        if state is not None:
            contact = "closed" if state else "open"
    dropped: list[str] = []
    battery = None
    power = params.get("devicepower:0")
    if isinstance(power, dict) and isinstance(power.get("battery"), dict) \
            and "percent" in power["battery"]:
        battery = valid_battery(power["battery"]["percent"])
        if battery is None:
            dropped.append("battery")
    return _event(device, contact, battery, dropped, params.get("ts"))


def _blu(data: Any, ts: Any) -> DoorEvent:
    if not isinstance(data, dict):
        raise PayloadError("malformed", f"{BLU_EVENT} data must be an object")
    mac = data.get("address")
    if not isinstance(mac, str):
        raise PayloadError("malformed", f"{BLU_EVENT} data needs the BLU device's address")
    device = address(mac.lower(), "BLU device address")
    window = data.get("window")
    contact: Contact | None = None
    if window is not None:
        if isinstance(window, bool) or window not in (0, 1):
            raise PayloadError("malformed", f"window must be 0 or 1, got {short(window)}")
        contact = "open" if window == 1 else "closed"
    dropped = [k for k in _BLU_OPTIONAL if data.get(k) is not None and not is_number(data[k])]
    battery = valid_battery(data.get("battery"))
    if data.get("battery") is not None and battery is None:
        dropped.insert(0, "battery")
    return _event(device, contact, battery, dropped, ts)


def _events(device: str, params: dict[str, Any]) -> DoorEvent:
    events = params.get("events")
    if not isinstance(events, list):
        raise PayloadError("malformed", "NotifyEvent params.events must be a list")
    blu = [e for e in events if isinstance(e, dict) and e.get("event") == BLU_EVENT]
    if len(blu) > 1:
        raise PayloadError("malformed", f"{len(blu)} {BLU_EVENT} reports in one frame; "
                                        f"the script emits one per advertisement")
    if blu:
        return _blu(blu[0].get("data"), blu[0].get("ts", params.get("ts")))
    return _event(device, None, None, [], params.get("ts"))


def decode_shelly_rpc(topic: str, payload: bytes) -> DoorEvent:
    """Decode a Shelly Gen2+ notification frame (``<id>/events/rpc``) or availability
    message (``<id>/online``).

    Decisive: ``input:0.state`` and a BLU report's ``window``; a bad ``battery``,
    ``rotation``, ``illuminance`` or ``rssi`` is dropped.
    """
    levels = topic.split("/")
    if len(levels) == 2 and levels[1] == "online":
        value = text(payload, "Shelly")
        if value not in ("true", "false"):
            raise PayloadError("malformed", f"online must be true/false, got {value[:40]!r}")
        online = value == "true"
        return DoorEvent(format="shelly_rpc", address=address(levels[0], "Shelly device id"),
                         kind=EventKind.ONLINE if online else EventKind.OFFLINE,
                         online=online)
    if len(levels) < 3 or levels[-2:] != ["events", "rpc"]:
        raise PayloadError("unsupported_topic", f"not a Shelly RPC event topic: {topic!r}")
    frame = json_object(payload)
    source = frame.get("src")
    if not isinstance(source, str):
        raise PayloadError("malformed", "a notification frame needs src (the device id)")
    device = address(source, "Shelly device id")
    method = frame.get("method")
    params = frame.get("params")
    if not isinstance(params, dict):
        raise PayloadError("malformed", "a notification frame needs params (an object)")
    if method in _STATUS_METHODS:
        return _status(device, params)
    if method == "NotifyEvent":
        return _events(device, params)
    raise PayloadError("malformed", f"method must be NotifyStatus, NotifyFullStatus or "
                                    f"NotifyEvent, got {short(method)}")


SHELLY_RPC = register(Codec(
    "shelly_rpc", decode_shelly_rpc, ("+/events/rpc", "+/online"),
    "Shelly Gen2+ NotifyStatus/NotifyEvent frames, and BLU Door/Window via a gateway"))
