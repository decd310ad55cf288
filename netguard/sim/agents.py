"""Simulated agents as data: ``.snmprec`` records per link kind, vendor and scenario.

Counters move on their own (snmpsim ``numeric`` variation: a rate per second from the
simulator's start). Values a test or the demo flips at runtime (rx power, oper status,
UPS state, ONU status) use ``writecache`` and are reached through named *knobs*; see
:meth:`SimAgent.knob_values` and :class:`netguard.sim.snmpsim.SnmpSim`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from netguard.probes.config import LinkKind

Scenario = Literal["normal", "degraded", "down"]
SCENARIOS: tuple[Scenario, ...] = ("normal", "degraded", "down")

# Vendor presets per kind; the first is the default. Each maps to a netguard profile.
VENDORS: Mapping[LinkKind, Mapping[str, str]] = {
    "fiber": {"standard": "fiber-standard", "huawei": "fiber-huawei"},
    "wireless": {"ubiquiti": "wireless-ubiquiti", "cambium": "wireless-cambium"},
    "private_line": {"standard": "private-line"},
    "cabin_5g": {"ups": "cabin-ups"},
    "pon": {"huawei": "pon-huawei"},
}

COUNTER32, COUNTER64, GAUGE32, INTEGER, OCTETS, TIMETICKS = 65, 70, 66, 2, 4, 67
_HW_OPT = "1.3.6.1.4.1.2011.5.25.31.1.1.3.1"
_HW_ONT_STATUS = "1.3.6.1.4.1.2011.6.128.1.1.2.46.1.15"
_HW_ONT_RX = "1.3.6.1.4.1.2011.6.128.1.1.2.51.1.4"
_UPS = "1.3.6.1.2.1.33.1"
PON_IF_BASE = 4194304000


@dataclass(frozen=True, slots=True)
class SimRecord:
    """One ``.snmprec`` line: OID, type tag, value, optional variation module."""

    oid: str
    tag: int
    value: str | int
    variation: Literal["numeric", "writecache", "error", "delay"] | None = None

    @property
    def sort_key(self) -> tuple[int, ...]:
        """Numeric OID order, as snmpsim needs."""
        return tuple(int(p) for p in self.oid.split("."))

    def line(self, writecache_alias: str = "writecache") -> str:
        """The record as a ``.snmprec`` line."""
        if self.variation == "writecache":
            return f"{self.oid}|{self.tag}:{writecache_alias}|value={self.value}"
        if self.variation in ("numeric", "error", "delay"):
            # ``value`` holds the module's options, e.g. ``rate=100``,
            # ``op=any,status=genError`` (an agent that fails on this object) or
            # ``wait=100000`` (an agent that never answers a request touching it).
            return f"{self.oid}|{self.tag}:{self.variation}|{self.value}"
        return f"{self.oid}|{self.tag}|{self.value}"


@dataclass(frozen=True, slots=True)
class Knob:
    """A named runtime-settable value of an agent.

    ``mode`` ``"value"`` sets every OID to ``round(value / scale)``; ``"online"`` sets the
    first ``value`` OIDs to 1 (online) and the rest to 2 (offline), for ONU status.
    """

    oids: tuple[str, ...]
    tag: int
    scale: float = 1.0
    mode: Literal["value", "online"] = "value"


@dataclass
class SimAgent:
    """A simulated agent: its data records, knobs, and the profile netguard should use.

    Attributes:
        name: Data file name; it is the v1/v2c community and the v3 context name.
        kind: The link kind.
        vendor: The vendor preset.
        scenario: The scenario its data was written for.
    """

    name: str
    kind: LinkKind
    vendor: str
    scenario: Scenario
    records: list[SimRecord] = field(default_factory=list)
    knobs: dict[str, Knob] = field(default_factory=dict)
    scenarios: dict[Scenario, dict[str, float]] = field(default_factory=dict)

    @property
    def profile(self) -> str:
        """The netguard profile for this agent's vendor."""
        return VENDORS[self.kind][self.vendor]

    def snmprec(self, writecache_alias: str = "writecache") -> str:
        """The ``.snmprec`` file content (records sorted by numeric OID)."""
        lines = [r.line(writecache_alias) for r in sorted(self.records, key=lambda r: r.sort_key)]
        return "\n".join(lines) + "\n"

    def write(self, directory: Path, writecache_alias: str = "writecache") -> Path:
        """Write ``<directory>/<name>.snmprec`` and return its path."""
        path = directory / f"{self.name}.snmprec"
        path.write_text(self.snmprec(writecache_alias), encoding="utf-8")
        return path

    def knob_values(self, knob: str, value: float) -> list[tuple[str, int, int]]:
        """The (oid, tag, raw value) SETs that put ``knob`` at ``value``.

        Raises:
            KeyError: The agent has no such knob (the message lists the ones it has).
        """
        try:
            spec = self.knobs[knob]
        except KeyError:
            raise KeyError(f"{self.name} has no knob {knob!r} "
                           f"(one of {', '.join(sorted(self.knobs))})") from None
        if spec.mode == "online":
            return [(oid, spec.tag, 1 if i < value else 2) for i, oid in enumerate(spec.oids)]
        raw = round(value / spec.scale)
        return [(oid, spec.tag, raw) for oid in spec.oids]

    def target(self, target_id: str | None = None, *, address: str,
               **extra: Any) -> dict[str, Any]:
        """A target config mapping (as in netguard YAML) that polls this agent over v2c."""
        data: dict[str, Any] = {
            "id": target_id or self.name, "kind": self.kind, "address": address,
            "profile": self.profile, "snmp": {"version": "2c", "community": self.name},
        }
        data.update(extra)
        return data


