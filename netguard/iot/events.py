"""Door-sensor domain values: what a payload means, independent of MQTT and of the store."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Literal

from netguard.names import check_name

Contact = Literal["open", "closed"]
# The stored columns are signed 64-bit (BIGINT): a larger sequence number would make the
# insert fail, so the codec refuses it instead.
SEQ_MAX = 2**63 - 1
BOOT_MAX = 64


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
    """Return ``value`` if it is a valid sensor id or bus address (the pattern of
    :mod:`netguard.names`), else raise ValueError."""
    return check_name(value, what)


def native_identity(address: str, boot: str | None, seq: int) -> str:
    """The dedup identity of a native event: unambiguous for any address and boot.

    Each variable part is length-prefixed, so sensor ``a:b`` and sensor ``a`` with a boot
    id starting ``b:`` can never share an identity (a ``:``-join made them collide).
    """
    boot = boot or ""
    return f"n:{len(address)}:{address}:{len(boot)}:{boot}:{seq}"


@dataclass(frozen=True, slots=True)
class DoorEvent:
    """One decoded sensor message.

    Attributes:
        format: The codec it came through (a registered name: ``native``, ``zigbee2mqtt``,
            ``shelly``, ``shelly_rpc``).
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
        dropped: Optional fields the codec dropped as invalid (a battery of ``"full"``),
            by name; the message was accepted on its valid decisive field, and the raw
            payload keeps them.
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
    dropped: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not self.address:
            raise ValueError("DoorEvent.address must not be empty")
        if self.battery is not None and not 0 <= self.battery <= 100:
            raise ValueError(f"DoorEvent.battery out of range: {self.battery}")
        if self.device_time is not None and self.device_time.tzinfo is None:
            raise ValueError("DoorEvent.device_time must be timezone-aware")
        if self.seq is not None and not 0 <= self.seq <= SEQ_MAX:
            raise ValueError(f"DoorEvent.seq out of range 0..2^63-1: {self.seq}")
        if self.boot is not None and not (0 < len(self.boot) <= BOOT_MAX
                                          and self.boot.isprintable()):
            raise ValueError("DoorEvent.boot must be 1-64 printable characters")


@dataclass(frozen=True, slots=True)
class RawMessage:
    """One message as received, before decoding (transport-neutral).

    Attributes:
        topic: The MQTT topic.
        payload: The raw bytes.
        received_at: When netguard first received it (None: the service's clock at
            ingest). A redelivery after a failed commit keeps the first receipt time.
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
