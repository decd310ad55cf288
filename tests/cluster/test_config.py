"""The ``cluster:`` section: validation, and refusal with a SQLite store."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from netguard.cluster import config as cluster_config
from netguard.config import settings_from_data
from netguard.errors import ConfigError

NETGUARD = Path(sys.executable).parent / "netguard"
REPO = Path(__file__).resolve().parents[2]
PG = {"url": "postgresql://netguard@db.example.net/netguard"}


def _problems(data: dict[str, object]) -> list[str]:
    with pytest.raises(ConfigError) as info:
        settings_from_data(data)
    return info.value.problems


def test_cluster_is_off_by_default_and_defaults_to_the_host_name(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cluster_config, "host_name", lambda: "node-a.example.net")
    settings = settings_from_data({"store": PG, "cluster": {"enabled": True}})
    assert settings.cluster.enabled
    assert settings.cluster.member_id == "node-a.example.net"
    assert not settings_from_data({}).cluster.enabled


def test_sqlite_refuses_an_enabled_cluster() -> None:
    problems = _problems({"cluster": {"enabled": True, "instance_id": "a"}})
    assert len(problems) == 1
    assert problems[0].startswith("cluster.enabled: scale-out needs a PostgreSQL store")


@pytest.mark.parametrize(("section", "expected"), [
    ({"instance_id": "a/b"}, "cluster.instance_id: invalid instance id 'a/b'"),
    ({"instance_id": ""}, "cluster.instance_id: invalid instance id ''"),
    ({"heartbeat_seconds": 10, "lease_seconds": 10},
     "cluster.lease_seconds: must be longer than cluster.heartbeat_seconds"),
    ({"heartbeat_seconds": 0}, "cluster.heartbeat_seconds: Input should be greater"),
    ({"lease": 3}, "cluster.lease: unknown option"),
])
def test_bad_cluster_settings_are_refused_with_their_path(section: dict[str, object],
                                                           expected: str) -> None:
    problems = _problems({"store": PG, "cluster": {"enabled": True, **section}})
    assert any(p.startswith(expected) for p in problems), problems


def test_a_host_name_that_is_not_a_name_needs_an_instance_id(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cluster_config, "host_name", lambda: "bad host")
    problems = _problems({"store": PG, "cluster": {"enabled": True}})
    assert problems[0].startswith("cluster.instance_id: the host name 'bad host'")
    # Off, the host name does not matter.
    settings_from_data({"cluster": {"enabled": False}})


def test_check_config_reports_the_sqlite_refusal(tmp_path: Path) -> None:
    path = tmp_path / "netguard.yaml"
    path.write_text("store:\n  path: x.db\ncluster:\n  enabled: true\n  instance_id: a\n")
    result = subprocess.run([str(NETGUARD), "check-config", "--config", str(path)],
                            capture_output=True, text=True, timeout=60, check=False,
                            env={**os.environ, "PYTHONPATH": str(REPO)})
    assert result.returncode == 2, result.stdout
    assert "cluster.enabled: scale-out needs a PostgreSQL store" in result.stderr


def test_cluster_status_refuses_a_sqlite_store(tmp_path: Path) -> None:
    path = tmp_path / "netguard.yaml"
    path.write_text(f"store:\n  path: {tmp_path / 'x.db'}\n")
    result = subprocess.run([str(NETGUARD), "cluster", "status", "--config", str(path)],
                            capture_output=True, text=True, timeout=60, check=False,
                            env={**os.environ, "PYTHONPATH": str(REPO)})
    assert result.returncode == 2
    assert "a cluster needs a PostgreSQL store" in result.stderr
    assert not (tmp_path / "x.db").exists()


def test_check_config_summarises_the_cluster(tmp_path: Path) -> None:
    path = tmp_path / "netguard.yaml"
    path.write_text("store:\n  url: postgresql://ng@db.example.net/ng\n"
                    "cluster:\n  enabled: true\n  instance_id: ng-7\n")
    result = subprocess.run([str(NETGUARD), "check-config", "--config", str(path)],
                            capture_output=True, text=True, timeout=60, check=False,
                            env={**os.environ, "PYTHONPATH": str(REPO)})
    assert result.returncode == 0, result.stderr
    assert "  cluster: instance ng-7, lease 20s" in result.stdout