class _Builder:
    def __init__(self, agent: SimAgent) -> None:
        self.agent = agent

    def add(self, oid: str, tag: int, value: str | int,
            variation: Literal["numeric", "writecache", "error", "delay"] | None = None) -> None:
        self.agent.records.append(SimRecord(oid, tag, value, variation))

    def knob(self, name: str, tag: int, oids: list[str], scale: float = 1.0,
             mode: Literal["value", "online"] = "value") -> None:
        existing = self.agent.knobs.get(name)
        all_oids = (*existing.oids, *oids) if existing else tuple(oids)
        self.agent.knobs[name] = Knob(all_oids, tag, scale, mode)


def _counter(rate: float, initial: int = 0, bits: int = 64) -> str:
    return f"rate={rate:g},initial={initial},wrap=1" if bits == 32 \
        else f"rate={rate:g},initial={initial}"


def _system(b: _Builder, descr: str) -> None:
    b.add("1.3.6.1.2.1.1.1.0", OCTETS, descr)
    b.add("1.3.6.1.2.1.1.3.0", TIMETICKS, "rate=100", "numeric")
    b.add("1.3.6.1.2.1.1.5.0", OCTETS, b.agent.name)
    b.add("1.3.6.1.6.3.10.2.1.2.0", INTEGER, 1)  # snmpEngineBoots


def _interfaces(b: _Builder, names: list[str], *, speed_mbps: int, bytes_per_s: float,
                errors_per_s: float, oper: int) -> None:
    base, xbase = "1.3.6.1.2.1.2.2.1", "1.3.6.1.2.1.31.1.1.1"
    oper_oids = []
    for i, name in enumerate(names, start=1):
        rate = bytes_per_s / i
        b.add(f"{base}.1.{i}", INTEGER, i)
        b.add(f"{base}.2.{i}", OCTETS, name)
        b.add(f"{base}.5.{i}", GAUGE32, min(speed_mbps * 1_000_000, 4294967295))
        b.add(f"{base}.7.{i}", INTEGER, 1)
        # Only the first interface (the uplink) follows the scenario.
        b.add(f"{base}.8.{i}", INTEGER, oper if i == 1 else 1, "writecache")
        oper_oids.append(f"{base}.8.{i}")
        b.add(f"{base}.10.{i}", COUNTER32, _counter(rate, 1000 * i, 32), "numeric")
        b.add(f"{base}.13.{i}", COUNTER32, _counter(0, 3), "numeric")
        b.add(f"{base}.14.{i}", COUNTER32,
              _counter(errors_per_s if i == 1 else 0, 7, 32), "numeric")
        b.add(f"{base}.16.{i}", COUNTER32, _counter(rate / 2, 500 * i, 32), "numeric")
        b.add(f"{base}.19.{i}", COUNTER32, _counter(0, 1), "numeric")
        b.add(f"{base}.20.{i}", COUNTER32, _counter(0, 0), "numeric")
        b.add(f"{xbase}.1.{i}", OCTETS, name)
        b.add(f"{xbase}.6.{i}", COUNTER64, _counter(rate, 1000 * i), "numeric")
        b.add(f"{xbase}.10.{i}", COUNTER64, _counter(rate / 2, 500 * i), "numeric")
        b.add(f"{xbase}.15.{i}", GAUGE32, speed_mbps)
        b.add(f"{xbase}.18.{i}", OCTETS, f"{b.agent.name} link {i}")
        b.add(f"{xbase}.19.{i}", TIMETICKS, 0)
    b.knob("oper_status", INTEGER, oper_oids[:1])


