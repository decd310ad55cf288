"""Plain frozen dataclasses shaped like the probes' status snapshot, for metrics tests."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import UTC, datetime

from netguard.daemon.metrics import MetricsSnapshot


@dataclass(frozen=True)
class Itf:
    name: str
    oper_status: int | None = 1
    speed_bps: int | None = 1_000_000_000
    in_octets: int | None = 1000
    out_octets: int | None = 2000
    utilisation: float | None = 0.5
    in_errors: int | None = 1
    out_errors: int | None = 2
    in_discards: int | None = 3
    out_discards: int | None = 4


@dataclass(frozen=True)
class Optical:
    sensor: str
    rx_dbm: float | None = -12.5
    tx_dbm: float | None = 2.0


@dataclass(frozen=True)
class Radio:
    signal_dbm: float | None = -61.0
    noise_dbm: float | None = -95.0
    snr_db: float | None = 34.0


@dataclass(frozen=True)
class Ups:
    battery_status: int | None = 2
    charge_percent: float | None = 95.0
    minutes_remaining: float | None = 42.0
    seconds_on_battery: float | None = 0.0
    on_battery: bool | None = False
    input_voltage: float | None = 230.0
    temperature_celsius: float | None = 28.5


@dataclass(frozen=True)
class Onu:
    onu: str
    rx_dbm: float | None = -20.0


@dataclass(frozen=True)
class PonPort:
    port: str
    onus_online: int = 2
    onus_total: int = 2
    onus: tuple[Onu, ...] = ()


@dataclass(frozen=True)
class Status:
    target: str = "t"
    kind: str = "private_line"
    site: str | None = None
    state: str = "up"
    reachable: bool = True
    poll_duration_seconds: float | None = 0.012
    last_success_at: datetime | None = datetime(2026, 1, 1, tzinfo=UTC)
    interfaces: tuple[Itf, ...] = ()
    optical: tuple[Optical, ...] = ()
    radio: Radio | None = None
    ups: Ups | None = None
    pon: tuple[PonPort, ...] = field(default_factory=tuple)


@dataclass(frozen=True)
class Counts:
    open: dict[tuple[str, str], int] = field(default_factory=dict)
    overdue: dict[tuple[str, str], int] = field(default_factory=dict)


KINDS = ("fiber", "wireless", "private_line", "cabin_5g", "pon")


def status_for(kind: str, i: int = 0, site: str | None = None) -> Status:
    """A realistic status of one target of ``kind``."""
    itfs = (Itf(f"ge-0/0/{i % 4}"), Itf("uplink"))
    base = Status(target=f"{kind}-{i:05d}", kind=kind, site=site, interfaces=itfs[:1])
    if kind == "fiber":
        return replace(base, interfaces=itfs, optical=(Optical("xe-1"), Optical("xe-2")))
    if kind == "wireless":
        return replace(base, radio=Radio())
    if kind == "cabin_5g":
        return replace(base, ups=Ups())
    if kind == "pon":
        onus = tuple(Onu(str(n)) for n in range(4))
        return replace(base, pon=(PonPort("0/1/0", 4, 4, onus),
                                  PonPort("0/1/1", 3, 4, onus[:3])))
    return replace(base, interfaces=itfs)


def estate(n: int) -> MetricsSnapshot:
    """A snapshot of ``n`` targets spread over every kind and 50 sites."""
    targets = {}
    for i in range(n):
        status = status_for(KINDS[i % len(KINDS)], i, f"site-{i % 50}")
        targets[status.target] = status
    return MetricsSnapshot(targets=targets)
