"""Prometheus metrics read at scrape time from immutable snapshots.

Every scrape starts on the event loop with :meth:`SnapshotSource.capture`, which only
gathers references to snapshots the services already hold (no I/O, no copying). The
exposition text is then produced off the loop, in a worker thread, from that
:class:`MetricsSnapshot` alone, so a scrape never stalls polling or intake.

Each metric is declared once, as a :class:`MetricSpec`. The specs feed two renderers that
must agree (a test checks it):

* :class:`SnapshotCollector`, a prometheus_client custom collector, for tests
  (``registry.get_sample_value``) and for embedding in another registry;
* :func:`render`, a direct text writer used by ``/metrics``. It caches each target's
  escaped label set and skips prometheus_client's per-sample object churn, which is
  what makes 10,000 targets render well inside half a second.

No ``_created`` series are emitted: the collectors never pass a creation time.
"""

from __future__ import annotations

import math
import platform
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import Enum
from typing import Literal, Protocol

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector, CollectorRegistry

from netguard import __version__
from netguard.iot.events import EventKind
from netguard.probes.config import LINK_KINDS

MetricType = Literal["gauge", "counter"]
Labels = tuple[str, ...]
Sample = tuple[Labels, float]

TARGET_LABELS: Labels = ("target", "kind", "site")


# --------------------------------------------------------------------------- snapshot views
# Structural views of what the other areas hand us. They name only the attributes the
# metrics read, so this module imports no service code, only the domain vocabularies
# (link kinds, door event kinds) used to export zeros.


class InterfaceView(Protocol):
    """One interface's readings."""

    @property
    def name(self) -> str: ...
    @property
    def oper_status(self) -> int | None: ...
    @property
    def speed_bps(self) -> int | None: ...
    @property
    def in_octets(self) -> int | None: ...
    @property
    def out_octets(self) -> int | None: ...
    @property
    def utilisation(self) -> float | None: ...
    @property
    def in_errors(self) -> int | None: ...
    @property
    def out_errors(self) -> int | None: ...
    @property
    def in_discards(self) -> int | None: ...
    @property
    def out_discards(self) -> int | None: ...


class OpticalView(Protocol):
    """One transceiver's power readings."""

    @property
    def sensor(self) -> str: ...
    @property
    def rx_dbm(self) -> float | None: ...
    @property
    def tx_dbm(self) -> float | None: ...


class RadioView(Protocol):
    """A wireless link's signal readings."""

    @property
    def signal_dbm(self) -> float | None: ...
    @property
    def noise_dbm(self) -> float | None: ...
    @property
    def snr_db(self) -> float | None: ...


class UpsView(Protocol):
    """A 5G cabin's UPS readings."""

    @property
    def battery_status(self) -> int | None: ...
    @property
    def charge_percent(self) -> float | None: ...
    @property
    def minutes_remaining(self) -> float | None: ...
    @property
    def seconds_on_battery(self) -> float | None: ...
    @property
    def on_battery(self) -> bool | None: ...
    @property
    def input_voltage(self) -> float | None: ...
    @property
    def temperature_celsius(self) -> float | None: ...


class OnuView(Protocol):
    """One ONU's optical receive power."""

    @property
    def onu(self) -> str: ...
    @property
    def rx_dbm(self) -> float | None: ...


class PonPortView(Protocol):
    """One PON port with its ONUs."""

    @property
    def port(self) -> str: ...
    @property
    def onus_online(self) -> int: ...
    @property
    def onus_total(self) -> int: ...
    @property
    def onus(self) -> Sequence[OnuView]: ...


class TargetView(Protocol):
    """The probes' per-target status snapshot (``netguard.probes.state.TargetStatus``)."""

    @property
    def target(self) -> str: ...
    @property
    def kind(self) -> str: ...
    @property
    def site(self) -> str | None: ...
    @property
    def state(self) -> str | Enum: ...
    @property
    def reachable(self) -> bool: ...
    @property
    def poll_duration_seconds(self) -> float | None: ...
    @property
    def last_success_at(self) -> datetime | None: ...
    @property
    def interfaces(self) -> Sequence[InterfaceView]: ...
    @property
    def optical(self) -> Sequence[OpticalView]: ...
    @property
    def radio(self) -> RadioView | None: ...
    @property
    def ups(self) -> UpsView | None: ...
    @property
    def pon(self) -> Sequence[PonPortView]: ...


