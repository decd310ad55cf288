"""Metrics over snapshots: values, units, label sets, and the two renderers agreeing."""

from __future__ import annotations

import dataclasses
import subprocess
from datetime import UTC, datetime

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from netguard.iot.service import IotSnapshot
from netguard.metrics import (
    SPECS,
    DaemonStats,
    MetricsSnapshot,
    Renderer,
    SnapshotCollector,
    render,
    runtime_registry,
)
from netguard.metrics.exposition import _COMMON, _number, pieces
from netguard.metrics.specs import OPTIONAL_TARGET_SECTIONS
from netguard.probes.state import ExportFamily, TargetStatus
from netguard.probes.traps import TrapStats
from netguard.tickets.domain import TicketCounts
from tests.daemon.fakes import KINDS, estate, status_for, ups
from tests.daemon.promql import require

UPTIME = ExportFamily("acme_radio_uptime_seconds", "gauge", "Radio uptime (acmeUptime).")
RETRIES = ExportFamily("acme_radio_retries_total", "counter", 'ARQ retries, "air" \\ side.')


def _labelled(base: MetricsSnapshot) -> dict[str, TargetStatus]:
    # Two radios export a vendor gauge and counter; targets carry configured labels.
    targets = dict(base.targets)
    for tid in ("wireless-00001", "wireless-00006"):
        targets[tid] = dataclasses.replace(
            targets[tid], exported=((UPTIME, 3600.5), (RETRIES, 12.0)),
            labels=(("owner", 'noc "east"'), ("region", "north")))
    targets["fiber-00000"] = dataclasses.replace(targets["fiber-00000"],
                                                 labels=(("region", "south"),), decode_errors=3)
    return targets


def _snapshot() -> MetricsSnapshot:
    base = estate(10)
    return dataclasses.replace(
        base,
        targets=_labelled(base),
        tickets=TicketCounts(open={("fiber", "critical"): 2}, overdue={("pon", "major"): 1}),
        iot=IotSnapshot(mqtt_connected=True, mqtt_connect_failures=3, store_failures=2,
                        door_events={"open": 5, "close": 4},
                        sensors_online=7, sensors_offline=1, sensors_low_battery=2,
                        alerts_open={("door_open", "east"): 1}, deliveries_delivered=3,
                        deliveries_failed=1, dead_letters={"malformed": 2}, duplicates=4,
                        outbox_pending=5, delivery_send_errors=6, deliveries_refused=2,
                        mqtt_enabled=True,
                        delivered_by={"wecom-east": 3, "webhook": 0},
                        failed_by={"wecom-east": 1, "webhook": 0},
                        audit_anchor_sequence={"netguard": 41},
                        audit_anchor_time=1_780_000_000.0, audit_anchor_failures=2,
                        payload_field_errors={"battery": 3, "other": 1}),
        traps=TrapStats(received={"linkDown": 3, "other": 1}, decoded={"linkDown": 2},
                        rejected={("linkDown", "unmatched"): 1, ("other", "unmatched"): 1}),
        daemon=DaemonStats(polls={"success": 9, "failure": 1}, overruns=3,
                           scheduler_running=True, fault_writer_errors=2),
    )


def _registry(snapshot: MetricsSnapshot) -> CollectorRegistry:
    registry = CollectorRegistry()
    SnapshotCollector(lambda: snapshot, registry)
    return registry


def _samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, frozenset(s.labels.items()))] = s.value
    return out


