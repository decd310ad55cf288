"""The root command: version, help, and one error line per failure."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from netguard import __version__

NETGUARD = str(Path(sys.executable).with_name("netguard"))


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([NETGUARD, *args], capture_output=True, text=True, timeout=60,
                          check=False)


def test_version() -> None:
    result = run("--version")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == __version__


def test_no_command_prints_help_listing_every_area() -> None:
    result = run()
    assert result.returncode == 0
    for command in ("check-config", "poll", "run", "demo", "tickets", "db", "households",
                    "sensors", "alerts", "audit"):
        assert command in result.stdout, command


def test_check_config_reports_a_broken_file_with_exit_2(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("targets:\n  - {id: a, kind: fiber, address: h, snmp: {version: 3, "
                   "user: u, auth_protocol: sha999, auth_key: abcdefgh}}\n")
    result = run("check-config", "--config", str(bad))
    assert result.returncode == 2
    assert f"{bad}: invalid configuration" in result.stderr
    assert "targets[0].snmp.auth_protocol: unknown protocol 'sha999'" in result.stderr
    assert "Traceback" not in result.stderr
