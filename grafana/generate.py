"""Generate netguard's Grafana dashboards as JSON (dashboards as code, no extra dependency).

Run ``python grafana/generate.py`` after editing; the JSON under ``grafana/dashboards/`` is
checked in, and a test fails when it differs from what this script produces. Every
dashboard has a fixed uid, so links and provisioning stay stable. Every panel, query and
variable uses the ``datasource`` template variable (any Prometheus; the provisioned
``netguard-prometheus`` by default), so the boards also import into an existing Grafana.
Targets Grafana 11.x (``schemaVersion`` 41, as grafana-foundation-sdk 11.6 writes it).
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
SCHEMA_VERSION = 41  # Grafana 11.6
OUT_DIR = Path(__file__).resolve().parent / "dashboards"
GRID_WIDTH = 24

F = 'kind=~"$kind",site=~"$site"'
FT = 'target=~"$target",kind=~"$kind",site=~"$site"'
S = 'site=~"$site"'
C = 'category=~"$category"'
Q = 'community=~"$community"'
RATE = "$__rate_interval"


def shared(selector: str) -> str:
    """One copy of a gauge that every instance of a cluster exports alike.

    Ticket and door-alert counts are read from the one shared database, so each
    instance exports the same estate-wide number; a plain ``sum`` would count it once
    per instance (docs/scale-out.md). Per-target series and each instance's own counters
    are summed as they are.
    """
    return f"max without (instance) ({selector})"


def leaders(selector: str) -> str:
    """The leader's copy of a gauge every instance exports from its own view, else any.

    Sensor counts come from each instance's in-memory view of the sensors. Only the
    leader runs the offline-sensor sweep, so only its view has the sensors that went
    silent; the others would still count them online. A single instance (no cluster)
    has no leader series: its own value is taken.
    """
    led = f"{selector} and on (job, instance) netguard_cluster_leader == 1"
    return f"({shared(led)} or {shared(selector)})"


def moved_rate(selector: str) -> str:
    """The rate of a per-target counter, once per target across a hand-over.

    When a target moves to another instance (a cluster member came or went), the old
    owner's series stays in the rate window for a while beside the new owner's: without
    ``instance`` they are one.
    """
    return f"max without (instance) (rate({selector}[{RATE}]))"


OPEN = shared(f"netguard_tickets_open{{{C}}}")
OVERDUE = shared(f"netguard_tickets_overdue{{{C}}}")
ONLINE = leaders("netguard_sensors_online")
OFFLINE = leaders("netguard_sensors_offline")
LOW_BATTERY = leaders("netguard_sensors_low_battery")
ALERTS = shared(f"netguard_alerts_open{{{Q}}}")


@dataclass
class Query:
    """One PromQL query of a panel."""

    expr: str
    legend: str = ""
    instant: bool = False


@dataclass
class Panel:
    """A panel; ``width``/``height`` in grid units, placed left to right, top to bottom."""

    title: str
    queries: list[Query]
    type: str = "timeseries"
    unit: str = "short"
    width: int = 12
    height: int = 8
    description: str = ""
    options: dict[str, Any] = field(default_factory=dict)


@dataclass
class Row:
    """A titled row of panels."""

    title: str
    panels: list[Panel]


def datasource_variable() -> dict[str, Any]:
    """The ``datasource`` variable: pick any Prometheus; Grafana's default when unset."""
    return {
        "name": "datasource",
        "label": "Data source",
        "type": "datasource",
        "query": "prometheus",
        "regex": "",
        "refresh": 1,
        "multi": False,
        "includeAll": False,
        "current": {},
        "options": [],
        "hide": 0,
    }


def variable(name: str, label: str, metric: str, selector: str = "") -> dict[str, Any]:
    """A multi-select query variable over a label's values, "All" meaning any value."""
    query = f"label_values({metric}{{{selector}}}, {name})" if selector \
        else f"label_values({metric}, {name})"
    return {
        "name": name,
        "label": label,
        "type": "query",
        "datasource": DATASOURCE,
        "query": {"query": query, "refId": f"netguard-{name}"},
        "refresh": 2,
        "sort": 1,
        "multi": True,
        "includeAll": True,
        "allValue": ".*",
        "current": {"selected": True, "text": ["All"], "value": ["$__all"]},
        "options": [],
        "hide": 0,
    }