class TicketCountsView(Protocol):
    """Open and overdue tickets by (category, severity)."""

    @property
    def open(self) -> Mapping[tuple[str, str], int]: ...
    @property
    def overdue(self) -> Mapping[tuple[str, str], int]: ...


class IotView(Protocol):
    """Door sensors, alerts and the MQTT intake (``netguard.iot.service.IotSnapshot``)."""

    @property
    def mqtt_connected(self) -> bool: ...
    @property
    def mqtt_connect_failures(self) -> int: ...
    @property
    def door_events(self) -> Mapping[str, int]: ...
    @property
    def duplicates(self) -> int: ...
    @property
    def dead_letters(self) -> Mapping[str, int]: ...
    @property
    def sensors_online(self) -> int: ...
    @property
    def sensors_offline(self) -> int: ...
    @property
    def sensors_low_battery(self) -> int: ...
    @property
    def alerts_open(self) -> Mapping[tuple[str, str], int]: ...
    @property
    def deliveries_delivered(self) -> int: ...
    @property
    def deliveries_failed(self) -> int: ...
    @property
    def outbox_pending(self) -> int: ...


@dataclass(frozen=True, slots=True)
class DaemonStats:
    """The daemon's own counters."""

    polls: Mapping[str, int] = field(default_factory=dict)
    overruns: int = 0
    misfires: int = 0
    sweep_errors: int = 0
    scheduler_running: bool = False
    targets_scheduled: int = 0
    # Configuration reloads (SIGHUP) by result, and when the config last loaded cleanly
    # (the start counts as the first successful load).
    config_reloads: Mapping[str, int] = field(default_factory=dict)
    config_last_reload_success: float = 0.0
    config_last_reload_successful: bool = True
    # Fault events waiting for the ticket store, dropped from a full backlog, and set
    # aside after the store kept refusing them while the database answered.
    fault_event_backlog: int = 0
    fault_events_dropped: int = 0
    fault_events_rejected: int = 0


@dataclass(frozen=True, slots=True)
class MetricsSnapshot:
    """Everything one scrape exports; immutable, safe to read from another thread."""

    targets: Mapping[str, TargetView]
    tickets: TicketCountsView | None = None
    iot: IotView | None = None
    daemon: DaemonStats = field(default_factory=DaemonStats)
    started_at: float = 0.0


# The states a target can be in; exported as a state set so that dashboards can count them.
TARGET_STATES: tuple[str, ...] = ("up", "degraded", "down", "unreachable")
SEVERITIES: tuple[str, ...] = ("critical", "major", "minor", "warning")
DOOR_EVENT_TYPES: tuple[str, ...] = tuple(kind.value for kind in EventKind)
# upsBatteryStatus (UPS-MIB) codes and their names.
BATTERY_STATES: dict[int, str] = {1: "unknown", 2: "normal", 3: "low", 4: "depleted"}


# --------------------------------------------------------------------------- metric specs


@dataclass(frozen=True, slots=True)
class MetricSpec:
    """One exported metric family.

    Attributes:
        name: The exposition name (counters end in ``_total``).
        type: ``gauge`` or ``counter``.
        help: The HELP text.
        labels: For per-target metrics, the labels after ``target, kind, site``;
            otherwise all labels.
        per_target: ``read`` takes one :class:`TargetView` instead of the snapshot.
        read: Yields ``(label values, value)`` samples.
        section: The ``TargetView`` attribute this metric reads (``interfaces``, ``ups``,
            ...); targets whose section is empty are skipped without calling ``read``.
    """

    name: str
    type: MetricType
    help: str
    labels: Labels
    per_target: bool
    read: Callable[..., Iterable[Sample]]
    section: str | None = None


def _state_name(state: str | Enum) -> str:
    return str(state.value) if isinstance(state, Enum) else str(state)


def _target_state(t: TargetView) -> Iterator[Sample]:
    current = _state_name(t.state)
    for state in TARGET_STATES:
        yield (state,), 1.0 if state == current else 0.0
    if current not in TARGET_STATES:
        yield (current,), 1.0


