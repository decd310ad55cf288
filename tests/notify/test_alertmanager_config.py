"""The shipped Alertmanager config, checked by the real ``amtool``, and its wiring to
Prometheus and netguard (the end-to-end run is tests/notify/test_alertmanager_e2e.py)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml

from netguard.daemon.amhook import PATH
from netguard.daemon.config import MetricsConfig
from tests.daemon.promql import RULES_DIR, require

REPO = Path(__file__).resolve().parents[2]
SHIPPED = REPO / "config" / "alertmanager" / "alertmanager.yml"
PROMETHEUS = REPO / "config" / "prometheus" / "prometheus.yml"


def _config() -> dict[str, object]:
    data = yaml.safe_load(SHIPPED.read_text())
    assert isinstance(data, dict)
    return data


def test_amtool_accepts_the_shipped_config() -> None:
    result = subprocess.run([require("amtool"), "check-config", str(SHIPPED)],
                            capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_prometheus_sends_its_alerts_to_alertmanager() -> None:
    alerting = yaml.safe_load(PROMETHEUS.read_text())["alerting"]
    [manager] = alerting["alertmanagers"]
    assert manager["static_configs"] == [{"targets": ["127.0.0.1:9093"]}]


def test_every_receiver_is_netguards_webhook_with_a_token_file() -> None:
    config = _config()
    default_listen = MetricsConfig().listen
    receivers = config["receivers"]
    assert isinstance(receivers, list)
    for receiver in receivers:
        [hook] = receiver["webhook_configs"]
        assert hook["url"] == f"http://{default_listen}{PATH}"
        assert hook["send_resolved"] is True
        auth = hook["http_config"]["authorization"]
        # From a file, never inline in a config that is copied around.
        assert set(auth) == {"type", "credentials_file"}
        assert auth["type"] == "Bearer"


@pytest.mark.parametrize("severity", sorted({
    rule["labels"]["severity"]
    for path in RULES_DIR.glob("*.yml")
    for group in yaml.safe_load(path.read_text())["groups"]
    for rule in group["rules"] if "alert" in rule}))
def test_each_rule_severity_has_its_own_route(severity: str) -> None:
    routes = _config()["route"]["routes"]  # type: ignore[index]
    matched = [r for r in routes
               if any(severity in m and m.startswith("severity") for m in r["matchers"])]
    assert len(matched) == 1, severity
    # Repeats come after netguard's default dedupe window (1 h), or they are dropped.
    assert matched[0]["repeat_interval"] not in ("1h", "30m", "15m")


def test_critical_alerts_inhibit_lesser_ones_on_the_same_target() -> None:
    rules = _config()["inhibit_rules"]
    assert isinstance(rules, list)
    [rule] = [r for r in rules if r["equal"] == ["target"]]
    assert 'severity="critical"' in rule["source_matchers"]
    # A source without a target would "equal" every target-less alert.
    assert 'target=~".+"' in rule["source_matchers"]
    assert rule["target_matchers"] == ['severity=~"major|minor|warning"']