def _panel_json(panel: Panel, panel_id: int, x: int, y: int) -> dict[str, Any]:
    targets = []
    for i, query in enumerate(panel.queries):
        target: dict[str, Any] = {
            "refId": chr(ord("A") + i),
            "datasource": DATASOURCE,
            "expr": query.expr,
            "legendFormat": query.legend or "__auto",
            "range": not query.instant,
            "instant": query.instant,
        }
        if panel.type == "table":
            target["format"] = "table"
        targets.append(target)
    options: dict[str, Any] = {
        "timeseries": {"legend": {"displayMode": "table", "placement": "right",
                                  "calcs": ["lastNotNull", "max"], "showLegend": True},
                       "tooltip": {"mode": "multi", "sort": "desc"}},
        "stat": {"reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
                 "colorMode": "background", "graphMode": "area", "textMode": "auto"},
        "table": {"showHeader": True, "cellHeight": "sm"},
    }.get(panel.type, {})
    options = {**options, **panel.options}
    out: dict[str, Any] = {
        "id": panel_id,
        "type": panel.type,
        "title": panel.title,
        "datasource": DATASOURCE,
        "gridPos": {"h": panel.height, "w": panel.width, "x": x, "y": y},
        "targets": targets,
        "fieldConfig": {"defaults": {"unit": panel.unit}, "overrides": []},
        "options": options,
    }
    if panel.description:
        out["description"] = panel.description
    if panel.type == "table":
        out["transformations"] = [{"id": "merge", "options": {}},
                                  {"id": "organize", "options": {
                                      "excludeByName": {"Time": True, "__name__": True,
                                                        "job": True, "instance": True}}}]
    return out


def dashboard(uid: str, title: str, description: str, rows: list[Row],
              variables: list[dict[str, Any]], *, links: bool = True) -> dict[str, Any]:
    """A whole dashboard; panels flow in rows of 24 grid units."""
    panels: list[dict[str, Any]] = []
    panel_id = 1
    y = 0
    for row in rows:
        panels.append({"id": panel_id, "type": "row", "title": row.title, "collapsed": False,
                       "gridPos": {"h": 1, "w": GRID_WIDTH, "x": 0, "y": y}, "panels": []})
        panel_id += 1
        y += 1
        x = 0
        row_height = 0
        for panel in row.panels:
            if x + panel.width > GRID_WIDTH:
                x = 0
                y += row_height
                row_height = 0
            panels.append(_panel_json(panel, panel_id, x, y))
            panel_id += 1
            x += panel.width
            row_height = max(row_height, panel.height)
        y += row_height
    return {
        "uid": uid,
        "title": title,
        "description": description,
        "tags": ["netguard"],
        "editable": False,
        "graphTooltip": 1,
        "schemaVersion": SCHEMA_VERSION,
        "version": 1,
        "refresh": "30s",
        "time": {"from": "now-6h", "to": "now"},
        "timepicker": {},
        "timezone": "browser",
        "annotations": {"list": []},
        "links": [{"title": "netguard", "type": "dashboards", "tags": ["netguard"],
                   "asDropdown": True, "includeVars": False, "keepTime": True}] if links else [],
        "templating": {"list": [datasource_variable(), *variables]},
        "panels": panels,
    }


