"""Door-sensor domain values: what a payload means, independent of MQTT and of the store."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Literal

Contact = Literal["open", "closed"]
_SENSOR_ID = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")


class EventKind(StrEnum):
    """What a message reports, first and foremost."""

    OPEN = "open"
    CLOSE = "close"
    HEARTBEAT = "heartbeat"
    TAMPER = "tamper"
    BATTERY = "battery"
    ONLINE = "online"
    OFFLINE = "offline"


class AlertType(StrEnum):
    """The kinds of alert the rules raise."""

    DOOR_OPEN = "door_open"
    OFFLINE = "offline"
    BATTERY_LOW = "battery_low"
    TAMPER = "tamper"


def check_sensor_id(value: str, what: str = "sensor id") -> str:
    """Return ``value`` if it is a valid sensor id or bus address, else raise ValueError."""
    if not _SENSOR_ID.match(value):
        raise ValueError(f"invalid {what} {value!r}: use 1-64 of A-Z a-z 0-9 _ . : -")
    return value


@dataclass(frozen=True, slots=True)
class DoorEvent:
    """One decoded sensor message.

    Attributes:
        format: The payload format it came in (``native``, ``zigbee2mqtt``, ``shelly``).
        address: The sensor's name on the bus (native id, Z2M friendly name, Shelly id).
        kind: The main thing the message reports.
        contact: The door state the message reports, if any.
        battery: Battery charge in percent, if reported.
        tamper: Tamper switch state, if reported.
        online: Availability, if this is an availability message.
        device_time: The sensor's own timestamp, if any (timezone-aware).
        seq: The sensor's sequence number (native format only).
        boot: The sensor's boot id (native format only): ``seq`` restarts per boot.
        edge: The message reports a door opening as such (native ``event: open``), not
            merely an open state; a state report counts as an opening only on change.
    """

    format: str
    address: str
    kind: EventKind
    contact: Contact | None = None
    battery: float | None = None
    tamper: bool | None = None
    online: bool | None = None
    device_time: datetime | None = None
    seq: int | None = None
    boot: str | None = None
    edge: bool = False

    def __post_init__(self) -> None:
        if not self.address:
            raise ValueError("DoorEvent.address must not be empty")
        if self.battery is not None and not 0 <= self.battery <= 100:
            raise ValueError(f"DoorEvent.battery out of range: {self.battery}")
        if self.device_time is not None and self.device_time.tzinfo is None:
            raise ValueError("DoorEvent.device_time must be timezone-aware")
        if self.seq is not None and self.seq < 0:
            raise ValueError("DoorEvent.seq must not be negative")


@dataclass(frozen=True, slots=True)
class RawMessage:
    """One message as received, before decoding (transport-neutral).

    Attributes:
        topic: The MQTT topic.
        payload: The raw bytes.
        received_at: When netguard received it (None: the service's clock at ingest).
        qos: The delivery QoS.
        mid: The MQTT packet id (for acknowledgement and redelivery detection).
        dup: The MQTT DUP flag: the broker may have sent this message before.
        retain: A retained message.
    """

    topic: str
    payload: bytes
    received_at: datetime | None = None
    qos: int = 0
    mid: int | None = None
    dup: bool = False
    retain: bool = False
