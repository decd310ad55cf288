"""``netguard run`` end to end (issue 5, acceptance 1 and 2).

One daemon subprocess polls snmpsim agents of every kind (and one dead address), opens and
auto-resolves tickets, ingests door-sensor events from a private Mosquitto, and is scraped
by a real Prometheus. Every dashboard query and every alert rule must parse and return
data from that Prometheus; ``promtool check metrics`` must be clean; SIGTERM must end the
daemon with exit code 0 within the timeout; a restart must duplicate no ticket or alert.
"""

from __future__ import annotations

import asyncio
import json
import signal
import sqlite3
import subprocess
import urllib.parse
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from paho.mqtt import publish

from netguard.config import settings_from_data
from netguard.iot import registry
from netguard.sim import SnmpSim, build_agent, free_udp_port
from netguard.store import Store, upgrade
from tests.daemon.promql import (
    RULES_DIR,
    Expression,
    cluster_only,
    dashboard_expressions,
    data_expressions,
    require,
    rule_expressions,
    variable_queries,
)
from tests.daemon.runproc import http_get as _get
from tests.daemon.runproc import json_log
from tests.daemon.runproc import metric as _metric
from tests.daemon.runproc import run_netguard as _daemon
from tests.support.ports import free_tcp_port
from tests.support.procs import ServerProcess
from tests.support.servers import Broker
from tests.support.wait import wait_until

pytestmark = [pytest.mark.integration, pytest.mark.slow,
              pytest.mark.xdist_group("heavy")]  # CPU-heavy: one at a time (docs/testing.md)

FAST = {"raise_after": 1, "clear_after": 1}
SHUTDOWN_TIMEOUT = 8.0
AGENTS = [
    build_agent("fiber-1", "fiber"),
    build_agent("radio-ubnt", "wireless", vendor="ubiquiti"),
    build_agent("radio-cambium", "wireless", vendor="cambium"),
    build_agent("line-1", "private_line"),
    build_agent("cabin-1", "cabin_5g"),
    build_agent("pon-1", "pon", onus=4),
]


def _query(prom: str, expr: str) -> list[dict[str, Any]]:
    status, body = _get(f"{prom}/api/v1/query?" + urllib.parse.urlencode({"query": expr}))
    assert status == 200, f"{expr}: HTTP {status} {body[:300]!r}"
    return list(json.loads(body)["data"]["result"])


def _rows(db: Path, sql: str) -> list[tuple[Any, ...]]:
    conn = sqlite3.connect(db, timeout=30)
    try:
        return conn.execute(sql).fetchall()
    finally:
        conn.close()


async def _register_household(settings_data: dict[str, Any]) -> None:
    settings = settings_from_data(settings_data)
    await upgrade(settings.store)
    now = datetime.now(UTC)
    async with Store(settings.store) as store, store.session() as session:
        await registry.add_household(session, "hh-1", "east", start=now - timedelta(days=1),
                                     end=now + timedelta(days=13), now=now)
        await registry.add_sensor(session, "door-1", "hh-1", now=now)
        await session.commit()


@pytest.fixture
def sim(tmp_path: Path) -> Iterator[SnmpSim]:
    with SnmpSim(AGENTS, tmp_path / "snmpsim") as s:
        yield s


def _config(tmp_path: Path, sim: SnmpSim, broker: Broker, metrics_port: int) -> dict[str, Any]:
    targets = [sim.target(a.name, site=f"site-{a.kind}", interval_seconds=1, thresholds=FAST)
               for a in AGENTS]
    targets.append({"id": "dead-1", "kind": "fiber", "site": "site-fiber",
                    "address": "127.0.0.1:9", "interval_seconds": 1, "timeout_seconds": 0.3,
                    "retries": 0, "thresholds": FAST})
    return {
        "targets": targets,
        "store": {"path": str(tmp_path / "netguard.db")},
        "tickets": {"resolve_hold_seconds": 0},
        "iot": {"mqtt": {"enabled": True, "host": broker.host, "port": broker.port,
                         "client_id": "netguard-run-test"},
                # A named notifier, so the delivery series (by notifier) exist.
                "notifiers": [{"name": "console", "type": "console"}]},
        "metrics": {"listen": f"127.0.0.1:{metrics_port}"},
        "logging": {"level": "INFO", "format": "json"},
        "daemon": {"sweep_interval_seconds": 0.5, "poll_jitter_seconds": 0.2,
                   # A trap receiver, so the trap series (and their rule) have data.
                   "trap_listen": f"127.0.0.1:{free_udp_port()}",
                   "shutdown_timeout_seconds": SHUTDOWN_TIMEOUT},
    }