def overview() -> dict[str, Any]:
    """Every link by kind and site, and what is down now."""
    stat = {"type": "stat", "width": 4, "height": 4}
    return dashboard(
        "netguard-overview", "netguard / Network overview",
        "Every polled link by kind and site; what is down now; netguard's own health.",
        [
            Row("Now", [
                Panel("Targets", [Query(f"count(netguard_target_up{{{F}}})")], **stat),
                Panel("Up", [Query(f'sum(netguard_target_state{{{F},state="up"}})')], **stat),
                Panel("Degraded", [Query(f'sum(netguard_target_state{{{F},state="degraded"}})')],
                      **stat),
                Panel("Down or unreachable",
                      [Query(f'sum(netguard_target_state{{{F},state=~"down|unreachable"}})')],
                      **stat),
                Panel("Open tickets", [Query(f"sum({shared('netguard_tickets_open')})")], **stat),
                Panel("Poll overruns (1h)",
                      [Query("sum(increase(netguard_scheduler_overruns_total[1h]))")], **stat),
            ]),
            Row("Links", [
                Panel("Down now", [Query(
                    f'netguard_target_state{{{F},state=~"down|unreachable"}} == 1',
                    instant=True)], type="table", width=12,
                    description="Targets assessed down (agent answers, link down) or "
                                "unreachable (no SNMP answer)."),
                Panel("Links by kind and site", [
                    Query(f"sum by (kind, site) (netguard_target_up{{{F}}})", "up", True),
                    Query(f"count by (kind, site) (netguard_target_up{{{F}}})", "total", True),
                ], type="table", width=12),
                Panel("Targets by state", [Query(
                    f"sum by (state) (netguard_target_state{{{F}}})", "{{state}}")]),
                Panel("Traffic by kind", [Query(
                    "sum by (kind) ("
                    + moved_rate(f"netguard_interface_received_bytes_total{{{F}}}") + " + "
                    + moved_rate(f"netguard_interface_transmitted_bytes_total{{{F}}}") + ")",
                    "{{kind}}")], unit="Bps"),
                Panel("Busiest interfaces", [Query(
                    f"topk(10, max by (target, interface) "
                    f"(netguard_interface_utilisation_ratio{{{F}}}))",
                    "{{target}} {{interface}}")], unit="percentunit"),
                Panel("Slowest polls", [Query(
                    f"topk(10, netguard_target_poll_duration_seconds{{{F}}})", "{{target}}")],
                    unit="s"),
            ]),
            Row("netguard itself", [
                Panel("Polls by result", [Query(
                    f"sum by (result) (rate(netguard_polls_total[{RATE}]))", "{{result}}")],
                    unit="ops", width=8),
                Panel("Scheduler overruns and misfires", [
                    Query(f"sum(rate(netguard_scheduler_overruns_total[{RATE}]))", "overruns"),
                    Query(f"sum(rate(netguard_scheduler_misfires_total[{RATE}]))", "misfires"),
                ], unit="ops", width=8),
                Panel("Sweep errors", [Query(
                    f"sum(increase(netguard_sweep_errors_total[{RATE}]))", "errors")], width=8),
            ]),
        ],
        [variable("kind", "Kind", "netguard_target_up"),
         variable("site", "Site", "netguard_target_up", 'kind=~"$kind"')],
    )


def link_detail() -> dict[str, Any]:
    """One link (or several), templated by target, kind and site."""
    stat = {"type": "stat", "width": 6, "height": 4}
    return dashboard(
        "netguard-link-detail", "netguard / Link detail",
        "Health, traffic, optics and radio of the selected links.",
        [
            Row("Health", [
                Panel("Agent answers", [Query(f"netguard_target_up{{{FT}}}", "{{target}}")],
                      **stat),
                Panel("State", [Query(f"netguard_target_state{{{FT}}} == 1",
                                      "{{target}}: {{state}}")], **stat),
                Panel("Since last answer", [Query(
                    f"time() - netguard_target_last_success_timestamp_seconds{{{FT}}}",
                    "{{target}}")], unit="s", **stat),
                Panel("Poll duration", [Query(
                    f"netguard_target_poll_duration_seconds{{{FT}}}", "{{target}}")],
                    unit="s", **stat),
            ]),
            Row("Interfaces", [
                Panel("Traffic", [
                    Query(moved_rate(f"netguard_interface_received_bytes_total{{{FT}}}"),
                          "{{target}} {{interface}} in"),
                    Query("-" + moved_rate(f"netguard_interface_transmitted_bytes_total{{{FT}}}"),
                          "{{target}} {{interface}} out"),
                ], unit="Bps", description="Received above the axis, transmitted below."),
                Panel("Utilisation", [Query(f"netguard_interface_utilisation_ratio{{{FT}}}",
                                            "{{target}} {{interface}}")], unit="percentunit"),
                Panel("Errors and discards", [
                    Query(moved_rate(f"netguard_interface_errors_total{{{FT}}}"),
                          "{{target}} {{interface}} errors {{direction}}"),
                    Query(moved_rate(f"netguard_interface_discards_total{{{FT}}}"),
                          "{{target}} {{interface}} discards {{direction}}"),
                ], unit="pps"),
                Panel("Operational status", [Query(f"netguard_interface_oper_up{{{FT}}}",
                                                   "{{target}} {{interface}}")]),
                Panel("Speed", [Query(f"netguard_interface_speed_bytes_per_second{{{FT}}}",
                                      "{{target}} {{interface}}")], unit="Bps", width=24,
                      height=6),
            ]),
            Row("Optics and radio", [
                Panel("Optical power", [
                    Query(f"netguard_optical_rx_power_dbm{{{FT}}}", "{{target}} {{sensor}} rx"),
                    Query(f"netguard_optical_tx_power_dbm{{{FT}}}", "{{target}} {{sensor}} tx"),
                ], unit="dBm"),
                Panel("Radio signal and noise", [
                    Query(f"netguard_radio_signal_dbm{{{FT}}}", "{{target}} signal"),
                    Query(f"netguard_radio_noise_dbm{{{FT}}}", "{{target}} noise"),
                ], unit="dBm"),
                Panel("Radio SNR", [Query(f"netguard_radio_snr_db{{{FT}}}", "{{target}}")],
                      unit="dB"),
            ]),
        ],
        [variable("kind", "Kind", "netguard_target_up"),
         variable("site", "Site", "netguard_target_up", 'kind=~"$kind"'),
         variable("target", "Target", "netguard_target_up", 'kind=~"$kind",site=~"$site"')],
    )