def _opt(value: float | int | bool | None) -> Iterator[Sample]:
    if value is not None:
        yield (), float(value)


def _interfaces(attr: str) -> Callable[[TargetView], Iterator[Sample]]:
    def read(t: TargetView) -> Iterator[Sample]:
        for itf in t.interfaces:
            value = getattr(itf, attr)
            if value is not None:
                yield (itf.name,), float(value)
    return read


def _interfaces_dir(in_attr: str, out_attr: str) -> Callable[[TargetView], Iterator[Sample]]:
    def read(t: TargetView) -> Iterator[Sample]:
        for itf in t.interfaces:
            value = getattr(itf, in_attr)
            if value is not None:
                yield (itf.name, "in"), float(value)
            value = getattr(itf, out_attr)
            if value is not None:
                yield (itf.name, "out"), float(value)
    return read


def _optical(attr: str) -> Callable[[TargetView], Iterator[Sample]]:
    def read(t: TargetView) -> Iterator[Sample]:
        for sensor in t.optical:
            value = getattr(sensor, attr)
            if value is not None:
                yield (sensor.sensor,), float(value)
    return read


def _radio(attr: str) -> Callable[[TargetView], Iterator[Sample]]:
    def read(t: TargetView) -> Iterator[Sample]:
        if t.radio is not None:
            value = getattr(t.radio, attr)
            if value is not None:
                yield (), float(value)
    return read


def _ups(attr: str, scale: float = 1.0) -> Callable[[TargetView], Iterator[Sample]]:
    def read(t: TargetView) -> Iterator[Sample]:
        if t.ups is not None:
            value = getattr(t.ups, attr)
            if value is not None:
                yield (), float(value) * scale
    return read


def _ups_battery_status(t: TargetView) -> Iterator[Sample]:
    if t.ups is None:
        return
    code = t.ups.battery_status
    if code is None:
        return
    for known, status in BATTERY_STATES.items():
        yield (status,), 1.0 if known == code else 0.0
    if code not in BATTERY_STATES:
        yield (f"code-{code}",), 1.0


def _oper_up(t: TargetView) -> Iterator[Sample]:
    for itf in t.interfaces:
        if itf.oper_status is not None:
            yield (itf.name,), 1.0 if itf.oper_status == 1 else 0.0


def _speed(t: TargetView) -> Iterator[Sample]:
    for itf in t.interfaces:
        if itf.speed_bps is not None:
            yield (itf.name,), itf.speed_bps / 8


def _pon(attr: str) -> Callable[[TargetView], Iterator[Sample]]:
    def read(t: TargetView) -> Iterator[Sample]:
        for port in t.pon:
            yield (port.port,), float(getattr(port, attr))
    return read


def _onu_rx(t: TargetView) -> Iterator[Sample]:
    for port in t.pon:
        for onu in port.onus:
            if onu.rx_dbm is not None:
                yield (port.port, onu.onu), float(onu.rx_dbm)


def _last_success(t: TargetView) -> Iterator[Sample]:
    if t.last_success_at is not None:
        yield (), t.last_success_at.timestamp()


def _by_pair(counts: Mapping[tuple[str, str], int],
             zeros: Iterable[tuple[str, str]] = ()) -> Iterator[Sample]:
    merged = dict.fromkeys(zeros, 0) | dict(counts)
    for (first, second), n in sorted(merged.items()):
        yield (first, second), float(n)


def _by_key(counts: Mapping[str, int], zeros: Iterable[str] = ()) -> Iterator[Sample]:
    merged = dict.fromkeys(zeros, 0) | dict(counts)
    for key, n in sorted(merged.items()):
        yield (key,), float(n)


def _iot(attr: str) -> Callable[[MetricsSnapshot], Iterator[Sample]]:
    def read(s: MetricsSnapshot) -> Iterator[Sample]:
        if s.iot is not None:
            yield (), float(getattr(s.iot, attr))
    return read


def _daemon(attr: str) -> Callable[[MetricsSnapshot], Iterator[Sample]]:
    def read(s: MetricsSnapshot) -> Iterator[Sample]:
        yield (), float(getattr(s.daemon, attr))
    return read


