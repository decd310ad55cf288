"""What one poll of a target found: frozen readings and the target's assessed status.

These are the only probe types other areas read (the metrics collector, the daemon, the
CLI). They never hold pysnmp types.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from types import MappingProxyType
from typing import Any, Literal

from netguard.faults import FaultEvent

TargetState = Literal["up", "degraded", "down", "unreachable"]
TARGET_STATES: tuple[TargetState, ...] = ("up", "degraded", "down", "unreachable")

# ifOperStatus values (RFC 2863) and their names for humans and JSON.
IF_STATUS_NAMES = {1: "up", 2: "down", 3: "testing", 4: "unknown", 5: "dormant",
                   6: "notPresent", 7: "lowerLayerDown"}


def if_status_name(value: int | None) -> str | None:
    """``1`` -> ``"up"``; unknown codes stay visible as ``"code-9"``."""
    if value is None:
        return None
    return IF_STATUS_NAMES.get(value, f"code-{value}")


@dataclass(frozen=True, slots=True)
class InterfaceReading:
    """One interface's counters and, once two comparable samples exist, its rates.

    Counters are the raw values the agent sent (64-bit HC counters when it has them).
    Rates are ``None`` when there is no valid previous sample (first poll, reboot,
    counter discontinuity).
    """

    index: int
    name: str
    alias: str = ""
    admin_status: int | None = None
    oper_status: int | None = None
    in_octets: int | None = None
    out_octets: int | None = None
    in_errors: int | None = None
    out_errors: int | None = None
    in_discards: int | None = None
    out_discards: int | None = None
    speed_bps: int | None = None
    counter_bits: int = 64
    discontinuity_time: int | None = None
    in_bps: float | None = None
    out_bps: float | None = None
    utilisation: float | None = None
    in_error_rate: float | None = None
    out_error_rate: float | None = None
    in_discard_rate: float | None = None
    out_discard_rate: float | None = None

    def to_json(self) -> dict[str, Any]:
        """The interface as ``netguard poll --json`` prints it."""
        return {
            "index": self.index,
            "name": self.name,
            "alias": self.alias,
            "admin_status": if_status_name(self.admin_status),
            "oper_status": if_status_name(self.oper_status),
            "in_octets": self.in_octets,
            "out_octets": self.out_octets,
            "in_errors": self.in_errors,
            "out_errors": self.out_errors,
            "in_discards": self.in_discards,
            "out_discards": self.out_discards,
            "speed_bps": self.speed_bps,
            "in_bps": self.in_bps,
            "out_bps": self.out_bps,
            "utilisation_ratio": self.utilisation,
            "in_error_rate": self.in_error_rate,
            "out_error_rate": self.out_error_rate,
            "in_discard_rate": self.in_discard_rate,
            "out_discard_rate": self.out_discard_rate,
        }


@dataclass(frozen=True, slots=True)
class OpticalReading:
    """Optical transceiver power of one sensor or port, in dBm."""

    sensor: str
    rx_dbm: float | None = None
    tx_dbm: float | None = None

    def to_json(self) -> dict[str, Any]:
        """As printed by ``netguard poll --json``."""
        return {"sensor": self.sensor, "rx_dbm": self.rx_dbm, "tx_dbm": self.tx_dbm}


@dataclass(frozen=True, slots=True)
class RadioReading:
    """Radio link quality of a wireless target."""

    signal_dbm: float | None = None
    noise_dbm: float | None = None
    snr_db: float | None = None

    def to_json(self) -> dict[str, Any]:
        """As printed by ``netguard poll --json``."""
        return {"signal_dbm": self.signal_dbm, "noise_dbm": self.noise_dbm,
                "snr_db": self.snr_db}


# upsBatteryStatus (UPS-MIB) codes and their names, for JSON and the metrics' state set.
UPS_BATTERY_STATUS: Mapping[int, str] = MappingProxyType(
    {1: "unknown", 2: "normal", 3: "low", 4: "depleted"})


@dataclass(frozen=True, slots=True)
class UpsReading:
    """Cabin power from UPS-MIB."""

    battery_status: int | None = None
    charge_percent: float | None = None
    minutes_remaining: float | None = None
    seconds_on_battery: float | None = None
    input_voltage: float | None = None
    temperature_celsius: float | None = None
    on_battery: bool | None = None

    def to_json(self) -> dict[str, Any]:
        """As printed by ``netguard poll --json``."""
        status = self.battery_status
        return {
            "battery_status": None if status is None
            else UPS_BATTERY_STATUS.get(status, f"code-{status}"),
            "charge_percent": self.charge_percent,
            "minutes_remaining": self.minutes_remaining,
            "seconds_on_battery": self.seconds_on_battery,
            "input_voltage": self.input_voltage,
            "temperature_celsius": self.temperature_celsius,
            "on_battery": self.on_battery,
        }


@dataclass(frozen=True, slots=True)
class OnuReading:
    """One ONU behind a PON port."""

    onu: str
    online: bool
    rx_dbm: float | None = None

    def to_json(self) -> dict[str, Any]:
        """As printed by ``netguard poll --json``."""
        return {"onu": self.onu, "online": self.online, "rx_dbm": self.rx_dbm}


@dataclass(frozen=True, slots=True)
class PonPortReading:
    """ONUs online and registered on one PON port, with each ONU's rx power."""

    port: str
    onus_online: int
    onus_total: int
    onus: tuple[OnuReading, ...] = ()

    @property
    def onu_rx_dbm(self) -> dict[str, float | None]:
        """Rx power per ONU id."""
        return {o.onu: o.rx_dbm for o in self.onus}

    def to_json(self) -> dict[str, Any]:
        """As printed by ``netguard poll --json``."""
        return {"port": self.port, "onus_online": self.onus_online,
                "onus_total": self.onus_total, "onu_rx_dbm": self.onu_rx_dbm,
                "onus": [o.to_json() for o in self.onus]}