def emergency_sites() -> dict[str, Any]:
    """5G cabins on UPS power and PON stations."""
    stat = {"type": "stat", "width": 6, "height": 4}
    return dashboard(
        "netguard-emergency-sites", "netguard / Emergency sites",
        "5G cabins (UPS power) and PON stations (ONUs) at emergency sites.",
        [
            Row("5G cabins", [
                Panel("Cabins on battery", [Query(f"sum(netguard_ups_on_battery{{{S}}})")],
                      **stat),
                Panel("Lowest runtime left", [Query(
                    f"min(netguard_ups_battery_runtime_seconds{{{S}}})")], unit="s", **stat),
                Panel("Lowest charge", [Query(
                    f"min(netguard_ups_battery_charge_ratio{{{S}}})")], unit="percentunit",
                    **stat),
                Panel("Battery status", [Query(
                    f"netguard_ups_battery_status{{{S}}} == 1", "{{target}}: {{status}}")],
                    **stat),
                Panel("Runtime left", [Query(
                    f"netguard_ups_battery_runtime_seconds{{{S}}}", "{{site}} {{target}}")],
                    unit="s"),
                Panel("Battery charge", [Query(
                    f"netguard_ups_battery_charge_ratio{{{S}}}", "{{site}} {{target}}")],
                    unit="percentunit"),
                Panel("Time on battery", [Query(
                    f"netguard_ups_on_battery_seconds{{{S}}}", "{{site}} {{target}}")],
                    unit="s", width=8),
                Panel("Input voltage", [Query(
                    f"netguard_ups_input_voltage_volts{{{S}}}", "{{site}} {{target}}")],
                    unit="volt", width=8),
                Panel("Battery temperature", [Query(
                    f"netguard_ups_battery_temperature_celsius{{{S}}}", "{{site}} {{target}}")],
                    unit="celsius", width=8),
            ]),
            Row("PON stations", [
                Panel("ONUs online", [Query(f"sum(netguard_pon_onus_online{{{S}}})")], **stat),
                Panel("ONUs provisioned", [Query(f"sum(netguard_pon_onus{{{S}}})")], **stat),
                Panel("ONUs offline", [Query(
                    f"sum(netguard_pon_onus{{{S}}}) - sum(netguard_pon_onus_online{{{S}}})")],
                    **stat),
                Panel("Weakest ONU", [Query(
                    f"min(netguard_pon_onu_rx_power_dbm{{{S}}})")], unit="dBm", **stat),
                Panel("Offline ONUs by port", [Query(
                    f"netguard_pon_onus{{{S}}} - netguard_pon_onus_online{{{S}}}",
                    "{{target}} {{port}}")]),
                Panel("Weakest ONU rx power by port", [Query(
                    f"min by (target, port) (netguard_pon_onu_rx_power_dbm{{{S}}})",
                    "{{target}} {{port}}")], unit="dBm"),
            ]),
        ],
        [variable("site", "Site", "netguard_target_up", 'kind=~"cabin_5g|pon"')],
    )