def _build_info(_s: MetricsSnapshot) -> Iterator[Sample]:
    yield (__version__, platform.python_version()), 1.0


def _targets_by_state(s: MetricsSnapshot) -> Iterator[Sample]:
    counts = dict.fromkeys(TARGET_STATES, 0)
    for t in s.targets.values():
        name = _state_name(t.state)
        counts[name] = counts.get(name, 0) + 1
    for state, n in counts.items():
        yield (state,), float(n)


def _polls(s: MetricsSnapshot) -> Iterator[Sample]:
    counts = {"success": 0, "failure": 0, **s.daemon.polls}
    yield from _by_key(counts)


def _config_reloads(s: MetricsSnapshot) -> Iterator[Sample]:
    yield from _by_key({"success": 0, "error": 0, **s.daemon.config_reloads})


def _door_events(s: MetricsSnapshot) -> Iterator[Sample]:
    if s.iot is not None:
        yield from _by_key(s.iot.door_events, DOOR_EVENT_TYPES)


def _dead_letters(s: MetricsSnapshot) -> Iterator[Sample]:
    if s.iot is not None:
        yield from _by_key(s.iot.dead_letters)


def _alerts_open(s: MetricsSnapshot) -> Iterator[Sample]:
    if s.iot is not None:
        yield from _by_pair(s.iot.alerts_open)


# Every (category, severity) pair is exported, zeros included, so that a dashboard shows
# 0 rather than "no data" and rate()/alerts see a series before the first ticket.
_TICKET_KEYS = tuple((kind, sev) for kind in LINK_KINDS for sev in SEVERITIES)


def _tickets_open(s: MetricsSnapshot) -> Iterator[Sample]:
    if s.tickets is not None:
        yield from _by_pair(s.tickets.open, _TICKET_KEYS)


def _tickets_overdue(s: MetricsSnapshot) -> Iterator[Sample]:
    if s.tickets is not None:
        yield from _by_pair(s.tickets.overdue, _TICKET_KEYS)


def _start_time(s: MetricsSnapshot) -> Iterator[Sample]:
    yield (), s.started_at


_SECTIONS = {"netguard_interface_": "interfaces", "netguard_optical_": "optical",
             "netguard_radio_": "radio", "netguard_ups_": "ups", "netguard_pon_": "pon"}


def _t(name: str, type_: MetricType, help_: str, labels: Labels,
       read: Callable[[TargetView], Iterable[Sample]]) -> MetricSpec:
    section = next((attr for prefix, attr in _SECTIONS.items() if name.startswith(prefix)),
                   None)
    return MetricSpec(name, type_, help_, labels, True, read, section)


def _g(name: str, type_: MetricType, help_: str, labels: Labels,
       read: Callable[[MetricsSnapshot], Iterable[Sample]]) -> MetricSpec:
    return MetricSpec(name, type_, help_, labels, False, read)


