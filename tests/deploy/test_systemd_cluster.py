"""The cluster's systemd template ``config/systemd/netguard@.service`` (docs/scale-out.md).

It is verified by systemd itself, keeps every setting of the single-host unit but the
per-instance ones, and the config it documents in its header passes ``check-config`` with
the environment and credential directory systemd gives the instance.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import yaml

from tests.support.tools import require_tool

REPO = Path(__file__).resolve().parents[2]
SYSTEMD = REPO / "config" / "systemd"
TEMPLATE = SYSTEMD / "netguard@.service"
SINGLE = SYSTEMD / "netguard.service"
NETGUARD = Path(sys.executable).parent / "netguard"
# What the template sets per instance, where it differs from netguard.service on purpose.
PER_INSTANCE = {"Environment", "EnvironmentFile", "LoadCredential", "StateDirectory",
                "ReadWritePaths", "WorkingDirectory", "ExecReload"}


def _sections(path: Path) -> dict[str, dict[str, list[str]]]:
    """Section -> key -> values in order (systemd keys repeat, so no configparser)."""
    sections: dict[str, dict[str, list[str]]] = {}
    current: dict[str, list[str]] = {}
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("["):
            current = sections.setdefault(line, {})
            continue
        key, _, value = line.partition("=")
        current.setdefault(key, []).append(value)
    return sections


@require_tool("systemd-analyze")
def test_systemd_analyze_verifies_the_template(tmp_path: Path) -> None:
    # verify instantiates a template file itself (as netguard@i.service) and checks that
    # the executables exist: point them at this venv's netguard.
    unit = tmp_path / "netguard@.service"
    unit.write_text(TEMPLATE.read_text().replace("/opt/netguard/.venv/bin/netguard",
                                                 str(NETGUARD)))
    result = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True,
                            text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    assert "Unknown key" not in result.stderr, result.stderr
    assert "Unknown lvalue" not in result.stderr, result.stderr


@require_tool("systemd-analyze")
def test_systemd_analyze_catches_a_broken_template(tmp_path: Path) -> None:
    """The check above can fail: a misspelt key and a missing program are both reported."""
    unit = tmp_path / "netguard@.service"
    unit.write_text(TEMPLATE.read_text().replace("WatchdogSec=", "WatchdgSec=")
                    .replace("/opt/netguard/.venv/bin/netguard", "/nonexistent/netguard"))
    result = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True,
                            text=True, timeout=60, check=False)
    assert result.returncode != 0
    assert "Unknown key 'WatchdgSec'" in result.stderr


def test_the_template_keeps_the_single_host_units_settings() -> None:
    template, single = _sections(TEMPLATE), _sections(SINGLE)
    assert set(template) == set(single)
    for section, values in single.items():
        for key, expected in values.items():
            if section == "[Service]" and key in PER_INSTANCE:
                continue
            if section == "[Unit]" and key in {"Description", "Documentation"}:
                continue
            assert template[section].get(key) == expected, (section, key)
    service = template["[Service]"]
    assert service["Type"] == ["notify"]  # netguard.daemon.sdnotify sends READY=1
    assert "NETGUARD_INSTANCE_ID=%i" in service["Environment"]
    assert service["StateDirectory"] == ["netguard/%i"]
    assert service["WorkingDirectory"] == ["/var/lib/netguard/%i"]
    assert service["ReadWritePaths"] == ["/var/lib/netguard/%i"]
    assert "-/etc/netguard/instances/%i.env" in service["EnvironmentFile"]
    assert service["LoadCredential"] == ["store_url:/etc/netguard/credstore/store_url"]
    assert service["ExecReload"] == single["[Service]"]["ExecReload"]


def _documented_config() -> dict[str, object]:
    """The YAML the template's header asks every host to share (its ``#   key: {...}``)."""
    lines = [m.group(1) for m in re.finditer(r"^#   ((?:store|cluster|iot|metrics):.*)$",
                                             TEMPLATE.read_text(), re.MULTILINE)]
    assert len(lines) == 4, lines
    data = yaml.safe_load("\n".join(lines))
    assert isinstance(data, dict)
    return data


def test_the_documented_config_passes_check_config_as_systemd_runs_it(tmp_path: Path) -> None:
    data = _documented_config()
    data["targets"] = [{"id": "pl-1", "kind": "private_line", "address": "192.0.2.1",
                        "snmp": {"version": "2c", "community": "public"}}]
    config = tmp_path / "netguard.yaml"
    config.write_text(yaml.safe_dump(data))
    # What systemd gives netguard@ng-a.service: %i in Environment=, and the credential
    # copied into $CREDENTIALS_DIRECTORY under its id.
    credentials = tmp_path / "credentials"
    credentials.mkdir()
    (credentials / "store_url").write_text(
        "postgresql://netguard:s3cret@db.example.net:5432/netguard\n")
    (assignment,) = [v for v in _sections(TEMPLATE)["[Service]"]["Environment"]
                     if v.startswith("NETGUARD_INSTANCE_ID=")]
    name, _, value = assignment.replace("%i", "ng-a").partition("=")
    env = {**os.environ, name: value, "CREDENTIALS_DIRECTORY": str(credentials),
           "NETGUARD_METRICS_LISTEN": "127.0.0.1:9200"}
    result = subprocess.run([str(NETGUARD), "check-config", "--config", str(config)],
                            capture_output=True, text=True, timeout=120, env=env,
                            check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "store: postgresql" in result.stdout
    assert "cluster: instance ng-a" in result.stdout
    assert "s3cret" not in result.stdout + result.stderr

    # Without the instance's environment (a unit that is not the template) it is refused,
    # naming what is missing, rather than running under a wrong id.
    bare = {k: v for k, v in env.items() if k != "NETGUARD_INSTANCE_ID"}
    result = subprocess.run([str(NETGUARD), "check-config", "--config", str(config)],
                            capture_output=True, text=True, timeout=120, env=bare,
                            check=False)
    assert result.returncode == 2
    assert "cluster.instance_id: environment variable NETGUARD_INSTANCE_ID is not set" in (
        result.stdout + result.stderr)