def test_per_target_values_and_base_units() -> None:
    snap = _snapshot()
    reg = _registry(snap)
    labels = {"target": "cabin_5g-00003", "kind": "cabin_5g", "site": "site-3"}
    assert reg.get_sample_value("netguard_target_up", labels) == 1.0
    assert reg.get_sample_value("netguard_ups_battery_charge_ratio", labels) == pytest.approx(0.95)
    assert reg.get_sample_value("netguard_ups_battery_runtime_seconds", labels) == 42 * 60
    assert reg.get_sample_value("netguard_ups_battery_status", {**labels, "status": "normal"}) == 1
    assert reg.get_sample_value("netguard_ups_battery_status", {**labels, "status": "low"}) == 0
    uplink = {"target": "fiber-00000", "kind": "fiber", "site": "site-0", "interface": "uplink"}
    assert reg.get_sample_value("netguard_interface_oper_up", uplink) == 1
    assert reg.get_sample_value("netguard_interface_speed_bytes_per_second", uplink) == 125e6
    assert reg.get_sample_value("netguard_interface_utilisation_ratio", uplink) == 0.5
    fiber = {"target": "fiber-00000", "kind": "fiber", "site": "site-0"}
    assert reg.get_sample_value("netguard_optical_rx_power_dbm", {**fiber, "sensor": "xe-1"}) \
        == -12.5
    assert reg.get_sample_value("netguard_interface_received_bytes_total",
                                {**fiber, "interface": "uplink"}) == 1000
    assert reg.get_sample_value("netguard_interface_errors_total",
                                {**fiber, "interface": "uplink", "direction": "out"}) == 2
    pon = {"target": "pon-00004", "kind": "pon", "site": "site-4"}
    assert reg.get_sample_value("netguard_pon_onus_online", {**pon, "port": "0/1/1"}) == 3
    assert reg.get_sample_value("netguard_pon_onu_rx_power_dbm",
                                {**pon, "port": "0/1/0", "onu": "3"}) == -20.0
    assert reg.get_sample_value("netguard_target_last_success_timestamp_seconds", fiber) == \
        datetime(2026, 1, 1, tzinfo=UTC).timestamp()
    assert reg.get_sample_value("netguard_target_walk_timeouts_total", fiber) == 2
    assert reg.get_sample_value("netguard_optical_rx_threshold_dbm",
                                {**fiber, "level": "low"}) == -25.0
    assert reg.get_sample_value("netguard_optical_rx_threshold_dbm",
                                {**fiber, "level": "down"}) == -30.0
    # Thresholds appear only beside optical readings.
    assert reg.get_sample_value("netguard_optical_rx_threshold_dbm",
                                {**pon, "level": "low"}) is None


def test_target_labels_and_profile_families() -> None:
    reg = _registry(_snapshot())
    radio = {"target": "wireless-00001", "kind": "wireless", "site": "site-1"}
    fiber = {"target": "fiber-00000", "kind": "fiber", "site": "site-0"}
    assert reg.get_sample_value("netguard_target_info",
                                {**radio, "owner": 'noc "east"', "region": "north"}) == 1
    assert reg.get_sample_value("netguard_target_info", {**fiber, "region": "south"}) == 1
    # A target without labels still has its info series, so every join finds it.
    pon = {"target": "pon-00004", "kind": "pon", "site": "site-4"}
    assert reg.get_sample_value("netguard_target_info", pon) == 1
    assert reg.get_sample_value("acme_radio_uptime_seconds", radio) == 3600.5
    assert reg.get_sample_value("acme_radio_retries_total", radio) == 12
    assert reg.get_sample_value("acme_radio_uptime_seconds", fiber) is None
    assert reg.get_sample_value("netguard_target_decode_errors_total", fiber) == 3
    assert reg.get_sample_value("netguard_target_decode_errors_total", pon) == 0
    text = render(_snapshot()).decode()
    assert "# TYPE acme_radio_retries_total counter\n" in text
    assert '# HELP acme_radio_retries_total ARQ retries, "air" \\\\ side.\n' in text
    assert text.count("# TYPE acme_radio_uptime_seconds gauge") == 1


def test_a_family_declared_twice_keeps_its_first_declaration() -> None:
    # Statuses from a library before a reload may declare a name otherwise for a while.
    snap = _snapshot()
    targets = dict(snap.targets)
    other = ExportFamily("acme_radio_uptime_seconds", "counter", "Something else.")
    targets["wireless-00006"] = dataclasses.replace(targets["wireless-00006"],
                                                    exported=((other, 1.0),))
    snap = dataclasses.replace(snap, targets=targets)
    fast = _samples(render(snap).decode())
    assert fast == _samples(generate_latest(_registry(snap)).decode())
    uptime = [labels for name, labels in fast if name == "acme_radio_uptime_seconds"]
    assert uptime == [frozenset({"target": "wireless-00001", "kind": "wireless",
                                 "site": "site-1"}.items())]