SPECS: tuple[MetricSpec, ...] = (
    _g("netguard_build_info", "gauge", "netguard version and Python version; always 1.",
       ("version", "python_version"), _build_info),
    _g("netguard_start_time_seconds", "gauge", "When the daemon started, Unix time.",
       (), _start_time),
    # Per target health.
    _t("netguard_target_up", "gauge", "1 if the target's last poll got an answer, else 0.",
       (), lambda t: (((), 1.0 if t.reachable else 0.0),)),
    _t("netguard_target_state", "gauge", "The target's assessed state (state set: 1 for the "
       "current state).", ("state",), _target_state),
    _t("netguard_target_poll_duration_seconds", "gauge", "How long the last poll took.",
       (), lambda t: _opt(t.poll_duration_seconds)),
    _t("netguard_target_last_success_timestamp_seconds", "gauge",
       "When the target last answered a poll, Unix time.", (), _last_success),
    _g("netguard_targets", "gauge", "Targets by assessed state.", ("state",),
       _targets_by_state),
    # Interfaces.
    _t("netguard_interface_oper_up", "gauge", "1 if ifOperStatus is up(1), else 0.",
       ("interface",), _oper_up),
    _t("netguard_interface_speed_bytes_per_second", "gauge",
       "Interface speed (ifHighSpeed or ifSpeed) in bytes per second.",
       ("interface",), _speed),
    _t("netguard_interface_received_bytes_total", "counter",
       "Bytes received (ifHCInOctets).", ("interface",), _interfaces("in_octets")),
    _t("netguard_interface_transmitted_bytes_total", "counter",
       "Bytes transmitted (ifHCOutOctets).", ("interface",), _interfaces("out_octets")),
    _t("netguard_interface_utilisation_ratio", "gauge",
       "Busier direction's traffic rate over link speed during the last poll interval, 0..1.",
       ("interface",), _interfaces("utilisation")),
    _t("netguard_interface_errors_total", "counter", "Errored packets (ifIn/OutErrors).",
       ("interface", "direction"), _interfaces_dir("in_errors", "out_errors")),
    _t("netguard_interface_discards_total", "counter", "Discarded packets (ifIn/OutDiscards).",
       ("interface", "direction"), _interfaces_dir("in_discards", "out_discards")),
    # Optics and radio.
    _t("netguard_optical_rx_power_dbm", "gauge", "Transceiver receive power.",
       ("sensor",), _optical("rx_dbm")),
    _t("netguard_optical_tx_power_dbm", "gauge", "Transceiver transmit power.",
       ("sensor",), _optical("tx_dbm")),
    _t("netguard_radio_signal_dbm", "gauge", "Wireless received signal strength.",
       (), _radio("signal_dbm")),
    _t("netguard_radio_noise_dbm", "gauge", "Wireless noise floor.", (), _radio("noise_dbm")),
    _t("netguard_radio_snr_db", "gauge", "Wireless signal-to-noise ratio in dB.",
       (), _radio("snr_db")),
    # 5G cabin UPS.
    _t("netguard_ups_battery_status", "gauge", "UPS battery status (state set: 1 for the "
       "current status).", ("status",), _ups_battery_status),
    _t("netguard_ups_on_battery", "gauge", "1 if the UPS output runs on battery.",
       (), _ups("on_battery")),
    _t("netguard_ups_battery_charge_ratio", "gauge", "Estimated battery charge, 0..1.",
       (), _ups("charge_percent", 0.01)),
    _t("netguard_ups_battery_runtime_seconds", "gauge", "Estimated runtime left on battery.",
       (), _ups("minutes_remaining", 60.0)),
    _t("netguard_ups_on_battery_seconds", "gauge",
       "Time since the UPS switched to battery (0 on mains).", (), _ups("seconds_on_battery")),
    _t("netguard_ups_input_voltage_volts", "gauge", "UPS input line voltage.",
       (), _ups("input_voltage")),
    _t("netguard_ups_battery_temperature_celsius", "gauge", "UPS battery temperature.",
       (), _ups("temperature_celsius")),
    # PON.
    _t("netguard_pon_onus_online", "gauge", "ONUs online on the PON port.",
       ("port",), _pon("onus_online")),
    _t("netguard_pon_onus", "gauge", "ONUs provisioned on the PON port.",
       ("port",), _pon("onus_total")),
    _t("netguard_pon_onu_rx_power_dbm", "gauge", "ONU receive power.",
       ("port", "onu"), _onu_rx),
    # Tickets.
    _g("netguard_tickets_open", "gauge", "Open tickets.", ("category", "severity"),
       _tickets_open),
    _g("netguard_tickets_overdue", "gauge", "Open tickets past their SLA.",
       ("category", "severity"), _tickets_overdue),
    # Door sensors and alerts.
    _g("netguard_door_events_total", "counter", "Door-sensor events ingested, by type.",
       ("type",), _door_events),
    _g("netguard_sensors_online", "gauge", "Door sensors heard from recently.",
       (), _iot("sensors_online")),
    _g("netguard_sensors_offline", "gauge", "Door sensors silent past the heartbeat timeout.",
       (), _iot("sensors_offline")),
    _g("netguard_sensors_low_battery", "gauge", "Door sensors reporting a low battery.",
       (), _iot("sensors_low_battery")),
    _g("netguard_door_event_duplicates_total", "counter",
       "Redelivered MQTT messages recognised and dropped.", (), _iot("duplicates")),
    _g("netguard_alerts_open", "gauge", "Door alerts not yet resolved, by type and community.",
       ("type", "community"), _alerts_open),
    _g("netguard_alert_deliveries_total", "counter", "Alert notifications delivered.",
       (), _iot("deliveries_delivered")),
    _g("netguard_alert_delivery_failures_total", "counter",
       "Alert notifications given up on after retries.", (), _iot("deliveries_failed")),
    _g("netguard_outbox_pending", "gauge", "Alert notifications waiting for delivery.",
       (), _iot("outbox_pending")),
    _g("netguard_dead_letters_total", "counter",
       "MQTT messages set aside as undecodable or unknown, by reason.",
       ("reason",), _dead_letters),
    _g("netguard_mqtt_connected", "gauge", "1 while connected to the MQTT broker.",
       (), _iot("mqtt_connected")),
    _g("netguard_mqtt_connect_failures_total", "counter",
       "Failed attempts to connect to the MQTT broker (refused, unreachable, TLS or "
       "authentication failure).", (), _iot("mqtt_connect_failures")),
    # The daemon itself.
    _g("netguard_polls_total", "counter", "Polls finished, by result.", ("result",), _polls),
    _g("netguard_scheduler_overruns_total", "counter",
       "Polls skipped because the previous poll of the target was still running.",
       (), _daemon("overruns")),
    _g("netguard_scheduler_misfires_total", "counter",
       "Polls skipped because they could not start within the misfire grace time.",
       (), _daemon("misfires")),
    _g("netguard_sweep_errors_total", "counter", "Periodic sweeps that failed.",
       (), _daemon("sweep_errors")),
    _g("netguard_scheduler_running", "gauge", "1 while the poll scheduler runs.",
       (), _daemon("scheduler_running")),
    _g("netguard_config_reloads_total", "counter",
       "Configuration reloads (SIGHUP), by result.", ("result",), _config_reloads),
    _g("netguard_config_last_reload_successful", "gauge",
       "1 if the last configuration reload succeeded (or none was tried), else 0.",
       (), _daemon("config_last_reload_successful")),
    _g("netguard_config_last_reload_success_timestamp_seconds", "gauge",
       "When the configuration last loaded successfully (at start or on reload), Unix time.",
       (), _daemon("config_last_reload_success")),
    _g("netguard_fault_event_backlog", "gauge",
       "Fault events waiting for the ticket store (it refused or could not be reached).",
       (), _daemon("fault_event_backlog")),
    _g("netguard_fault_events_dropped_total", "counter",
       "Fault events dropped, oldest first, because the backlog was full.",
       (), _daemon("fault_events_dropped")),
    _g("netguard_fault_events_rejected_total", "counter",
       "Fault events set aside after the ticket store kept refusing them while the "
       "database answered.", (), _daemon("fault_events_rejected")),
)