def tickets() -> dict[str, Any]:
    """Open and overdue fault tickets."""
    stat = {"type": "stat", "width": 8, "height": 4}
    return dashboard(
        "netguard-tickets", "netguard / Tickets",
        "Fault tickets by category (link kind) and severity, and SLA breaches.",
        [
            Row("Now", [
                Panel("Open", [Query(f"sum({OPEN})")], **stat),
                Panel("Critical open", [Query(
                    "sum(" + shared(f'netguard_tickets_open{{{C},severity="critical"}}') + ")")],
                    **stat),
                Panel("Overdue", [Query(f"sum({OVERDUE})")], **stat),
            ]),
            Row("Trends", [
                Panel("Open by severity", [Query(
                    f"sum by (severity) ({OPEN})", "{{severity}}")]),
                Panel("Open by category", [Query(
                    f"sum by (category) ({OPEN})", "{{category}}")]),
                Panel("Overdue by category", [Query(
                    f"sum by (category) ({OVERDUE})", "{{category}}")]),
                Panel("Open now", [Query(
                    f"sum by (category, severity) ({OPEN})",
                    instant=True)], type="table"),
            ]),
        ],
        [variable("category", "Category", "netguard_tickets_open")],
    )


def quarantine() -> dict[str, Any]:
    """Home-quarantine door sensors and their alerts."""
    stat = {"type": "stat", "width": 4, "height": 4}
    return dashboard(
        "netguard-quarantine", "netguard / Quarantine sensors and alerts",
        "Door sensors at quarantined homes, door events, alerts and their delivery.",
        [
            Row("Now", [
                Panel("Sensors online", [Query(f"sum({ONLINE})")], **stat),
                Panel("Sensors offline", [Query(f"sum({OFFLINE})")], **stat),
                Panel("Low battery", [Query(f"sum({LOW_BATTERY})")], **stat),
                Panel("Alerts open", [Query(f"sum({ALERTS})")], **stat),
                Panel("Outbox pending", [Query("sum(netguard_outbox_pending)")], **stat),
                Panel("MQTT connected", [Query("min(netguard_mqtt_connected)")], **stat),
            ]),
            Row("Events and alerts", [
                Panel("Door events by type", [Query(
                    f"sum by (type) (rate(netguard_door_events_total[{RATE}]))", "{{type}}")],
                    unit="ops"),
                Panel("Sensors", [
                    Query(f"sum({ONLINE})", "online"),
                    Query(f"sum({OFFLINE})", "offline"),
                    Query(f"sum({LOW_BATTERY})", "low battery"),
                ]),
                Panel("Alert delivery by notifier", [
                    Query(f"sum by (notifier) (rate(netguard_alert_deliveries_total[{RATE}]))",
                          "{{notifier}} delivered"),
                    Query("sum by (notifier) "
                          f"(rate(netguard_alert_delivery_failures_total[{RATE}]))",
                          "{{notifier}} failed"),
                ], unit="ops"),
                Panel("Dead letters by reason", [Query(
                    f"sum by (reason) (increase(netguard_dead_letters_total[{RATE}]))",
                    "{{reason}}")], description="MQTT messages set aside as undecodable, "
                    "oversized or from unknown sensors."),
                Panel("Open alerts by type and community", [Query(
                    f"sum by (type, community) ({ALERTS})",
                    "{{type}} {{community}}")]),
                Panel("Redelivered messages dropped", [Query(
                    f"sum(increase(netguard_door_event_duplicates_total[{RATE}]))", "duplicates")]),
            ]),
        ],
        [variable("community", "Community", "netguard_alerts_open")],
    )


DASHBOARDS = {
    "overview.json": overview,
    "link-detail.json": link_detail,
    "emergency-sites.json": emergency_sites,
    "tickets.json": tickets,
    "quarantine.json": quarantine,
}


def render_all() -> dict[str, str]:
    """File name -> JSON text of every dashboard."""
    return {name: json.dumps(build(), indent=2, ensure_ascii=False) + "\n"
            for name, build in DASHBOARDS.items()}


def main() -> int:
    """Write the dashboards; ``--check`` only reports whether the files are current."""
    check = "--check" in sys.argv[1:]
    stale = []
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    for name, text in render_all().items():
        path = OUT_DIR / name
        if path.exists() and path.read_text(encoding="utf-8") == text:
            continue
        stale.append(name)
        if not check:
            path.write_text(text, encoding="utf-8")
    if check and stale:
        print(f"stale dashboards: {', '.join(stale)}; run python grafana/generate.py")
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
