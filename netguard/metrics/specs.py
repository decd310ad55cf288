"""The exported metric families, each declared once as a :class:`MetricSpec`.

A spec says what it exports (name, type, help, labels), which part of the snapshot it reads
(its ``section``, named explicitly), and how to read samples from it. Both renderers, the
prometheus_client collector and the text writer, iterate :data:`SPECS`; nothing else
declares a metric.
"""

from __future__ import annotations

import platform
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from enum import Enum
from typing import Literal

from netguard import __version__
from netguard.faults import Severity
from netguard.iot.events import EventKind
from netguard.metrics.snapshot import MetricsSnapshot, TargetView
from netguard.probes.config import LINK_KINDS
from netguard.probes.state import TARGET_STATES, UPS_BATTERY_STATUS
from netguard.probes.traps import TRAP_REJECT_REASONS, TRAP_TYPES

MetricType = Literal["gauge", "counter"]
Labels = tuple[str, ...]
Sample = tuple[Labels, float]

TARGET_LABELS: Labels = ("target", "kind", "site")

# Where a per-target spec reads from: ``target`` is the status itself (always present); the
# others are TargetView attributes that many targets leave empty, which the text renderer
# skips without calling ``read``.
TargetSection = Literal["target", "interfaces", "optical", "radio", "ups", "pon"]
# Where an estate-wide spec reads from in the MetricsSnapshot.
GlobalSection = Literal["process", "estate", "tickets", "iot", "traps", "daemon"]
OPTIONAL_TARGET_SECTIONS: frozenset[str] = frozenset({"interfaces", "optical", "radio", "ups",
                                                      "pon"})

