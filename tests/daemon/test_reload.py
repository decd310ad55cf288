"""``netguard run`` reloads its configuration on SIGHUP (and only SIGTERM stops it).

A daemon subprocess polls snmpsim agents. A SIGHUP with an edited file adds a target (it
gets polled), removes one (its series leave ``/metrics``) and changes a target's
credentials (it becomes unreachable); a restart-only option is reported, not applied. A
SIGHUP with a broken file is logged, counted, and changes nothing: the daemon stays up and
keeps polling. SIGTERM still ends it with exit code 0.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from netguard.sim import SnmpSim, build_agent
from tests.daemon.runproc import http_get, json_log, metric, run_netguard
from tests.support.ports import free_tcp_port
from tests.support.procs import ServerProcess
from tests.support.wait import wait_until

pytestmark = [pytest.mark.integration]

AGENTS = [build_agent("fib-a", "fiber"), build_agent("fib-b", "fiber"),
          build_agent("fib-c", "fiber")]
SHUTDOWN_TIMEOUT = 8.0
RELOAD_FAILED = "configuration reload failed; keeping the running configuration"
SECRET = "hush-hush-community-42"


@pytest.fixture
def sim(tmp_path: Path) -> Iterator[SnmpSim]:
    with SnmpSim(AGENTS, tmp_path / "snmpsim") as s:
        yield s


def _config(tmp_path: Path, sim: SnmpSim, port: int, targets: list[dict[str, Any]],
            sweep: float = 0.5) -> dict[str, Any]:
    return {
        "targets": targets,
        "store": {"path": str(tmp_path / "netguard.db"), "auto_upgrade": True},
        "metrics": {"listen": f"127.0.0.1:{port}"},
        "logging": {"level": "INFO", "format": "json"},
        "daemon": {"sweep_interval_seconds": sweep, "poll_jitter_seconds": 0.2,
                   "shutdown_timeout_seconds": SHUTDOWN_TIMEOUT},
    }


def _target(sim: SnmpSim, name: str, **extra: Any) -> dict[str, Any]:
    # Target ids differ from the agents' communities: communities are secrets, masked
    # wherever they appear in a log record.
    return sim.target(name, name.replace("fib-", "link-"), interval_seconds=1, **extra)


def _up(base: str, target: str) -> float | None:
    return metric(base, "netguard_target_up", f'target="{target}",kind="fiber",site=""')


def _last_success(base: str, target: str) -> float:
    return metric(base, "netguard_target_last_success_timestamp_seconds",
                  f'target="{target}",kind="fiber",site=""') or 0.0


def _mentions(base: str, target: str) -> bool:
    status, body = http_get(f"{base}/metrics")
    assert status == 200
    return f'target="{target}"'.encode() in body


def _hup(proc: ServerProcess) -> None:
    os.kill(proc.pid, signal.SIGHUP)


def _reloads(base: str, result: str) -> float:
    return metric(base, "netguard_config_reloads_total", f'result="{result}"') or 0.0


def test_sighup_reloads_targets_and_survives_a_broken_config(tmp_path: Path,
                                                             sim: SnmpSim) -> None:
    port = free_tcp_port()
    base = f"http://127.0.0.1:{port}"
    config = tmp_path / "netguard.yaml"
    config.write_text(yaml.safe_dump(_config(
        tmp_path, sim, port, [_target(sim, "fib-a"), _target(sim, "fib-b")])))
    daemon = run_netguard(tmp_path, config, port, "reload").start(timeout=60)
    try:
        wait_until(lambda: _up(base, "link-a") == 1 and _up(base, "link-b") == 1, timeout=30,
                   what="link-a and link-b polled")
        assert not _mentions(base, "link-c")
        assert metric(base, "netguard_config_last_reload_successful") == 1
        started_ok = metric(base, "netguard_config_last_reload_success_timestamp_seconds")
        assert started_ok

        # Edit: add fib-c, drop fib-a, give fib-b a wrong community, change a
        # restart-only option.
        wrong_b = _target(sim, "fib-b", timeout_seconds=0.3, retries=0)
        wrong_b["snmp"]["community"] = "not-fib-b"
        config.write_text(yaml.safe_dump(_config(
            tmp_path, sim, port, [wrong_b, _target(sim, "fib-c")], sweep=0.7)))
        _hup(daemon)
        wait_until(lambda: _reloads(base, "success") == 1, timeout=30, what="reload counted")
        wait_until(lambda: _up(base, "link-c") == 1, timeout=30, what="link-c polled")
        wait_until(lambda: not _mentions(base, "link-a"), timeout=30,
                   what="link-a gone from /metrics")
        wait_until(lambda: _up(base, "link-b") == 0, timeout=30,
                   what="link-b polled with its new (wrong) credentials")
        reloaded_ok = metric(base, "netguard_config_last_reload_success_timestamp_seconds")
        assert reloaded_ok is not None
        assert reloaded_ok > started_ok
        records = json_log(daemon)
        assert any(r["msg"] == "configuration reloaded" and r["targets_added"] == "link-c"
                   and r["targets_removed"] == "link-a" and r["targets_changed"] == "link-b"
                   for r in records), records[-10:]
        warnings = [r for r in records
                    if r["msg"] == "configuration changes need a restart; running values kept"]
        assert [w["options"] for w in warnings] == ["daemon.sweep_interval_seconds"]

        # A broken edit: logged with the file and the problem path, counted, not applied.
        broken = _config(tmp_path, sim, port, [_target(sim, "fib-c"),
                                               _target(sim, "fib-a")])
        broken["targets"][0]["interval_seconds"] = -5
        broken["targets"][1]["snmp"]["community"] = SECRET
        config.write_text(yaml.safe_dump(broken))
        before = _last_success(base, "link-c")
        _hup(daemon)
        wait_until(lambda: _reloads(base, "error") == 1, timeout=30, what="failed reload counted")
        assert metric(base, "netguard_config_last_reload_successful") == 0
        assert metric(base, "netguard_config_last_reload_success_timestamp_seconds") == \
            reloaded_ok
        failed = [r for r in json_log(daemon) if r["msg"] == RELOAD_FAILED]
        assert len(failed) == 1
        assert failed[0]["level"] == "ERROR"
        assert failed[0]["config"] == str(config)
        assert "targets[0].interval_seconds" in failed[0]["problems"]
        assert SECRET not in daemon.log.read_text()
        # Still running on the previous configuration: fib-c keeps being polled, fib-a
        # stays removed, fib-b is still polled (and still failing).
        wait_until(lambda: _last_success(base, "link-c") > before, timeout=30,
                   what="link-c polled after the failed reload")
        assert daemon.proc is not None
        assert daemon.proc.poll() is None
        assert not _mentions(base, "link-a")
        assert _up(base, "link-b") == 0

        # SIGTERM still stops it cleanly.
        code = daemon.stop(signal.SIGTERM, timeout=SHUTDOWN_TIMEOUT + 5)
        assert code == 0, daemon.tail()
        records = json_log(daemon)
        assert any(r["msg"] == "netguard stopped" for r in records)
        errors = [r for r in records if r["level"] in ("ERROR", "CRITICAL")]
        assert [r["msg"] for r in errors] == [RELOAD_FAILED]
    finally:
        daemon.stop()
