"""Realistic probe statuses built from the probes' own frozen types (no SNMP needed)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

from netguard.metrics import MetricsSnapshot
from netguard.probes.state import (
    InterfaceReading,
    OnuReading,
    OpticalReading,
    PonPortReading,
    RadioReading,
    TargetStatus,
    UpsReading,
)

KINDS = ("fiber", "wireless", "private_line", "cabin_5g", "pon")
LAST_SUCCESS = datetime(2026, 1, 1, tzinfo=UTC)


def interface(index: int, name: str) -> InterfaceReading:
    """An up gigabit interface with moving counters and rates."""
    return InterfaceReading(
        index=index, name=name, admin_status=1, oper_status=1, in_octets=1000,
        out_octets=2000, in_errors=1, out_errors=2, in_discards=3, out_discards=4,
        speed_bps=1_000_000_000, in_bps=1e6, out_bps=2e6, utilisation=0.5)


def ups(**changes: object) -> UpsReading:
    """A cabin UPS on mains, unless changed."""
    base = UpsReading(battery_status=2, charge_percent=95.0, minutes_remaining=42.0,
                      seconds_on_battery=0.0, input_voltage=230.0, temperature_celsius=28.5,
                      on_battery=False)
    return replace(base, **changes)  # type: ignore[arg-type]


def status_for(kind: str, i: int = 0, site: str | None = None, **changes: object
               ) -> TargetStatus:
    """A realistic status of one healthy target of ``kind``."""
    itfs = (interface(1, f"ge-0/0/{i % 4}"), interface(2, "uplink"))
    base = TargetStatus(target=f"{kind}-{i:05d}", kind=kind, site=site, reachable=True,
                        state="up", poll_duration_seconds=0.012, last_success_at=LAST_SUCCESS,
                        interfaces=itfs[:1])
    if kind == "fiber":
        base = replace(base, interfaces=itfs, optical=(
            OpticalReading("xe-1", rx_dbm=-12.5, tx_dbm=2.0),
            OpticalReading("xe-2", rx_dbm=-13.0, tx_dbm=2.1)),
            rx_thresholds_dbm=(("low", -25.0), ("low_clear", -24.0), ("down", -30.0)),
            walk_timeouts=2)
    elif kind == "wireless":
        base = replace(base, radio=RadioReading(signal_dbm=-61.0, noise_dbm=-95.0, snr_db=34.0))
    elif kind == "cabin_5g":
        base = replace(base, ups=ups())
    elif kind == "pon":
        onus = tuple(OnuReading(str(n), online=True, rx_dbm=-20.0) for n in range(4))
        base = replace(base, pon=(PonPortReading("0/1/0", 4, 4, onus),
                                  PonPortReading("0/1/1", 3, 4, onus[:3])))
    else:
        base = replace(base, interfaces=itfs)
    return replace(base, **changes)  # type: ignore[arg-type]


def estate(n: int) -> MetricsSnapshot:
    """A snapshot of ``n`` targets spread over every kind and 50 sites."""
    targets = {}
    for i in range(n):
        status = status_for(KINDS[i % len(KINDS)], i, f"site-{i % 50}")
        targets[status.target] = status
    return MetricsSnapshot(targets=targets)