SEVERITIES: tuple[str, ...] = tuple(s.value for s in Severity)
DOOR_EVENT_TYPES: tuple[str, ...] = tuple(kind.value for kind in EventKind)


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
        section: The part of the snapshot this metric reads. For per-target specs, a
            :data:`TargetSection`: ``target``, or the ``TargetView`` attribute (``interfaces``,
            ``ups``, ...) whose emptiness lets the renderer skip the target. Otherwise a
            :data:`GlobalSection`.
        free_labels: The label names come from the data (a target's ``labels:``), so
            ``labels`` is empty and ``read`` yields flattened ``(name, value, ...)`` pairs.
    """

    name: str
    type: MetricType
    help: str
    labels: Labels
    per_target: bool
    read: Callable[..., Iterable[Sample]]
    section: TargetSection | GlobalSection
    free_labels: bool = False


def label_pairs(flat: Labels) -> Iterator[tuple[str, str]]:
    """``(name, value)`` pairs of a free-label sample's flattened label tuple."""
    return zip(flat[::2], flat[1::2], strict=True)


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
    for known, status in UPS_BATTERY_STATUS.items():
        yield (status,), 1.0 if known == code else 0.0
    if code not in UPS_BATTERY_STATUS:
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


def _target_info(t: TargetView) -> Iterator[Sample]:
    yield tuple(part for pair in t.labels for part in pair), 1.0


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


def _cluster(attr: str) -> Callable[[MetricsSnapshot], Iterator[Sample]]:
    def read(s: MetricsSnapshot) -> Iterator[Sample]:
        if s.daemon.cluster is not None:
            yield (), float(getattr(s.daemon.cluster, attr))
    return read


def _stale_writes(s: MetricsSnapshot) -> Iterator[Sample]:
    if s.daemon.cluster is not None:  # the writes netguard.daemon.clustering fences
        for write in ("fault_opened", "fault_cleared", "ticket_sweep"):
            yield (write,), float(s.daemon.cluster.stale_writes_refused.get(write, 0))


def _build_info(_s: MetricsSnapshot) -> Iterator[Sample]:
    yield (__version__, platform.python_version()), 1.0


def _targets_by_state(s: MetricsSnapshot) -> Iterator[Sample]:
    counts: dict[str, int] = dict.fromkeys(TARGET_STATES, 0)
    for t in s.targets.values():
        name = _state_name(t.state)
        counts[name] = counts.get(name, 0) + 1
    for state, n in counts.items():
        yield (state,), float(n)


def _clock_steps(s: MetricsSnapshot) -> Iterator[Sample]:
    counts = {"forward": 0, "backward": 0, **s.daemon.clock_steps}
    for direction, n in counts.items():
        yield (direction,), float(n)


def _polls(s: MetricsSnapshot) -> Iterator[Sample]:
    counts = {"success": 0, "failure": 0, **s.daemon.polls}
    yield from _by_key(counts)


def _ack_links(s: MetricsSnapshot) -> Iterator[Sample]:
    yield from _by_key(s.daemon.ack_links)


def _ticket_notifications(s: MetricsSnapshot) -> Iterator[Sample]:
    yield from _by_pair(s.daemon.ticket_notifications)
def _alertmanager_webhooks(s: MetricsSnapshot) -> Iterator[Sample]:
    yield from _by_key(s.daemon.alertmanager_webhooks)


def _config_reloads(s: MetricsSnapshot) -> Iterator[Sample]:
    yield from _by_key({"success": 0, "error": 0, **s.daemon.config_reloads})


def _door_events(s: MetricsSnapshot) -> Iterator[Sample]:
    if s.iot is not None:
        yield from _by_key(s.iot.door_events, DOOR_EVENT_TYPES)


def _dead_letters(s: MetricsSnapshot) -> Iterator[Sample]:
    if s.iot is not None:
        yield from _by_key(s.iot.dead_letters)


def _field_errors(s: MetricsSnapshot) -> Iterator[Sample]:
    if s.iot is not None:
        yield from _by_key(s.iot.payload_field_errors)


def _deliveries(attr: str) -> Callable[[MetricsSnapshot], Iterator[Sample]]:
    def read(s: MetricsSnapshot) -> Iterator[Sample]:
        if s.iot is not None:
            yield from _by_key(getattr(s.iot, attr))
    return read


def _walk_timeouts(t: TargetView) -> Iterator[Sample]:
    yield (), float(t.walk_timeouts)


def _rx_thresholds(t: TargetView) -> Iterator[Sample]:
    # Only beside a target's optical readings: a rule compares the two.
    if t.optical:
        for level, dbm in t.rx_thresholds_dbm:
            yield (level,), float(dbm)


def _traps(attr: str) -> Callable[[MetricsSnapshot], Iterator[Sample]]:
    def read(s: MetricsSnapshot) -> Iterator[Sample]:
        if s.traps is not None:
            yield from _by_key(getattr(s.traps, attr), TRAP_TYPES)
    return read


_TRAP_REJECT_KEYS = tuple((kind, reason) for kind in TRAP_TYPES for reason in TRAP_REJECT_REASONS)


def _traps_rejected(s: MetricsSnapshot) -> Iterator[Sample]:
    if s.traps is not None:
        yield from _by_pair(s.traps.rejected, _TRAP_REJECT_KEYS)


def _alerts_open(s: MetricsSnapshot) -> Iterator[Sample]:
    if s.iot is not None:
        yield from _by_pair(s.iot.alerts_open)


def _anchor_sequence(s: MetricsSnapshot) -> Iterator[Sample]:
    if s.iot is not None:
        yield from _by_key(s.iot.audit_anchor_sequence)


def _anchor_time(s: MetricsSnapshot) -> Iterator[Sample]:
    # No sample before the first anchor: "never" must not read as 1970.
    if s.iot is not None and s.iot.audit_anchor_time is not None:
        yield (), s.iot.audit_anchor_time


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


def _t(name: str, type_: MetricType, help_: str, labels: Labels,
       read: Callable[[TargetView], Iterable[Sample]], *, section: TargetSection,
       free_labels: bool = False) -> MetricSpec:
    return MetricSpec(name, type_, help_, labels, True, read, section, free_labels)


def _g(name: str, type_: MetricType, help_: str, labels: Labels,
       read: Callable[[MetricsSnapshot], Iterable[Sample]], *, section: GlobalSection
       ) -> MetricSpec:
    return MetricSpec(name, type_, help_, labels, False, read, section)


SPECS: tuple[MetricSpec, ...] = (
    _g("netguard_build_info", "gauge",
       "netguard version and Python version; always 1.",
       ("version", "python_version"), _build_info, section="process"),
    _g("netguard_start_time_seconds", "gauge",
       "When the daemon started, Unix time.", (), _start_time, section="process"),
    # Per target health.
    _t("netguard_target_up", "gauge",
       "1 if the target's last poll got an answer, else 0.",
       (), lambda t: (((), 1.0 if t.reachable else 0.0),), section="target"),
    _t("netguard_target_state", "gauge",
       "The target's assessed state (state set: 1 for the current state).",
       ("state",), _target_state, section="target"),
    _t("netguard_target_poll_duration_seconds", "gauge",
       "How long the last poll took.", (), lambda t: _opt(t.poll_duration_seconds),
       section="target"),
    _t("netguard_target_walk_timeouts_total", "counter",
       "Table-walk requests (GETBULK/GETNEXT) to the target that got no answer in time.",
       (), _walk_timeouts, section="target"),
    _t("netguard_target_last_success_timestamp_seconds", "gauge",
       "When the target last answered a poll, Unix time.", (), _last_success, section="target"),
    _t("netguard_target_info", "gauge",
       "Always 1; labelled with the target's configured labels (targets[].labels), to join "
       "on target.", (), _target_info, section="target", free_labels=True),
    _t("netguard_target_decode_errors_total", "counter",
       "Values the target's agent sent that could not be decoded (text where a number "
       "belongs); the rest of each poll is kept.", (),
       lambda t: (((), float(t.decode_errors)),), section="target"),
    _g("netguard_targets", "gauge",
       "Targets by assessed state.", ("state",), _targets_by_state, section="estate"),
    # Interfaces.
    _t("netguard_interface_oper_up", "gauge",
       "1 if ifOperStatus is up(1), else 0.", ("interface",), _oper_up, section="interfaces"),
    _t("netguard_interface_speed_bytes_per_second", "gauge",
       "Interface speed (ifHighSpeed or ifSpeed) in bytes per second.", ("interface",), _speed,
       section="interfaces"),
    _t("netguard_interface_received_bytes_total", "counter",
       "Bytes received (ifHCInOctets).", ("interface",), _interfaces("in_octets"),
       section="interfaces"),
    _t("netguard_interface_transmitted_bytes_total", "counter",
       "Bytes transmitted (ifHCOutOctets).", ("interface",), _interfaces("out_octets"),
       section="interfaces"),
    _t("netguard_interface_utilisation_ratio", "gauge",
       "Busier direction's traffic rate over link speed during the last poll interval, 0..1.",
       ("interface",), _interfaces("utilisation"), section="interfaces"),
    _t("netguard_interface_errors_total", "counter",
       "Errored packets (ifIn/OutErrors).",
       ("interface", "direction"), _interfaces_dir("in_errors", "out_errors"),
       section="interfaces"),
    _t("netguard_interface_discards_total", "counter",
       "Discarded packets (ifIn/OutDiscards).",
       ("interface", "direction"), _interfaces_dir("in_discards", "out_discards"),
       section="interfaces"),
    # Optics and radio.
    _t("netguard_optical_rx_power_dbm", "gauge",
       "Transceiver receive power.", ("sensor",), _optical("rx_dbm"), section="optical"),
    _t("netguard_optical_tx_power_dbm", "gauge",
       "Transceiver transmit power.", ("sensor",), _optical("tx_dbm"), section="optical"),
    _t("netguard_optical_rx_threshold_dbm", "gauge",
       "The target's configured optical receive thresholds (kind default or override), "
       "by level: low (raise), low_clear (clear), down.", ("level",), _rx_thresholds,
       section="optical"),
    _t("netguard_radio_signal_dbm", "gauge",
       "Wireless received signal strength.", (), _radio("signal_dbm"), section="radio"),
    _t("netguard_radio_noise_dbm", "gauge",
       "Wireless noise floor.", (), _radio("noise_dbm"), section="radio"),
    _t("netguard_radio_snr_db", "gauge",
       "Wireless signal-to-noise ratio in dB.", (), _radio("snr_db"), section="radio"),
    # 5G cabin UPS.
    _t("netguard_ups_battery_status", "gauge",
       "UPS battery status (state set: 1 for the current status).",
       ("status",), _ups_battery_status, section="ups"),
    _t("netguard_ups_on_battery", "gauge",
       "1 if the UPS output runs on battery.", (), _ups("on_battery"), section="ups"),
    _t("netguard_ups_battery_charge_ratio", "gauge",
       "Estimated battery charge, 0..1.", (), _ups("charge_percent", 0.01), section="ups"),
    _t("netguard_ups_battery_runtime_seconds", "gauge",
       "Estimated runtime left on battery.", (), _ups("minutes_remaining", 60.0), section="ups"),
    _t("netguard_ups_on_battery_seconds", "gauge",
       "Time since the UPS switched to battery (0 on mains).", (), _ups("seconds_on_battery"),
       section="ups"),
    _t("netguard_ups_input_voltage_volts", "gauge",
       "UPS input line voltage.", (), _ups("input_voltage"), section="ups"),
    _t("netguard_ups_battery_temperature_celsius", "gauge",
       "UPS battery temperature.", (), _ups("temperature_celsius"), section="ups"),
    # PON.
    _t("netguard_pon_onus_online", "gauge",
       "ONUs online on the PON port.", ("port",), _pon("onus_online"), section="pon"),
    _t("netguard_pon_onus", "gauge",
       "ONUs provisioned on the PON port.", ("port",), _pon("onus_total"), section="pon"),
    _t("netguard_pon_onu_rx_power_dbm", "gauge",
       "ONU receive power.", ("port", "onu"), _onu_rx, section="pon"),
    # Tickets.
    _g("netguard_tickets_open", "gauge",
       "Open tickets.", ("category", "severity"), _tickets_open, section="tickets"),
    _g("netguard_tickets_overdue", "gauge",
       "Open tickets past their SLA.", ("category", "severity"), _tickets_overdue,
       section="tickets"),
    # Door sensors and alerts.
    _g("netguard_door_events_total", "counter",
       "Door-sensor events ingested, by type.", ("type",), _door_events, section="iot"),
    _g("netguard_sensors_online", "gauge",
       "Door sensors heard from recently.", (), _iot("sensors_online"), section="iot"),
    _g("netguard_sensors_offline", "gauge",
       "Door sensors silent past the heartbeat timeout.", (), _iot("sensors_offline"),
       section="iot"),
    _g("netguard_sensors_low_battery", "gauge",
       "Door sensors reporting a low battery.", (), _iot("sensors_low_battery"), section="iot"),
    _g("netguard_door_event_duplicates_total", "counter",
       "Redelivered MQTT messages recognised and dropped.", (), _iot("duplicates"), section="iot"),
    _g("netguard_alerts_open", "gauge",
       "Door alerts not yet resolved, by type and community.", ("type", "community"), _alerts_open,
       section="iot"),
    _g("netguard_alert_deliveries_total", "counter",
       "Alert notifications delivered, by notifier.", ("notifier",),
       _deliveries("delivered_by"), section="iot"),
    _g("netguard_alert_delivery_failures_total", "counter",
       "Alert notifications given up on after retries, by notifier.", ("notifier",),
       _deliveries("failed_by"), section="iot"),
    _g("netguard_alert_send_errors_total", "counter",
       "Alert messages whose send failed (error answer, exception or timeout); retried.",
       (), _iot("delivery_send_errors"), section="iot"),
    _g("netguard_alert_deliveries_refused_total", "counter",
       "Alert notifications a channel refused outright (e.g. a community name that cannot "
       "be an MQTT topic).", (), _iot("deliveries_refused"), section="iot"),
    _g("netguard_outbox_pending", "gauge",
       "Alert notifications waiting for delivery.", (), _iot("outbox_pending"), section="iot"),
    _g("netguard_dead_letters_total", "counter",
       "MQTT messages set aside as undecodable or unknown, by reason.", ("reason",), _dead_letters,
       section="iot"),
    _g("netguard_payload_field_errors_total", "counter",
       "Invalid optional fields dropped from accepted MQTT messages, by field.", ("field",),
       _field_errors, section="iot"),
    _g("netguard_mqtt_enabled", "gauge",
       "1 if the MQTT intake is configured (iot.mqtt.enabled), else 0.", (),
       _iot("mqtt_enabled"), section="iot"),
    _g("netguard_iot_store_failures_total", "counter",
       "Door-event batches the store refused as a whole (unreachable, disk full, read-only); "
       "the intake then holds their acknowledgements.", (), _iot("store_failures"),
       section="iot"),
    _g("netguard_mqtt_connected", "gauge",
       "1 while connected to the MQTT broker.", (), _iot("mqtt_connected"), section="iot"),
    _g("netguard_mqtt_connect_failures_total", "counter",
       "Failed attempts to connect to the MQTT broker (refused, unreachable, TLS or "
       "authentication failure).", (), _iot("mqtt_connect_failures"), section="iot"),
    # SNMP traps (only with daemon.trap_listen).
    _g("netguard_traps_received_total", "counter",
       "SNMP traps accepted by the receiver, by type.", ("type",), _traps("received"),
       section="traps"),
    _g("netguard_traps_decoded_total", "counter",
       "SNMP traps matched to a target (which is then re-polled), by type.", ("type",),
       _traps("decoded"), section="traps"),
    _g("netguard_traps_rejected_total", "counter",
       "SNMP traps set aside, by type and reason (unmatched, malformed).",
       ("type", "reason"), _traps_rejected, section="traps"),
    _g("netguard_audit_anchor_sequence", "gauge",
       "The event log's head sequence number as last anchored outside the database, by chain.",
       ("chain",), _anchor_sequence, section="iot"),
    _g("netguard_audit_anchor_timestamp_seconds", "gauge",
       "Unix time of the last anchor pass (heads anchored, or found unchanged).", (),
       _anchor_time, section="iot"),
    _g("netguard_audit_anchor_failures_total", "counter",
       "Anchor passes that failed (store unreadable, anchor file not writable).", (),
       _iot("audit_anchor_failures"), section="iot"),
    # The daemon itself.
    _g("netguard_polls_total", "counter",
       "Polls finished, by result.", ("result",), _polls, section="daemon"),
    _g("netguard_scheduler_overruns_total", "counter",
       "Polls skipped because the previous poll of the target was still running.",
       (), _daemon("overruns"), section="daemon"),
    _g("netguard_scheduler_misfires_total", "counter",
       "Polls that started later than the misfire grace time (they still ran, once).",
       (), _daemon("misfires"), section="daemon"),
    _g("netguard_sweep_errors_total", "counter",
       "Periodic sweeps that failed.", (), _daemon("sweep_errors"), section="daemon"),
    _g("netguard_scheduler_running", "gauge",
       "1 while the poll scheduler runs.", (), _daemon("scheduler_running"), section="daemon"),
    _g("netguard_config_reloads_total", "counter",
       "Configuration reloads (SIGHUP), by result.", ("result",), _config_reloads,
       section="daemon"),
    _g("netguard_config_last_reload_successful", "gauge",
       "1 if the last configuration reload succeeded (or none was tried), else 0.",
       (), _daemon("config_last_reload_successful"), section="daemon"),
    _g("netguard_config_last_reload_success_timestamp_seconds", "gauge",
       "When the configuration last loaded successfully (at start or on reload), Unix time.",
       (), _daemon("config_last_reload_success"), section="daemon"),
    _g("netguard_fault_event_backlog", "gauge",
       "Fault events waiting for the ticket store (it refused or could not be reached).",
       (), _daemon("fault_event_backlog"), section="daemon"),
    _g("netguard_fault_event_journal", "gauge",
       "Fault events of the backlog spilled to the journal file (memory bound reached, or "
       "left at the last shutdown).", (), _daemon("fault_event_journal"), section="daemon"),
    _g("netguard_fault_events_dropped_total", "counter",
       "Fault events dropped because the journal was full or could not be written.",
       (), _daemon("fault_events_dropped"), section="daemon"),
    _g("netguard_fault_events_rejected_total", "counter",
       "Fault events set aside after the ticket store kept refusing their content "
       "(never for a store-wide error).", (), _daemon("fault_events_rejected"),
       section="daemon"),
    _g("netguard_fault_writer_errors_total", "counter",
       "Fault-event deliveries to the ticket store that failed unexpectedly (logged with a "
       "traceback and retried).", (), _daemon("fault_writer_errors"), section="daemon"),
    _g("netguard_store_write_failures_total", "counter",
       "Fault-event writes the store refused as a whole (read-only, disk full, "
       "unreachable, timed out).", (), _daemon("store_write_failures"), section="daemon"),
    _g("netguard_store_refusing_writes", "gauge",
       "1 while the store refuses fault-event writes (events wait in the backlog).",
       (), _daemon("store_refusing_writes"), section="daemon"),
    _g("netguard_clock_steps_total", "counter",
       "Steps of the wall clock (beyond daemon.clock_step_threshold_seconds) seen against "
       "the monotonic clock, by direction.", ("direction",), _clock_steps, section="daemon"),
    _g("netguard_ack_links_total", "counter",
       "Requests to acknowledgement links (/ack/<token>), by outcome.", ("outcome",),
       _ack_links, section="daemon"),
    # Scale-out (only with cluster.enabled).
    _g("netguard_cluster_members", "gauge",
       "Live members of the cluster as this instance last saw them (0 while it is fenced).",
       (), _cluster("members"), section="daemon"),
    _g("netguard_cluster_owned_targets", "gauge",
       "Targets this instance owns and polls.", (), _cluster("owned_targets"),
       section="daemon"),
    _g("netguard_cluster_leader", "gauge",
       "1 while this instance leads the cluster (runs the ticket and sensor sweeps).",
       (), _cluster("leader"), section="daemon"),
    _g("netguard_cluster_stale_writes_refused_total", "counter",
       "Writes refused because their cluster epoch was stale (fenced or paused meanwhile), "
       "by write.", ("write",), _stale_writes, section="daemon"),
    _g("netguard_ticket_notifications_total", "counter",
       "Ticket messages queued, by route and event.", ("route", "event"),
       _ticket_notifications, section="daemon"),
    _g("netguard_ticket_notify_failures_total", "counter",
       "Ticket notifier passes that failed (retried).", (),
       _daemon("ticket_notify_failures"), section="daemon"),
    _g("netguard_alertmanager_webhooks_total", "counter",
       "Posts to the Alertmanager webhook (/alertmanager/webhook), by outcome.",
       ("outcome",), _alertmanager_webhooks, section="daemon"),
)