def _prometheus(tmp_path: Path, metrics_port: int) -> tuple[ServerProcess, str]:
    port = free_tcp_port()
    conf = tmp_path / "prometheus.yml"
    conf.write_text(yaml.safe_dump({
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(p) for p in sorted(RULES_DIR.glob("*.yml"))],
        "scrape_configs": [{"job_name": "netguard",
                            "static_configs": [{"targets": [f"127.0.0.1:{metrics_port}"]}]}],
    }))
    base = f"http://127.0.0.1:{port}"
    proc = ServerProcess(["prometheus", f"--config.file={conf}",
                          f"--storage.tsdb.path={tmp_path / 'tsdb'}",
                          f"--web.listen-address=127.0.0.1:{port}", "--log.level=warn"],
                         tmp_path / "prometheus.log",
                         ready=lambda: _get(f"{base}/-/ready")[0] == 200)
    return proc, base


def _publish(broker: Broker, topic: str, payload: bytes) -> None:
    publish.single(topic, payload, qos=1, hostname=broker.host, port=broker.port)


def _stop(proc: ServerProcess) -> int | None:
    return proc.stop(signal.SIGTERM, timeout=SHUTDOWN_TIMEOUT + 5)


def test_netguard_run_end_to_end(tmp_path: Path, sim: SnmpSim, broker: Broker) -> None:
    # Skips locally without them; fails under CI=true.
    require("prometheus")
    require("promtool")
    metrics_port = free_tcp_port()
    base = f"http://127.0.0.1:{metrics_port}"
    data = _config(tmp_path, sim, broker, metrics_port)
    config = tmp_path / "netguard.yaml"
    config.write_text(yaml.safe_dump(data))
    db = tmp_path / "netguard.db"
    asyncio.run(_register_household(data))

    daemon = _daemon(tmp_path, config, metrics_port, "run1").start(timeout=60)
    prom, prom_base = _prometheus(tmp_path, metrics_port)
    prom.start(timeout=60)
    try:
        # Polling on schedule: every target answered (or not) several times.
        wait_until(lambda: (_metric(base, "netguard_polls_total", 'result="success"') or 0)
                   >= 3 * len(AGENTS), timeout=60, what="polls of every agent")
        wait_until(lambda: _get(f"{base}/readyz")[0] == 200, timeout=30, what="/readyz 200")

        # A dead agent opens a ticket.
        wait_until(lambda: _rows(db, "SELECT id FROM ticket WHERE target = 'dead-1' "
                                     "AND state = 'open'"), timeout=30, what="dead-1 ticket")
        # Low rx power opens a ticket; restoring it auto-resolves the ticket.
        sim.set_knob("fiber-1", "rx_dbm", -30.0)
        wait_until(lambda: _rows(db, "SELECT id FROM ticket WHERE target = 'fiber-1' "
                                     "AND state = 'open'"), timeout=30, what="fiber-1 ticket")
        sim.set_knob("fiber-1", "rx_dbm", -8.5)
        wait_until(lambda: _rows(db, "SELECT id FROM ticket WHERE target = 'fiber-1' "
                                     "AND state = 'resolved'"), timeout=30,
                   what="fiber-1 ticket auto-resolved")
        # A cabin on battery: a fault and the UPS series move.
        sim.set_knob("cabin-1", "output_source", 5)
        wait_until(lambda: _metric(base, "netguard_ups_on_battery",
                                   'target="cabin-1",kind="cabin_5g",site="site-cabin_5g"') == 1,
                   timeout=30, what="cabin on battery")

        # MQTT intake: a door opens at a quarantined home; a malformed payload is set aside.
        _publish(broker, "netguard/sensors/door-1/event",
                 json.dumps({"v": 1, "sensor": "door-1", "seq": 1, "boot": "b1",
                             "event": "open"}).encode())
        _publish(broker, "netguard/sensors/door-1/event", b"{not json")
        wait_until(lambda: _rows(db, "SELECT id FROM iot_alert WHERE sensor_id = 'door-1'"),
                   timeout=30, what="door alert")
        wait_until(lambda: _metric(base, "netguard_door_events_total", 'type="open"') == 1,
                   timeout=30, what="door event counted")
        wait_until(lambda: (_metric(base, "netguard_dead_letters_total", 'reason="malformed"')
                            or 0) >= 1, timeout=30, what="malformed payload counted")
        assert _metric(base, "netguard_mqtt_connected") == 1

        # promtool check metrics on the live exposition.
        status, body = _get(f"{base}/metrics")
        assert status == 200
        lint = subprocess.run(["promtool", "check", "metrics"], input=body,
                              capture_output=True, check=False)
        assert lint.returncode == 0, lint.stdout + lint.stderr
        assert lint.stdout.strip() == b""
        assert b"_created" not in body

        # Every dashboard query, variable and rule returns data from the real Prometheus.
        checks: list[Expression] = [*dashboard_expressions(), *variable_queries()]
        for rule in rule_expressions():  # the cluster's: tests/cluster/test_prometheus.py
            checks += [Expression(f"{rule.where} [{part}]", part)
                       for part in data_expressions(rule.expr) if not cluster_only(part)]
        pending = {c.where: c.expr for c in checks}
        assert len(pending) > 80  # every panel, variable and rule, none lost on the way

        def all_have_data() -> bool:
            for where, expr in list(pending.items()):
                if _query(prom_base, expr):
                    del pending[where]
            return not pending

        try:
            wait_until(all_have_data, timeout=90, interval=1.0, what="data for every query")
        except AssertionError:
            raise AssertionError(f"no data for: {json.dumps(pending, indent=1)}") from None
        assert _query(prom_base, 'netguard_target_up{target="dead-1"} == 0')

        # SIGTERM: clean exit within the timeout.
        tickets_before = _rows(db, "SELECT id, fault_key, state FROM ticket ORDER BY id")
        alerts_before = _rows(db, "SELECT id, sensor_id, type FROM iot_alert ORDER BY id")
        events_before = _rows(db, "SELECT count(*) FROM iot_event")
        code = _stop(daemon)
        assert code == 0, daemon.tail()
        log_lines = json_log(daemon)
        assert any(rec["msg"] == "netguard stopped" for rec in log_lines)
        assert not [rec for rec in log_lines if rec["level"] in ("ERROR", "CRITICAL")]
        # Within its shutdown budget, by the daemon's own account (a clock here would
        # measure the machine's load): no poll had to be cancelled, no close timed out.
        assert not [rec for rec in log_lines if rec["msg"] in (
            "cancelled polls still running at shutdown",
            "services did not close within the shutdown timeout")]

        # Restart: carries on, duplicates nothing.
        restarted = _daemon(tmp_path, config, metrics_port, "run2").start(timeout=60)
        try:
            wait_until(lambda: (_metric(base, "netguard_polls_total", 'result="success"') or 0)
                       >= 3 * len(AGENTS), timeout=60, what="polls after restart")
            wait_until(lambda: _metric(base, "netguard_mqtt_connected") == 1, timeout=30,
                       what="MQTT reconnected")
            # The sweep ran at least once and counted the tickets again.
            wait_until(lambda: (_metric(base, "netguard_tickets_open",
                                        'category="fiber",severity="critical"') or 0) >= 1,
                       timeout=30, what="ticket counts after restart")
        finally:
            code = _stop(restarted)
        assert code == 0, restarted.tail()
        tickets_after = _rows(db, "SELECT id, fault_key, state FROM ticket ORDER BY id")
        keys = [key for _id, key, state in tickets_after if state in ("open", "acknowledged")]
        assert len(keys) == len(set(keys)), tickets_after
        assert [t[:2] for t in tickets_after] == [t[:2] for t in tickets_before]
        assert _rows(db, "SELECT id, sensor_id, type FROM iot_alert ORDER BY id") == alerts_before
        assert _rows(db, "SELECT count(*) FROM iot_event") == events_before
    finally:
        prom.stop()
        daemon.stop()
