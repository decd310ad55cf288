"""The systemd unit is valid and its stop timeout covers netguard's graceful shutdown."""

from __future__ import annotations

import configparser
import subprocess
import sys
from pathlib import Path

from netguard.cli.common import EXIT_CONFIG, EXIT_SCHEMA
from netguard.daemon.config import DaemonConfig
from tests.support.tools import require_tool

REPO = Path(__file__).resolve().parents[2]
UNIT = REPO / "config" / "systemd" / "netguard.service"
NETGUARD = Path(sys.executable).parent / "netguard"


def _service_section() -> dict[str, list[str]]:
    values: dict[str, list[str]] = {}
    section = ""
    for raw in UNIT.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("["):
            section = line
            continue
        if section == "[Service]":
            key, _, value = line.partition("=")
            values.setdefault(key, []).append(value)
    return values


def test_unit_is_hardened_and_stops_after_the_shutdown_timeout() -> None:
    service = _service_section()
    assert service["User"] == ["netguard"]
    for key, value in {"NoNewPrivileges": "yes", "ProtectSystem": "strict",
                       "PrivateTmp": "yes", "Restart": "on-failure"}.items():
        assert service[key] == [value], key
    assert "/var/lib/netguard" in service["ReadWritePaths"][0]
    # Reload validates first (a broken edit fails `systemctl reload` visibly), then sends
    # SIGHUP, which netguard handles as a reload instead of its default action (exit).
    assert len(service["ExecReload"]) == 2
    assert "check-config" in service["ExecReload"][0]
    assert service["ExecReload"][1] == "/bin/kill -HUP $MAINPID"
    assert "SIGHUP" in (REPO / "netguard" / "daemon" / "signals.py").read_text()
    assert any(" run --config " in v for v in service["ExecStart"])
    stop = float(service["TimeoutStopSec"][0])
    assert stop > DaemonConfig().shutdown_timeout_seconds


def test_unit_uses_notify_and_the_watchdog_and_does_not_restart_what_restarts_cannot_fix(
) -> None:
    service = _service_section()
    # netguard.daemon.sdnotify sends READY=1, WATCHDOG=1 and STOPPING=1.
    assert service["Type"] == ["notify"]
    assert service["NotifyAccess"] == ["main"]
    assert float(service["WatchdogSec"][0]) >= 10  # pings go out every half of it
    assert "AF_UNIX" in service["RestrictAddressFamilies"][0].split()  # the notify socket
    assert service["RestartPreventExitStatus"][0].split() == [str(EXIT_CONFIG),
                                                              str(EXIT_SCHEMA)]


@require_tool("systemd-analyze")
def test_systemd_analyze_verify(tmp_path: Path) -> None:
    unit = tmp_path / "netguard.service"
    unit.write_text(UNIT.read_text().replace("/opt/netguard/.venv/bin/netguard", str(NETGUARD)))
    result = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True,
                            text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    assert "Unknown key" not in result.stderr


def test_unit_parses_as_ini() -> None:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.read_string(UNIT.read_text())
    assert parser.has_section("Install")
    assert parser["Install"]["WantedBy"] == "multi-user.target"
