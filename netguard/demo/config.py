"""The demo's netguard configuration, generated as data.

Short poll intervals, one-poll hysteresis and a short ticket hold time make every scripted
fault open and resolve within a minute. The same data is written to
``<demo dir>/netguard.yaml`` so other ``netguard`` commands can read the demo's store.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

from netguard.config import Settings, settings_from_data
from netguard.demo.fleet import COMMUNITIES, FLEET, SITE_CRITICALITY, FleetTarget

POLL_SECONDS = 2.0
POLL_TIMEOUT_SECONDS = 1.5
HEARTBEAT_TIMEOUT_SECONDS = 12.0
SINK_NOTIFIER = "demo-webhook"
# The network duty group's WeCom robot, played by the sink (it answers as WeCom does).
NETOPS_NOTIFIER = "demo-netops-wecom"
NETOPS_ROUTE = "network-duty"
# A root ticket waits this long for the sites behind it: one grouped message.
GROUP_WAIT_SECONDS = 10.0


@dataclass(frozen=True, slots=True)
class AgentAddress:
    """Where a simulated agent answers."""

    address: str
    community: str


@dataclass(frozen=True, slots=True)
class DemoEndpoints:
    """The addresses the demo's pieces listen on."""

    agents: Mapping[str, AgentAddress]
    mqtt_host: str
    mqtt_port: int
    mqtt_protocol: str
    sink_url: str
    metrics_port: int | None


def build_config_data(directory: Path, endpoints: DemoEndpoints,
                      fleet: Sequence[FleetTarget] = FLEET,
                      profiles: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The demo configuration as plain data (what ``netguard.yaml`` holds).

    Args:
        directory: The demo folder (store and files live here).
        endpoints: Where the simulated agents, broker, sink and metrics are.
        fleet: The simulated targets.
        profiles: Probe profile per target id (the kind's default when absent).
    """
    targets: list[dict[str, Any]] = []
    for target in fleet:
        agent = endpoints.agents[target.id]
        entry: dict[str, Any] = {
            "id": target.id,
            "kind": target.kind,
            "address": agent.address,
            "site": target.site,
            "snmp": {"version": "2c", "community": agent.community},
            "interval_seconds": POLL_SECONDS,
            "timeout_seconds": POLL_TIMEOUT_SECONDS,
            "retries": 0,
            "thresholds": {"raise_after": 1, "clear_after": 1},
            "labels": {"demo": "true"},
        }
        if target.upstream:
            entry["upstream"] = target.upstream
        if profiles and target.id in profiles:
            entry["profile"] = profiles[target.id]
        targets.append(entry)
    served = endpoints.metrics_port is not None
    base_url = f"http://127.0.0.1:{endpoints.metrics_port or 9108}"
    sink = urlsplit(endpoints.sink_url)
    data: dict[str, Any] = {
        "targets": targets,
        "store": {"path": str(directory / "netguard.db"), "auto_upgrade": True},
        "tickets": {
            "id_prefix": "DEMO",
            "resolve_hold_seconds": 4.0,
            "reopen_window_seconds": 30.0,
            "sites": [{"id": site, "criticality": criticality}
                      for site, criticality in SITE_CRITICALITY.items()],
        },
        "iot": {
            "mqtt": {
                "enabled": True,
                "host": endpoints.mqtt_host,
                "port": endpoints.mqtt_port,
                "protocol": endpoints.mqtt_protocol,
                "client_id": "netguard-demo",
                "keepalive_seconds": 10,
                "reconnect_max_seconds": 2.0,
            },
            "rules": {"heartbeat_timeout_seconds": HEARTBEAT_TIMEOUT_SECONDS,
                      "battery_low_percent": 20, "battery_clear_percent": 30,
                      "renotify_minutes": [1.0]},
            "notifiers": [{"name": SINK_NOTIFIER, "type": "webhook",
                           "url": endpoints.sink_url, "timeout_seconds": 2.0,
                           "rate_per_minute": 600},
                          {"name": NETOPS_NOTIFIER, "type": "wecom",
                           "url": f"{sink.scheme}://{sink.netloc}/wecom?key=demo",
                           "timeout_seconds": 2.0, "rate_per_minute": 600}],
            "routes": [{"community": c, "notifiers": [SINK_NOTIFIER],
                        "recipients": [{"name": f"{c} community staff"}]} for c in COMMUNITIES],
        },
        "notifications": {
            "routes": [{"name": NETOPS_ROUTE, "notifiers": [NETOPS_NOTIFIER],
                        "recipients": [{"name": "网络值班", "wecom": "netops-duty"}],
                        "group_wait_seconds": GROUP_WAIT_SECONDS,
                        "group_interval_seconds": 10.0, "repeat_interval_seconds": 0}],
            # Fresh secrets per run: the config file is readable by its owner only.
            "alertmanager": {"enabled": served, "token": secrets.token_urlsafe(24)},
        },
        "ack_links": {"enabled": served, "key": secrets.token_urlsafe(24),
                      "base_url": base_url, "ttl_hours": 1},
        "metrics": {"enabled": served,
                    "listen": f"127.0.0.1:{endpoints.metrics_port or 9108}"},
        "logging": {"level": "WARNING", "format": "human"},
        "daemon": {"shutdown_timeout_seconds": 5.0, "poll_jitter_seconds": 0.2,
                   "misfire_grace_seconds": 5.0, "sweep_interval_seconds": 1.0},
    }
    return data


def write_config(path: Path, data: Mapping[str, Any]) -> Settings:
    """Validate ``data`` and write it as YAML to ``path``; return the settings.

    Raises:
        ConfigError: The generated configuration does not validate (a demo bug).
    """
    settings = settings_from_data(data, source=str(path))
    header = ("# Generated by `netguard demo`; rewritten on each run.\n"
              "# Point other netguard commands at it: --config " + str(path) + "\n")
    path.write_text(header + yaml.safe_dump(dict(data), sort_keys=False), encoding="utf-8")
    # It may hold the --mqtt-url password.
    path.chmod(0o600)
    return settings
