"""The generated demo config validates and round-trips; the live view renders its data."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from rich.console import Console

from netguard.config import load_settings
from netguard.demo.config import AgentAddress, DemoEndpoints, build_config_data, write_config
from netguard.demo.fleet import FLEET, HOUSEHOLDS
from netguard.demo.runner import MqttTarget, door_numbers, parse_mqtt_url
from netguard.demo.timeline import TIMELINE
from netguard.demo.view import (
    DemoSnapshot,
    TargetLine,
    alert_lines,
    netguard_executable,
    next_commands,
    render,
    status_line,
    ticket_counts,
    ticket_news_line,
)
from netguard.errors import ConfigError
from netguard.iot.service import IotSnapshot


def _endpoints() -> DemoEndpoints:
    agents = {t.id: AgentAddress(f"127.0.0.1:{20000 + i}", t.id) for i, t in enumerate(FLEET)}
    return DemoEndpoints(agents, "127.0.0.1", 18830, "3.1.1", "http://127.0.0.1:18000/alerts",
                         19108)


def test_config_validates_and_round_trips(tmp_path: Path) -> None:
    data = build_config_data(tmp_path, _endpoints(), profiles={"wl-lake-camp": "wireless-ubiquiti"})
    settings = write_config(tmp_path / "netguard.yaml", data)
    again = load_settings(tmp_path / "netguard.yaml")
    assert (tmp_path / "netguard.yaml").stat().st_mode & 0o077 == 0
    assert again == settings
    assert settings.store.path == tmp_path / "netguard.db"
    assert settings.iot.mqtt.protocol == "3.1.1"
    assert settings.metrics.listen == "127.0.0.1:19108"
    assert settings.target("wl-lake-camp").profile == "wireless-ubiquiti"
    assert settings.target("fib-east-clinic").upstream == "pl-east-uplink"
    # Every community routes to the sink, and a silent sensor is noticed within the minute.
    assert {r.community for r in settings.iot.routes} == {h.community for h in HOUSEHOLDS}
    silent_at = next(s.at_seconds for s in TIMELINE if s.action == "sensor_silent")
    assert silent_at + settings.iot.rules.heartbeat_timeout_seconds + 5 < 60
    assert max(t.interval_seconds for t in settings.targets) <= 5


def test_config_can_disable_metrics(tmp_path: Path) -> None:
    endpoints = _endpoints()
    data = build_config_data(tmp_path, DemoEndpoints(endpoints.agents, "h", 1, "5", "http://x/",
                                                     None))
    assert data["metrics"]["enabled"] is False


def test_render_shows_targets_counts_and_next_command() -> None:
    snapshot = DemoSnapshot(
        elapsed_seconds=21.0, duration_seconds=60.0,
        targets=(TargetLine("fib-a", "fiber", "hq", "degraded", "rx power -28.0 dBm"),
                 TargetLine("cab-b", "cabin_5g", "east", "unreachable", "timeout",
                            suppressed_by="pl-up"),
                 TargetLine("pl-up", "private_line", "pop", "unreachable", "timeout")),
        tickets_open=3, tickets_resolved=1, tickets_children=2, alerts_open=2,
        alerts_received=4, steps=("east uplink down",), metrics_url="http://127.0.0.1:1/metrics",
        config_path="/tmp/d/netguard.yaml", sink_file="/tmp/d/alerts.jsonl",
        mqtt_url="mqtt://127.0.0.1:2", alerts=("12s  door_open: household hh-1",),
        ticket_news=("30s  DEMO-000003 grouped a child fault: fib-a suppressed",))
    console = Console(record=True, width=140, color_system=None)
    console.print(render(snapshot))
    text = console.export_text()
    assert "21s of 60s" in text
    assert "1 degraded" in text
    assert "2 unreachable" in text
    assert "(upstream pl-up) timeout" in text
    assert "netguard tickets list --config /tmp/d/netguard.yaml" in text
    assert "http://127.0.0.1:1/metrics" in text
    assert "east uplink down" in text
    assert "12s  door_open: household hh-1" in text
    assert "30s  DEMO-000003 grouped a child fault: fib-a suppressed" in text
    assert "child faults grouped under open tickets" in text
    line = status_line(snapshot)
    assert "tickets: 3 open, 1 resolved, 2 child faults grouped under the open ones |" in line
    assert ticket_counts(snapshot) in line
    assert "4 received" in line


def test_printed_executable_is_runnable() -> None:
    exe = netguard_executable()
    if exe == "netguard":
        assert shutil.which("netguard") is not None
    else:
        assert Path(exe).is_absolute()
        assert Path(exe).exists()
    assert next_commands("/d/netguard.yaml", exe)[0] == f"{exe} tickets list --config " \
        "/d/netguard.yaml"


def test_alert_lines_from_netguard_webhook_bodies() -> None:
    body = {"source": "netguard", "alerts": [
        {"type": "door_open", "reason": "raised", "community": "riverside",
         "household": "hh-riverside-02", "sensor": "door-riverside-02",
         "recipients": ["riverside community staff"]},
        {"type": "offline", "reason": "renotify", "community": "old-town",
         "household": "hh-old-town-01", "sensor": "door-old-town-01"}]}
    assert alert_lines(body) == [
        "door_open: household hh-riverside-02 in riverside, sensor door-riverside-02 "
        "-> riverside community staff",
        "offline (renotify): household hh-old-town-01 in old-town, sensor door-old-town-01 "
        "-> staff"]
    assert alert_lines("plain text") == ['"plain text"']
    assert alert_lines({"msgtype": "text"}) == ['{"msgtype": "text"}']
    # A robot's markdown message and a ticket message of the webhook: their titles.
    assert alert_lines({"msgtype": "markdown", "markdown": {
        "content": "### 【紧急】DEMO-000006 pl-east-uplink\uff1a中断\n- 站点\uff1aeast"}}) == [
        "WeCom: 【紧急】DEMO-000006 pl-east-uplink\uff1a中断"]
    assert alert_lines({"alerts": [{"subject": "ticket", "text": "\n### 【重要】DEMO-1 x\n- y"}]}
                       ) == ["【重要】DEMO-1 x"]


def test_parse_mqtt_url() -> None:
    assert parse_mqtt_url("mqtt://broker.lan") == MqttTarget("broker.lan", 1883)
    assert parse_mqtt_url("mqtt://demo:p%40ss@10.0.0.5:1884") == MqttTarget(
        "10.0.0.5", 1884, "demo", "p@ss")
    for bad in ("http://x", "mqtt://", "mqtt://h:notaport"):
        with pytest.raises(ConfigError, match="--mqtt-url"):
            parse_mqtt_url(bad)


@pytest.mark.parametrize("bad", ["http://demo:s3cret-pw@h", "mqtt://demo:s3cret-pw@h:port"])
def test_bad_mqtt_url_error_hides_the_password(bad: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse_mqtt_url(bad)
    assert "s3cret-pw" not in str(err.value)
    assert "demo:***@h" in str(err.value)


def test_ticket_news_lines() -> None:
    assert ticket_news_line("DEMO-000001", "opened", "ignored", "fib-a rx power low") == (
        "DEMO-000001 opened: fib-a rx power low")
    assert ticket_news_line("DEMO-000003", "child_attached", "fib-b/if:1/down suppressed "
                            "under this ticket", "uplink down") == (
        "DEMO-000003 grouped a child fault: fib-b/if:1/down suppressed under this ticket")
    assert ticket_news_line("DEMO-000004", "grouped", "grouped under DEMO-000003", "x") == (
        "DEMO-000004 grouped: grouped under DEMO-000003")
    assert ticket_news_line("DEMO-000001", "resolved", "fault stayed clear for 10s", "x") == (
        "DEMO-000001 resolved: fault stayed clear for 10s")
    for quiet in ("repeat", "flap", "commented", "overdue", "child_cleared"):
        assert ticket_news_line("DEMO-000001", quiet, "m", "s") is None


def test_door_numbers_come_from_the_daemon_snapshot() -> None:
    assert door_numbers(None) == (0, 0)
    snapshot = IotSnapshot(alerts_open={("door_open", "east"): 2, ("offline", "west"): 1},
                           door_events={"open": 4, "close": 3},
                           dead_letters={"malformed": 1})
    # Dead letters are stored in the event log too, as the view's "door events" counted.
    assert door_numbers(snapshot) == (3, 8)