def build_agent(name: str, kind: LinkKind, *, vendor: str | None = None,
                scenario: Scenario = "normal", interfaces: int = 2, onus: int = 8,
                pon_ports: int = 2) -> SimAgent:
    """Build the data of one simulated agent.

    Args:
        name: Data file name (community / v3 context).
        kind: Link kind.
        vendor: Vendor preset (see :data:`VENDORS`); the kind's first by default.
        scenario: ``normal``, ``degraded`` or ``down`` values at start.
        interfaces: Number of interfaces (the first is the uplink that scenarios touch).
        onus: ONUs per PON port (``pon`` only).
        pon_ports: PON ports (``pon`` only).

    Raises:
        ValueError: Unknown vendor for that kind.
    """
    vendors = VENDORS[kind]
    vendor = vendor or next(iter(vendors))
    if vendor not in vendors:
        raise ValueError(f"unknown {kind} vendor {vendor!r} (one of {', '.join(vendors)})")
    agent = SimAgent(name=name, kind=kind, vendor=vendor, scenario=scenario)
    b = _Builder(agent)
    _BUILDERS[kind](b, scenario, interfaces, onus, pon_ports)
    values = agent.scenarios[scenario]
    # Start from the scenario's values: rewrite writecache defaults for its knobs.
    for knob, value in values.items():
        for oid, _tag, raw in agent.knob_values(knob, value):
            agent.records = [SimRecord(r.oid, r.tag, raw, r.variation) if r.oid == oid else r
                             for r in agent.records]
    return agent


def _fiber(b: _Builder, scenario: Scenario, n: int, _onus: int, _ports: int) -> None:
    a = b.agent
    a.scenarios = {"normal": {"rx_dbm": -8.5, "oper_status": 1},
                   "degraded": {"rx_dbm": -27.4, "oper_status": 1},
                   "down": {"rx_dbm": -40.0, "oper_status": 2}}
    names = [f"GigabitEthernet0/0/{i}" for i in range(1, n + 1)]
    _system(b, f"simulated {a.vendor} fiber switch")
    _interfaces(b, names, speed_mbps=1000, bytes_per_s=12_500_000, errors_per_s=0,
                oper=int(a.scenarios[scenario]["oper_status"]))
    name_col = "1.3.6.1.2.1.47.1.1.1.1.7"
    if a.vendor == "huawei":
        for i, name in enumerate(names, start=1):
            ent = 67108864 + i
            b.add(f"{name_col}.{ent}", OCTETS, name)
            b.add(f"{_HW_OPT}.8.{ent}", INTEGER, -850, "writecache")
            b.add(f"{_HW_OPT}.9.{ent}", INTEGER, -230, "writecache")
            b.knob("rx_dbm", INTEGER, [f"{_HW_OPT}.8.{ent}"], 0.01)
            b.knob("tx_dbm", INTEGER, [f"{_HW_OPT}.9.{ent}"], 0.01)
        return
    sensor = "1.3.6.1.2.1.99.1.1.1"
    for i, name in enumerate(names, start=1):
        for offset, direction, value in ((1, "Rx", -85), (2, "Tx", -23)):
            ent = 1000 + 10 * i + offset
            b.add(f"{name_col}.{ent}", OCTETS, f"{name} {direction} Power")
            b.add(f"{sensor}.1.{ent}", INTEGER, 14)
            b.add(f"{sensor}.2.{ent}", INTEGER, 9)
            b.add(f"{sensor}.3.{ent}", INTEGER, 1)
            b.add(f"{sensor}.4.{ent}", INTEGER, value, "writecache")
            b.add(f"{sensor}.5.{ent}", INTEGER, 1)
            b.knob(f"{direction.lower()}_dbm", INTEGER, [f"{sensor}.4.{ent}"], 0.1)


def _wireless(b: _Builder, scenario: Scenario, n: int, _onus: int, _ports: int) -> None:
    a = b.agent
    a.scenarios = {"normal": {"signal_dbm": -58, "oper_status": 1},
                   "degraded": {"signal_dbm": -80, "oper_status": 1},
                   "down": {"signal_dbm": -96, "oper_status": 2}}
    _system(b, f"simulated {a.vendor} radio")
    _interfaces(b, ["wlan0", *(f"eth{i}" for i in range(n - 1))], speed_mbps=300,
                bytes_per_s=3_000_000, errors_per_s=0,
                oper=int(a.scenarios[scenario]["oper_status"]))
    if a.vendor == "ubiquiti":
        b.add("1.3.6.1.4.1.41112.1.4.5.1.5.1", INTEGER, -58, "writecache")
        b.add("1.3.6.1.4.1.41112.1.4.5.1.8.1", INTEGER, -95, "writecache")
        b.knob("signal_dbm", INTEGER, ["1.3.6.1.4.1.41112.1.4.5.1.5.1"])
        b.knob("noise_dbm", INTEGER, ["1.3.6.1.4.1.41112.1.4.5.1.8.1"])
        return
    b.add("1.3.6.1.4.1.17713.21.1.2.3.0", INTEGER, -58, "writecache")
    b.add("1.3.6.1.4.1.17713.21.1.2.18.0", INTEGER, 30, "writecache")
    b.knob("signal_dbm", INTEGER, ["1.3.6.1.4.1.17713.21.1.2.3.0"])
    b.knob("snr_db", INTEGER, ["1.3.6.1.4.1.17713.21.1.2.18.0"])
    a.scenarios["degraded"]["snr_db"] = 9
    a.scenarios["down"]["snr_db"] = 0
    a.scenarios["normal"]["snr_db"] = 30