ExportType = Literal["gauge", "counter"]


@dataclass(frozen=True, slots=True)
class ExportFamily:
    """A profile metric that is exported as its own Prometheus family.

    One object per family name, shared by every profile and sample that carries it.

    Attributes:
        name: The family name (a counter's ends in ``_total``).
        type: ``gauge`` or ``counter``.
        help: The HELP text.
    """

    name: str
    type: ExportType
    help: str


# A profile metric's decoded value, beside the family it is exported as.
ExportedValue = tuple[ExportFamily, float]


@dataclass(frozen=True, slots=True)
class LinkSample:
    """The decoded readings of one successful poll, before assessment.

    ``problems`` lists values that could not be decoded (wrong type, out of range);
    the poll still returns everything else.
    """

    sys_uptime_ticks: int | None = None
    engine_boots: int | None = None
    sys_name: str | None = None
    sys_descr: str | None = None
    interfaces: tuple[InterfaceReading, ...] = ()
    optical: tuple[OpticalReading, ...] = ()
    radio: RadioReading | None = None
    ups: UpsReading | None = None
    pon: tuple[PonPortReading, ...] = ()
    extra: tuple[tuple[str, float | str | None], ...] = ()
    exported: tuple[ExportedValue, ...] = ()
    problems: tuple[str, ...] = ()
    # Values the agent sent that could not be decoded (text where a number belongs).
    decode_errors: int = 0


@dataclass(frozen=True, slots=True)
class TargetStatus:
    """The latest assessed status of one target (an immutable snapshot)."""

    target: str
    kind: str
    site: str | None = None
    upstream: str | None = None
    reachable: bool = False
    state: TargetState = "unreachable"
    reasons: tuple[str, ...] = ()
    sys_uptime_seconds: float | None = None
    poll_duration_seconds: float | None = None
    last_poll_at: datetime | None = None
    last_success_at: datetime | None = None
    flaps: int = 0
    suppressed_by: str | None = None
    interfaces: tuple[InterfaceReading, ...] = ()
    optical: tuple[OpticalReading, ...] = ()
    radio: RadioReading | None = None
    ups: UpsReading | None = None
    pon: tuple[PonPortReading, ...] = ()
    extra: tuple[tuple[str, float | str | None], ...] = ()
    # The profile's exported metrics (``type: gauge`` or ``counter``) read by the last poll.
    exported: tuple[ExportedValue, ...] = ()
    # The target's ``labels:``, sorted by name (exported on netguard_target_info).
    labels: tuple[tuple[str, str], ...] = ()
    # Undecodable values since the service started (see LinkSample.decode_errors).
    decode_errors: int = 0
    sys_name: str | None = None
    problems: tuple[str, ...] = ()
    polls: int = 0
    failures: int = 0
    active_faults: tuple[str, ...] = field(default=())
    # Walk requests (GETBULK/GETNEXT) that got no answer in time, since the session opened.
    walk_timeouts: int = 0
    # The optical receive thresholds this target is assessed against, in dBm, by level
    # (``low``, ``low_clear``, ``down``): exported so that alert rules compare against them.
    rx_thresholds_dbm: tuple[tuple[str, float], ...] = ()

    @property
    def up(self) -> bool:
        """True when the agent answered and nothing is degraded or down."""
        return self.state == "up"

    def to_json(self) -> dict[str, Any]:
        """The fields ``netguard poll --json`` prints (issue 2), plus a few more."""
        return {
            "target": self.target,
            "kind": self.kind,
            "site": self.site,
            "upstream": self.upstream,
            "reachable": self.reachable,
            "state": self.state,
            "reasons": list(self.reasons),
            "suppressed_by": self.suppressed_by,
            "sys_name": self.sys_name,
            "sys_uptime_seconds": self.sys_uptime_seconds,
            "poll_duration_seconds": self.poll_duration_seconds,
            "last_poll_at": self.last_poll_at.isoformat() if self.last_poll_at else None,
            "last_success_at": self.last_success_at.isoformat()
            if self.last_success_at else None,
            "flaps": self.flaps,
            "active_faults": list(self.active_faults),
            "problems": list(self.problems),
            "interfaces": [i.to_json() for i in self.interfaces],
            "optical": [o.to_json() for o in self.optical],
            "radio": self.radio.to_json() if self.radio else None,
            "ups": self.ups.to_json() if self.ups else None,
            "pon": [p.to_json() for p in self.pon],
            "extra": dict(self.extra),
            "exported": {family.name: value for family, value in self.exported},
            "labels": dict(self.labels),
        }


@dataclass(frozen=True, slots=True)
class PollOutcome:
    """What one poll produced: the new status and the fault events it caused."""

    status: TargetStatus
    events: tuple[FaultEvent, ...] = ()