# --------------------------------------------------------------------------- collector


def _family(spec: MetricSpec, label_names: Labels) -> GaugeMetricFamily | CounterMetricFamily:
    if spec.type == "counter":
        return CounterMetricFamily(spec.name.removesuffix("_total"), spec.help,
                                   labels=list(label_names))
    return GaugeMetricFamily(spec.name, spec.help, labels=list(label_names))


def collect_families(snapshot: MetricsSnapshot) -> Iterator[Metric]:
    """prometheus_client metric families for one snapshot (see :func:`render`)."""
    for spec in SPECS:
        if spec.per_target:
            family = _family(spec, TARGET_LABELS + spec.labels)
            for target_id, status in snapshot.targets.items():
                base = (target_id, status.kind, status.site or "")
                for extra, value in spec.read(status):
                    family.add_metric(base + extra, value)
        else:
            family = _family(spec, spec.labels)
            for labels, value in spec.read(snapshot):
                family.add_metric(labels, value)
        yield family


class SnapshotCollector(Collector):
    """A custom collector that exports whatever snapshot ``source`` returns at scrape time.

    Args:
        source: Returns the current immutable snapshot.
        registry: Where to register (never the global one unless you pass it).
    """

    def __init__(self, source: Callable[[], MetricsSnapshot],
                 registry: CollectorRegistry | None = None) -> None:
        self._source = source
        if registry is not None:
            registry.register(self)

    def collect(self) -> Iterable[Metric]:
        return list(collect_families(self._source()))

    def describe(self) -> Iterable[Metric]:
        # Empty on purpose: describing would call collect() at registration time.
        return []


