"""Turn raw SNMP values (already plain Python) into a :class:`LinkSample`. No I/O.

Inputs are keyed by metric name: scalars map to one value, columns map a row index
(tuple of ints) to a value. A value is ``int`` (INTEGER, Counter, Gauge, TimeTicks),
``bytes`` (OCTET STRING), ``str`` (OID, IpAddress) or ``None`` (absent: noSuchObject,
noSuchInstance). A value of the wrong type is not a crash: it becomes a problem line
such as ``ups_charge_percent: expected a number, got text 'abc'`` and is left out.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import cast

from netguard.probes.profiles import Metric, Profile
from netguard.probes.state import (
    ExportedValue,
    InterfaceReading,
    LinkSample,
    OnuReading,
    OpticalReading,
    PonPortReading,
    RadioReading,
    UpsReading,
)

RawValue = int | bytes | str | None
Index = tuple[int, ...]
Columns = Mapping[str, Mapping[Index, RawValue]]

_ENT_SENSOR_DBM = 14  # Cisco's extension of EntitySensorDataType; others report "other" (1)


@dataclass
class _Reader:
    """Converts values by metric, collecting problems instead of raising."""

    profile: Profile
    scalars: Mapping[str, RawValue]
    columns: Columns
    problems: list[str] = field(default_factory=list)

    def number(self, name: str, value: RawValue, where: str = "") -> float | None:
        raw = self.integer(name, value, where)
        if raw is None or raw in self.profile.by_name[name].invalid:
            return None
        # Rounding keeps 0.01-dBm scaled values printable (-2.3, not -2.3000000000000003).
        return round(raw * self.profile.by_name[name].scale, 6)

    def integer(self, name: str, value: RawValue, where: str = "") -> int | None:
        if value is None or name not in self.profile.by_name:
            return None
        if isinstance(value, bool) or not isinstance(value, int):
            shown = value.decode("utf-8", "replace") if isinstance(value, bytes) else value
            self.problems.append(f"{name}{where}: expected a number, got text {shown!r:.40}")
            return None
        return value

    def scalar_number(self, name: str) -> float | None:
        return self.number(name, self.scalars.get(name))

    def scalar_int(self, name: str) -> int | None:
        return self.integer(name, self.scalars.get(name))

    def column(self, name: str) -> Mapping[Index, RawValue]:
        return self.columns.get(name, {})


def text(value: RawValue) -> str:
    """OCTET STRING or OID as text (invalid UTF-8 replaced, NULs stripped)."""
    if value is None:
        return ""
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace").rstrip("\x00")
    return str(value)


def _kept_text(value: RawValue) -> str:
    """``text`` for names a sample keeps until the next poll (ifName, ifAlias, sysName).

    Interned: the same names repeat across polls and targets ("GigabitEthernet0/1",
    a model's sysDescr), and one copy serves them all, where each sample held its own
    (0.5 KB a private line; bench/RESULTS.md, issue 10 section 8).
    """
    return sys.intern(text(value))


def _index_text(index: Index) -> str:
    return ".".join(str(i) for i in index)


def decode_sample(profile: Profile, scalars: Mapping[str, RawValue], columns: Columns,
                  *, interfaces: Sequence[str] | None = None) -> LinkSample:
    """Decode one poll's raw values according to the target's profile.

    Args:
        profile: The target's resolved profile.
        scalars: Scalar values by metric name.
        columns: Walked columns by metric name.
        interfaces: Only keep interfaces with these names (``None``: all).

    Returns:
        The sample; undecodable values are listed in ``problems``.
    """
    r = _Reader(profile, scalars, columns)
    sample_interfaces = _interfaces(r, interfaces)
    if_names = {i.index: i.name for i in sample_interfaces}
    if_names_all = {idx[0]: text(v) for idx, v in r.column("if_name").items() if len(idx) == 1}
    known = _KNOWN_SCALARS | _KNOWN_COLUMNS
    extra: list[tuple[str, float | str | None]] = []
    exported = _exported(r, profile)
    for metric in profile.metrics:
        if metric.name in known or metric.export is not None:
            continue
        if metric.table:
            for idx, value in sorted(r.column(metric.name).items()):
                extra.append((f"{metric.name}.{_index_text(idx)}", _extra_value(r, metric, value)))
        else:
            extra.append((metric.name, _extra_value(r, metric, scalars.get(metric.name))))
    uptime = r.scalar_int("sys_uptime")
    return LinkSample(
        sys_uptime_ticks=uptime,
        engine_boots=r.scalar_int("engine_boots"),
        sys_name=_kept_text(scalars.get("sys_name")) or None,
        sys_descr=_kept_text(scalars.get("sys_descr")) or None,
        interfaces=sample_interfaces,
        optical=_optical(r),
        radio=_radio(r),
        ups=_ups(r),
        pon=_pon(r, {**if_names_all, **if_names}),
        extra=tuple(extra),
        exported=exported,
        problems=tuple(r.problems),
        decode_errors=len(r.problems),
    )


def _exported(r: _Reader, profile: Profile) -> tuple[ExportedValue, ...]:
    # Text where a number belongs is a problem (and a decode error), never an export.
    out: list[ExportedValue] = []
    for metric in profile.exported:
        value = r.scalar_number(metric.name)
        if value is not None and metric.export is not None:
            out.append((metric.export, value))
    return tuple(out)


def _extra_value(r: _Reader, metric: Metric, value: RawValue) -> float | str | None:
    if metric.text or isinstance(value, bytes | str):
        return text(value) if value is not None else None
    return r.number(metric.name, value)


_KNOWN_SCALARS = frozenset({
    "sys_descr", "sys_uptime", "sys_name", "engine_boots",
    "radio_signal_dbm", "radio_noise_dbm", "radio_snr_db",
    "ups_battery_status", "ups_seconds_on_battery", "ups_minutes_remaining",
    "ups_charge_percent", "ups_temperature_celsius", "ups_output_source",
    "ups_alarms_present",
})
_KNOWN_COLUMNS = frozenset({
    "if_descr", "if_speed", "if_admin_status", "if_oper_status", "if_in_octets",
    "if_in_discards", "if_in_errors", "if_out_octets", "if_out_discards", "if_out_errors",
    "if_name", "if_hc_in_octets", "if_hc_out_octets", "if_high_speed", "if_alias",
    "if_counter_discontinuity_time",
    "ent_sensor_type", "ent_sensor_scale", "ent_sensor_precision", "ent_sensor_value",
    "ent_physical_name", "optical_rx_dbm", "optical_tx_dbm",
    "ups_input_voltage", "pon_ont_status", "pon_ont_rx_dbm",
})


# Numeric ifTable/ifXTable columns an interface reads, in InterfaceReading's order.
_IF_NUMBERS = ("if_hc_in_octets", "if_hc_out_octets", "if_in_octets", "if_out_octets",
               "if_high_speed", "if_speed", "if_admin_status", "if_oper_status",
               "if_in_errors", "if_out_errors", "if_in_discards", "if_out_discards",
               "if_counter_discontinuity_time")


# ifHighSpeed in b/s, one int per speed: above 2^30 every product was a new int that each
# interface kept (32 bytes); an estate has a handful of speeds (bounded all the same).
_SPEEDS_BPS: dict[int, int] = {}


def _speed_bps(high: int) -> int:
    speed = _SPEEDS_BPS.get(high)
    if speed is None:
        speed = high * 1_000_000
        if len(_SPEEDS_BPS) < 1024:
            _SPEEDS_BPS[high] = speed
    return speed


def _interfaces(r: _Reader, only: Sequence[str] | None) -> tuple[InterfaceReading, ...]:
    indexes: set[int] = set()
    for name in ("if_descr", "if_oper_status", "if_name"):
        indexes.update(idx[0] for idx in r.column(name) if len(idx) == 1)
    wanted = set(only) if only is not None else None
    by_name = r.profile.by_name
    # A column the profile does not read counts as absent (as ``_Reader.integer`` says).
    cols = [r.column(n) if n in by_name else {} for n in _IF_NUMBERS]
    names, descrs, aliases = r.column("if_name"), r.column("if_descr"), r.column("if_alias")
    out: list[InterfaceReading] = []
    for index in sorted(indexes):
        key = (index,)
        name = _kept_text(names.get(key)) or _kept_text(descrs.get(key)) or f"if{index}"
        if wanted is not None and name not in wanted:
            continue
        # One pass over the columns: ints as they are, anything else through the reader
        # (a problem line for text where a number belongs).
        values = [c.get(key) for c in cols]
        for i, value in enumerate(values):
            if value is not None and value.__class__ is not int:
                if i in (2, 3) and values[0] is not None and values[1] is not None:
                    continue  # the 32-bit octets are not read when the 64-bit ones are
                values[i] = r.integer(_IF_NUMBERS[i], value, f"[{name}]")
        (hc_in, hc_out, in32, out32, high, speed, admin, oper, in_err, out_err, in_disc,
         out_disc, discontinuity) = cast(list[int | None], values)
        bits = 64
        in_octets, out_octets = hc_in, hc_out
        if hc_in is None or hc_out is None:
            bits = 32
            in_octets, out_octets = in32, out32
        # ifSpeed saturates at 2^32-1 above 4.29 Gb/s; ifHighSpeed (Mb/s) is then right.
        speed_bps = _speed_bps(high) if high else speed
        out.append(InterfaceReading(
            index=index,
            name=name,
            alias=_kept_text(aliases.get(key)),
            admin_status=admin,
            oper_status=oper,
            in_octets=in_octets,
            out_octets=out_octets,
            in_errors=in_err,
            out_errors=out_err,
            in_discards=in_disc,
            out_discards=out_disc,
            speed_bps=speed_bps,
            counter_bits=bits,
            discontinuity_time=discontinuity,
        ))
    return tuple(out)


def _split_direction(name: str) -> tuple[str, str | None]:
    """``"Te1/1 Rx Power"`` -> (``"Te1/1"``, ``"rx"``)."""
    words = name.replace("-", " ").replace("_", " ").split()
    direction = None
    kept: list[str] = []
    for word in words:
        low = word.lower()
        if low in ("rx", "receive", "received", "input"):
            direction = "rx"
        elif low in ("tx", "transmit", "transmitted", "output"):
            direction = "tx"
        elif low not in ("power", "sensor", "optical", "lane"):
            kept.append(word)
    return " ".join(kept) or name, direction


def _optical(r: _Reader) -> tuple[OpticalReading, ...]:
    names = r.column("ent_physical_name")
    readings: dict[str, dict[str, float | None]] = {}
    # Vendor tables that give rx and tx per entity directly (Huawei).
    rx_col, tx_col = r.column("optical_rx_dbm"), r.column("optical_tx_dbm")
    for idx in sorted(set(rx_col) | set(tx_col)):
        sensor = text(names.get(idx)) or f"entity-{_index_text(idx)}"
        where = f"[{sensor}]"
        readings[sensor] = {"rx": r.number("optical_rx_dbm", rx_col.get(idx), where),
                            "tx": r.number("optical_tx_dbm", tx_col.get(idx), where)}
    # ENTITY-SENSOR-MIB: one sensor per direction, paired by name.
    values = r.column("ent_sensor_value")
    for idx in sorted(values):
        kind = r.integer("ent_sensor_type", r.column("ent_sensor_type").get(idx))
        full = text(names.get(idx)) or f"sensor-{_index_text(idx)}"
        port, direction = _split_direction(full)
        if direction is None or kind not in (None, 1, _ENT_SENSOR_DBM):
            continue
        raw = r.integer("ent_sensor_value", values[idx], f"[{full}]")
        if raw is None:
            continue
        scale = r.integer("ent_sensor_scale", r.column("ent_sensor_scale").get(idx)) or 9
        precision = r.integer("ent_sensor_precision",
                              r.column("ent_sensor_precision").get(idx)) or 0
        value = raw * 10.0 ** ((scale - 9) * 3) / 10.0 ** precision
        readings.setdefault(port, {"rx": None, "tx": None})[direction] = round(value, 6)
    return tuple(OpticalReading(sensor=s, rx_dbm=v["rx"], tx_dbm=v["tx"])
                 for s, v in readings.items())


def _radio(r: _Reader) -> RadioReading | None:
    if not any(r.profile.metric(n) for n in ("radio_signal_dbm", "radio_noise_dbm",
                                              "radio_snr_db")):
        return None
    signal = r.scalar_number("radio_signal_dbm")
    noise = r.scalar_number("radio_noise_dbm")
    snr = r.scalar_number("radio_snr_db")
    if snr is None and signal is not None and noise is not None:
        snr = signal - noise
    return RadioReading(signal_dbm=signal, noise_dbm=noise, snr_db=snr)


def _ups(r: _Reader) -> UpsReading | None:
    if r.profile.metric("ups_battery_status") is None:
        return None
    seconds = r.scalar_number("ups_seconds_on_battery")
    source = r.scalar_int("ups_output_source")
    on_battery: bool | None = None
    if source is not None:
        on_battery = source == 5  # upsOutputSource battery(5)
    elif seconds is not None:
        on_battery = seconds > 0
    voltage = None
    for idx, value in sorted(r.column("ups_input_voltage").items()):
        voltage = r.number("ups_input_voltage", value, f"[{_index_text(idx)}]")
        if voltage is not None:
            break
    return UpsReading(
        battery_status=r.scalar_int("ups_battery_status"),
        charge_percent=r.scalar_number("ups_charge_percent"),
        minutes_remaining=r.scalar_number("ups_minutes_remaining"),
        seconds_on_battery=seconds,
        input_voltage=voltage,
        temperature_celsius=r.scalar_number("ups_temperature_celsius"),
        on_battery=on_battery,
    )


def _pon(r: _Reader, if_names: Mapping[int, str]) -> tuple[PonPortReading, ...]:
    status = r.column("pon_ont_status")
    if not status:
        return ()
    rx = r.column("pon_ont_rx_dbm")
    ports: dict[int, list[OnuReading]] = {}
    for idx in sorted(status):
        if len(idx) < 2:
            r.problems.append(f"pon_ont_status.{_index_text(idx)}: index is not port.onu")
            continue
        port, onu = idx[0], _index_text(idx[1:])
        state = r.integer("pon_ont_status", status[idx], f"[{port}.{onu}]")
        online = state == 1
        power = r.number("pon_ont_rx_dbm", rx.get(idx), f"[{port}.{onu}]") if online else None
        ports.setdefault(port, []).append(OnuReading(onu=onu, online=online, rx_dbm=power))
    return tuple(
        PonPortReading(port=if_names.get(port) or str(port),
                       onus_online=sum(1 for o in onus if o.online),
                       onus_total=len(onus), onus=tuple(onus))
        for port, onus in sorted(ports.items())
    )