def _private_line(b: _Builder, scenario: Scenario, n: int, _onus: int, _ports: int) -> None:
    a = b.agent
    a.scenarios = {"normal": {"oper_status": 1}, "degraded": {"oper_status": 1},
                   "down": {"oper_status": 2}}
    _system(b, "simulated leased-line CPE")
    # Errors are counters: the degraded scenario is written with a high error rate.
    _interfaces(b, ["Serial0/0", *(f"Gi0/{i}" for i in range(n - 1))], speed_mbps=2,
                bytes_per_s=80_000, errors_per_s=5 if scenario == "degraded" else 0,
                oper=int(a.scenarios[scenario]["oper_status"]))
    b.add("1.3.6.1.2.1.10.18.6.1.10.1", INTEGER, 1, "writecache")
    b.knob("dsx1_line_status", INTEGER, ["1.3.6.1.2.1.10.18.6.1.10.1"])


def _cabin(b: _Builder, scenario: Scenario, n: int, _onus: int, _ports: int) -> None:
    a = b.agent
    mains: dict[str, float] = {"battery_status": 2, "output_source": 3, "seconds_on_battery": 0,
             "minutes_remaining": 90, "charge_percent": 100, "input_voltage": 230}
    a.scenarios = {
        "normal": mains,
        "degraded": {**mains, "output_source": 5, "seconds_on_battery": 240,
                     "minutes_remaining": 45, "charge_percent": 80, "input_voltage": 0},
        "down": {**mains, "battery_status": 4, "output_source": 5, "seconds_on_battery": 5400,
                 "minutes_remaining": 1, "charge_percent": 3, "input_voltage": 0},
    }
    _system(b, "simulated 5G cabin controller")
    _interfaces(b, [f"eth{i}" for i in range(n)], speed_mbps=10000, bytes_per_s=50_000_000,
                errors_per_s=0, oper=1)
    for knob, oid, tag, value in (
        ("battery_status", f"{_UPS}.2.1.0", INTEGER, 2),
        ("seconds_on_battery", f"{_UPS}.2.2.0", INTEGER, 0),
        ("minutes_remaining", f"{_UPS}.2.3.0", INTEGER, 90),
        ("charge_percent", f"{_UPS}.2.4.0", INTEGER, 100),
        ("temperature_celsius", f"{_UPS}.2.7.0", INTEGER, 28),
        ("input_voltage", f"{_UPS}.3.3.1.3.1", INTEGER, 230),
        ("output_source", f"{_UPS}.4.1.0", INTEGER, 3),
    ):
        b.add(oid, tag, value, "writecache")
        b.knob(knob, tag, [oid])
    b.add(f"{_UPS}.6.1.0", GAUGE32, 0)


def _pon(b: _Builder, scenario: Scenario, n: int, onus: int, ports: int) -> None:
    a = b.agent
    a.scenarios = {"normal": {"onus_online:0": onus},
                   "degraded": {"onus_online:0": max(0, onus - max(3, onus // 2))},
                   "down": {"onus_online:0": 0}}
    _system(b, "simulated Huawei GPON OLT")
    uplinks = [f"GigabitEthernet0/9/{i}" for i in range(n)]
    _interfaces(b, uplinks, speed_mbps=10000, bytes_per_s=100_000_000, errors_per_s=0, oper=1)
    xbase = "1.3.6.1.2.1.31.1.1.1"
    for p in range(ports):
        ifindex = PON_IF_BASE + 256 * p
        b.add(f"{xbase}.1.{ifindex}", OCTETS, f"GPON 0/1/{p}")
        status, rx = [], []
        for onu in range(onus):
            b.add(f"{_HW_ONT_STATUS}.{ifindex}.{onu}", INTEGER, 1, "writecache")
            b.add(f"{_HW_ONT_RX}.{ifindex}.{onu}", INTEGER, -1850 - 37 * onu, "writecache")
            status.append(f"{_HW_ONT_STATUS}.{ifindex}.{onu}")
            rx.append(f"{_HW_ONT_RX}.{ifindex}.{onu}")
        b.knob(f"onus_online:{p}", INTEGER, status, mode="online")
        b.knob(f"onu_rx_dbm:{p}", INTEGER, rx, 0.01)


_BUILDERS = {"fiber": _fiber, "wireless": _wireless, "private_line": _private_line,
             "cabin_5g": _cabin, "pon": _pon}