def test_global_values() -> None:
    reg = _registry(_snapshot())
    assert reg.get_sample_value("netguard_tickets_open",
                                {"category": "fiber", "severity": "critical"}) == 2
    assert reg.get_sample_value("netguard_tickets_overdue",
                                {"category": "pon", "severity": "major"}) == 1
    assert reg.get_sample_value("netguard_door_events_total", {"type": "open"}) == 5
    assert reg.get_sample_value("netguard_sensors_low_battery") == 2
    assert reg.get_sample_value("netguard_alert_delivery_failures_total",
                                {"notifier": "wecom-east"}) == 1
    assert reg.get_sample_value("netguard_alert_deliveries_total",
                                {"notifier": "wecom-east"}) == 3
    assert reg.get_sample_value("netguard_alert_deliveries_total", {"notifier": "webhook"}) == 0
    assert reg.get_sample_value("netguard_mqtt_enabled") == 1
    assert reg.get_sample_value("netguard_traps_received_total", {"type": "linkDown"}) == 3
    assert reg.get_sample_value("netguard_traps_decoded_total", {"type": "linkDown"}) == 2
    assert reg.get_sample_value("netguard_traps_rejected_total",
                                {"type": "other", "reason": "unmatched"}) == 1
    # Every trap type is exported, zeros included, once a receiver listens.
    assert reg.get_sample_value("netguard_traps_decoded_total", {"type": "coldStart"}) == 0
    assert reg.get_sample_value("netguard_traps_rejected_total",
                                {"type": "unknown", "reason": "malformed"}) == 0
    assert reg.get_sample_value("netguard_alerts_open",
                                {"type": "door_open", "community": "east"}) == 1
    assert reg.get_sample_value("netguard_dead_letters_total", {"reason": "malformed"}) == 2
    assert reg.get_sample_value("netguard_payload_field_errors_total",
                                {"field": "battery"}) == 3
    assert reg.get_sample_value("netguard_door_event_duplicates_total") == 4
    assert reg.get_sample_value("netguard_outbox_pending") == 5
    assert reg.get_sample_value("netguard_alert_send_errors_total") == 6
    assert reg.get_sample_value("netguard_alert_deliveries_refused_total") == 2
    # Zeros are exported too, so dashboards show 0 rather than "no data".
    assert reg.get_sample_value("netguard_door_events_total", {"type": "tamper"}) == 0
    assert reg.get_sample_value("netguard_tickets_open",
                                {"category": "wireless", "severity": "minor"}) == 0
    assert reg.get_sample_value("netguard_mqtt_connected") == 1
    assert reg.get_sample_value("netguard_mqtt_connect_failures_total") == 3
    assert reg.get_sample_value("netguard_audit_anchor_sequence", {"chain": "netguard"}) == 41
    assert reg.get_sample_value("netguard_audit_anchor_timestamp_seconds") == 1_780_000_000.0
    assert reg.get_sample_value("netguard_audit_anchor_failures_total") == 2
    assert reg.get_sample_value("netguard_iot_store_failures_total") == 2
    assert reg.get_sample_value("netguard_scheduler_overruns_total") == 3
    assert reg.get_sample_value("netguard_fault_writer_errors_total") == 2
    assert reg.get_sample_value("netguard_polls_total", {"result": "failure"}) == 1
    assert reg.get_sample_value("netguard_targets", {"state": "up"}) == 10
    assert reg.get_sample_value("netguard_targets", {"state": "down"}) == 0
    info = [s for f in reg.collect() if f.name == "netguard_build_info" for s in f.samples]
    assert info[0].labels["version"]


def test_no_created_series() -> None:
    text = render(_snapshot()).decode()
    assert "_created" not in text
    assert "_created" not in generate_latest(_registry(_snapshot())).decode()


def test_fast_renderer_agrees_with_collector() -> None:
    snap = _snapshot()
    fast = _samples(render(snap).decode())
    reference = _samples(generate_latest(_registry(snap)).decode())
    assert fast == reference
    assert len(fast) > 200


def test_cache_reuses_unchanged_and_refreshes_changed_targets() -> None:
    snap = _snapshot()
    renderer = Renderer()
    first = renderer.render(snap)
    assert renderer.render(snap) == first
    targets = dict(snap.targets)
    targets["cabin_5g-00003"] = status_for("cabin_5g", 3, "site-3", state="down",
                                           reachable=False, ups=ups(on_battery=True))
    del targets["fiber-00000"]
    changed = _samples(renderer.render(dataclasses.replace(snap, targets=targets)).decode())
    key = frozenset({"target": "cabin_5g-00003", "kind": "cabin_5g", "site": "site-3"}.items())
    assert changed[("netguard_target_up", key)] == 0
    assert changed[("netguard_ups_on_battery", key)] == 1
    assert not any(("target", "fiber-00000") in labels for _, labels in changed)


def test_pieces_stream_the_same_exposition_in_bounded_joins() -> None:
    snap = estate(300)
    renderer = Renderer(runtime_registry())
    parts = renderer.render_parts(snap)
    streamed = list(pieces(parts, size=4096))
    assert len(streamed) > 10
    # Each piece ends at the first part boundary past the size, so none is much larger.
    largest_part = max(len(part) for family in parts for part in family)
    assert all(len(piece) < 4096 + largest_part for piece in streamed)
    body = b"".join(streamed)
    assert sum(len(part) for family in parts for part in family) == len(body)
    without_runtime = Renderer()
    assert _samples(body.decode()).keys() >= _samples(without_runtime.render(snap).decode()).keys()
    assert b"".join(pieces(without_runtime.render_parts(snap))) == without_runtime.render(snap)