# --------------------------------------------------------------------------- fast renderer

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def _escape(value: str) -> str:
    if "\\" in value or '"' in value or "\n" in value:
        return value.replace("\\", r"\\").replace("\n", r"\n").replace('"', r"\"")
    return value


def _number(value: float) -> str:
    if value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(value)


def _target_labels(target_id: str, status: TargetView) -> str:
    return (f'target="{_escape(target_id)}",kind="{_escape(status.kind)}",'
            f'site="{_escape(status.site or "")}"')


def _lines(name: str, base: str, label_names: Labels, samples: Iterable[Sample],
           rest_cache: dict[Labels, str]) -> str:
    parts: list[str] = []
    for extra, value in samples:
        if extra:
            # Extra label sets (interface names, directions, ports) repeat across targets
            # and scrapes; rendering each once saves most of the formatting work.
            rest = rest_cache.get(extra)
            if rest is None:
                rest = ",".join(f'{n}="{_escape(v)}"'
                                for n, v in zip(label_names, extra, strict=True))
                rest_cache[extra] = rest
            labels = f"{base},{rest}" if base else rest
            parts.append(f"{name}{{{labels}}} {_number(value)}\n")
        elif base:
            parts.append(f"{name}{{{base}}} {_number(value)}\n")
        else:
            parts.append(f"{name} {_number(value)}\n")
    return "".join(parts)


_TARGET_SPECS = tuple(spec for spec in SPECS if spec.per_target)


@dataclass(frozen=True, slots=True)
class _Rendered:
    status: TargetView
    chunks: tuple[bytes, ...]


class Renderer:
    """Writes the Prometheus text exposition (0.0.4) of snapshots.

    A target's lines are kept between scrapes and reused while its status object is the
    same one: snapshots are immutable, and a target is polled far less often than it is
    scraped, so most of a large estate renders from this cache. Targets that disappear
    from the snapshot drop out of the cache on the next render.

    :meth:`render` is safe to call from worker threads, also concurrently: the cache is
    replaced whole, and every entry is checked against the snapshot before reuse.
    """

    def __init__(self) -> None:
        self._entries: dict[str, _Rendered] = {}
        self._rest: dict[str, dict[Labels, str]] = {spec.name: {} for spec in SPECS}

    def _target_chunks(self, target_id: str, status: TargetView) -> tuple[bytes, ...]:
        base = _target_labels(target_id, status)
        chunks: list[bytes] = []
        for spec in _TARGET_SPECS:
            if spec.section is not None and not getattr(status, spec.section):
                chunks.append(b"")
                continue
            chunks.append(_lines(spec.name, base, spec.labels, spec.read(status),
                                 self._rest[spec.name]).encode())
        return tuple(chunks)

    def render_families(self, snapshot: MetricsSnapshot) -> list[bytes]:
        """The text exposition of ``snapshot``, one chunk per metric family.

        Chunks keep every single C-level join or encode small, so that a worker thread
        rendering a large estate never holds the GIL long enough to stall the event loop.
        """
        old = self._entries
        fresh: dict[str, _Rendered] = {}
        for target_id, status in snapshot.targets.items():
            entry = old.get(target_id)
            if entry is None or entry.status is not status:
                entry = _Rendered(status, self._target_chunks(target_id, status))
            fresh[target_id] = entry
        self._entries = fresh

        out: list[bytes] = []
        index = 0
        for spec in SPECS:
            header = f"# HELP {spec.name} {spec.help}\n# TYPE {spec.name} {spec.type}\n".encode()
            if spec.per_target:
                i = index
                out.append(header + b"".join([entry.chunks[i] for entry in fresh.values()]))
                index += 1
            else:
                out.append(header + _lines(spec.name, "", spec.labels, spec.read(snapshot),
                                           self._rest[spec.name]).encode())
        return out

    def render(self, snapshot: MetricsSnapshot) -> bytes:
        """The whole text exposition of ``snapshot`` in one piece."""
        return b"".join(self.render_families(snapshot))


def render(snapshot: MetricsSnapshot) -> bytes:
    """The text exposition of one snapshot, without a cache (see :class:`Renderer`)."""
    return Renderer().render(snapshot)
