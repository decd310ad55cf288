"""``netguard poll`` as an operator runs it: readable summary, JSON, exit codes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from netguard.sim import SnmpSim

pytestmark = pytest.mark.integration

NETGUARD = str(Path(sys.executable).parent / "netguard")


def run(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([NETGUARD, "poll", *args, "--config", str(config)],
                          capture_output=True, text=True, timeout=60, check=False)


@pytest.fixture
def config(sim: SnmpSim, tmp_path: Path) -> Path:
    path = tmp_path / "netguard.yaml"
    raw = [sim.target("cabin_5g-degraded", "cabin-7", site="nanjin-street",
                      thresholds={"raise_after": 1}),
           sim.target("pon-normal", "olt-1"),
           sim.target("fiber-down", "fiber-1", thresholds={"raise_after": 1}),
           {"id": "ghost", "kind": "wireless", "address": "127.0.0.1:9", "timeout_seconds": 0.3,
            "retries": 0, "snmp": {"version": "2c", "community": "public"}}]
    path.write_text(yaml.safe_dump({"targets": raw}))
    return path


def test_readable_summary(config: Path) -> None:
    proc = run(config, "cabin-7")
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0] == "cabin-7 (cabin_5g, nanjin-street): DEGRADED"
    assert "  - cabin on battery for 240 s" in lines
    assert any(line.startswith("  ups: battery_status normal, charge_percent 80.0")
               for line in lines)
    assert any(line.startswith("  if 1 eth0: admin up, oper up") for line in lines)


def test_json_pon_and_exit_codes(config: Path) -> None:
    proc = run(config, "olt-1", "--json")
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert data["state"] == "up"
    assert [(p["port"], p["onus_online"], p["onus_total"]) for p in data["pon"]] == \
        [("GPON 0/1/0", 8, 8), ("GPON 0/1/1", 8, 8)]
    assert data["pon"][0]["onu_rx_dbm"]["0"] == -18.5

    down = run(config, "fiber-1", "--json")
    assert down.returncode == 1
    assert json.loads(down.stdout)["state"] == "down"

    ghost = run(config, "ghost")
    assert ghost.returncode == 1
    assert "ghost (wireless): UNREACHABLE" in ghost.stdout
    assert "no response from 127.0.0.1:9 within 0.3 s x 1 tries" in ghost.stdout

    unknown = run(config, "nope")
    assert unknown.returncode == 3
    assert "unknown target 'nope'" in unknown.stderr