def test_cache_holds_only_the_latest_snapshots_targets() -> None:
    snap = estate(50)
    renderer = Renderer()
    renderer.render(snap)
    targets = {tid: dataclasses.replace(status) for tid, status in list(snap.targets.items())[:20]}
    renderer.render(dataclasses.replace(snap, targets=targets))
    cached = renderer._entries  # the cache itself is what this checks
    assert cached.keys() == targets.keys()
    assert all(cached[tid].status is targets[tid] for tid in targets)


def test_label_values_are_escaped() -> None:
    tid = 'we"ird\\id'
    snap = MetricsSnapshot(targets={tid: status_for("private_line", site="line\nbreak")})
    samples = _samples(render(snap).decode())
    key = frozenset({"target": tid, "kind": "private_line", "site": "line\nbreak"}.items())
    assert samples[("netguard_target_up", key)] == 1


def test_no_trap_series_without_a_receiver_and_mqtt_disabled_is_exported() -> None:
    snap = dataclasses.replace(_snapshot(), traps=None,
                               iot=IotSnapshot(mqtt_enabled=False, mqtt_connected=False))
    samples = _samples(render(snap).decode())
    assert not any(name.startswith("netguard_traps_") for name, _ in samples)
    assert samples[("netguard_mqtt_enabled", frozenset())] == 0
    assert samples[("netguard_mqtt_connected", frozenset())] == 0


def test_unknown_state_and_missing_readings() -> None:
    tid = "t1"
    status = status_for("private_line", state="testing", reachable=False,
                        poll_duration_seconds=None, last_success_at=None,
                        ups=ups(battery_status=9))
    snap = MetricsSnapshot(targets={tid: status})
    reg = _registry(snap)
    labels = {"target": tid, "kind": "private_line", "site": ""}
    assert reg.get_sample_value("netguard_ups_battery_status", {**labels, "status": "code-9"}) == 1
    assert reg.get_sample_value("netguard_target_state", {**labels, "state": "testing"}) == 1
    assert reg.get_sample_value("netguard_target_state", {**labels, "state": "up"}) == 0
    assert reg.get_sample_value("netguard_target_poll_duration_seconds", labels) is None
    assert reg.get_sample_value("netguard_target_last_success_timestamp_seconds", labels) is None


def test_every_section_names_what_its_spec_reads() -> None:
    """A spec whose section is empty yields nothing, so skipping it cannot lose samples."""
    emptied = {section: () if section != "radio" and section != "ups" else None
               for section in OPTIONAL_TARGET_SECTIONS}
    for kind in KINDS:
        full = status_for(kind)
        for spec in SPECS:
            if not spec.per_target or spec.section not in OPTIONAL_TARGET_SECTIONS:
                continue
            bare = dataclasses.replace(full, **{spec.section: emptied[spec.section]})
            assert list(spec.read(bare)) == [], (spec.name, kind)
    sections = {spec.section for spec in SPECS if spec.per_target}
    assert sections == OPTIONAL_TARGET_SECTIONS | {"target"}


def test_runtime_collectors_export_process_and_gc_series() -> None:
    text = render(_snapshot(), runtime_registry()).decode()
    samples = _samples(text)
    names = {name for name, _ in samples}
    assert {"process_resident_memory_bytes", "process_cpu_seconds_total",
            "process_open_fds", "process_start_time_seconds"} <= names
    assert any(name.startswith("python_gc_") for name in names)
    assert samples[("process_resident_memory_bytes", frozenset())] > 0
    # The snapshot's own families come first and are unchanged.
    assert text.startswith(render(_snapshot()).decode())


def test_promtool_check_metrics_is_clean() -> None:
    exposition = render(_snapshot(), runtime_registry())
    result = subprocess.run([require("promtool"), "check", "metrics"], input=exposition,
                            capture_output=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == b""
    assert result.stderr.strip() == b""


def test_looked_up_numbers_read_as_the_formatted_ones() -> None:
    values = [0.0, -0.0, 1.0, 7.0, 1023.0, 1024.0, 1_250_000_000.0, 125_000_000.0, 0.5,
              -3.0, 1e15, 1e16, float("nan"), float("inf"), float("-inf")]
    for value in values:
        assert (_COMMON.get(value) or _number(value)) == _number(value), value
    assert all(_number(value) == text for value, text in _COMMON.items())
