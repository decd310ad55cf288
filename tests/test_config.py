"""Configuration loading: the issue's minimal shape, secrets, and precise error paths."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from netguard.config import load_settings, settings_from_data
from netguard.errors import ConfigError, NotFoundError

MINIMAL = """
targets:
  - id: olt-hechuan-1
    kind: pon            # fiber | wireless | private_line | cabin_5g | pon
    address: 127.0.0.1:16100
    site: nanjin-street
    snmp: {version: 2c, community: public}
  - id: cabin-5g-07
    kind: cabin_5g
    address: 127.0.0.1:16101
    upstream: olt-hechuan-1
    snmp: {version: 3, user: ng, auth_protocol: sha256, auth_key: "${NG_AUTH}",
           priv_protocol: aes128, priv_key: "${NG_PRIV}"}
"""

ENV = {"NG_AUTH": "auth-secret-1", "NG_PRIV": "priv-secret-2"}


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "netguard.yaml"
    path.write_text(text)
    return path


def test_minimal_shape_from_the_issue_loads(tmp_path: Path) -> None:
    settings = load_settings(write(tmp_path, MINIMAL), env=ENV)
    olt, cabin = settings.targets
    assert (olt.kind, olt.host, olt.port, olt.site) == ("pon", "127.0.0.1", 16100, "nanjin-street")
    assert olt.snmp.version == "2c"
    assert olt.snmp.community is not None
    assert olt.snmp.community.get_secret_value() == "public"
    assert cabin.snmp.version == "3"
    assert cabin.upstream == "olt-hechuan-1"
    assert cabin.snmp.auth_key is not None
    assert cabin.snmp.auth_key.get_secret_value() == "auth-secret-1"
    assert (cabin.snmp.auth_protocol, cabin.snmp.priv_protocol) == ("sha256", "aes128")
    # Secrets never show in reprs (and so never in logs of the model).
    assert "auth-secret-1" not in repr(settings)


def test_unknown_auth_protocol_names_file_and_path(tmp_path: Path) -> None:
    path = write(tmp_path, MINIMAL.replace("sha256", "sha999"))
    with pytest.raises(ConfigError) as info:
        load_settings(path, env=ENV)
    assert info.value.source == str(path)
    assert any(p.startswith("targets[1].snmp.auth_protocol: unknown protocol 'sha999'")
               for p in info.value.problems), info.value.problems
    assert str(path) in str(info.value)


def test_missing_environment_variable_is_reported_with_its_path(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_settings(write(tmp_path, MINIMAL), env={"NG_AUTH": "auth-secret-1"})
    assert info.value.problems == ["targets[1].snmp.priv_key: environment variable NG_PRIV "
                                   "is not set"]


def test_secret_from_file_relative_to_config(tmp_path: Path) -> None:
    (tmp_path / "priv.key").write_text("from-a-file-42\n")
    text = MINIMAL.replace('priv_key: "${NG_PRIV}"', "priv_key_file: priv.key")
    settings = load_settings(write(tmp_path, text), env=ENV)
    key = settings.targets[1].snmp.priv_key
    assert key is not None
    assert key.get_secret_value() == "from-a-file-42"


def test_secret_file_that_is_missing_is_a_clear_error(tmp_path: Path) -> None:
    text = MINIMAL.replace('priv_key: "${NG_PRIV}"', "priv_key_file: nope.key")
    with pytest.raises(ConfigError) as info:
        load_settings(write(tmp_path, text), env=ENV)
    assert info.value.problems[0].startswith("targets[1].snmp.priv_key_file: cannot read secret")


def test_env_default_syntax() -> None:
    settings = settings_from_data(
        {"store": {"url": "${NG_DB:-postgresql://localhost/netguard}"}}, env={})
    assert settings.store.url is not None
    assert settings.store.sqlalchemy_url() == "postgresql+asyncpg://localhost/netguard"


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ({"targets": [{"id": "a", "kind": "laser", "address": "h"}]},
         "targets[0].kind: unknown kind 'laser'"),
        ({"targets": [{"id": "a", "kind": "fiber", "address": "h:99999"}]},
         "targets[0].address: address 'h:99999': port out of range"),
        ({"targets": [{"id": "a", "kind": "fiber", "address": "h", "colour": 1}]},
         "targets[0].colour: unknown option"),
        ({"targets": [{"id": "a", "kind": "fiber", "address": "h", "upstream": "b"}]},
         "targets[0].upstream: unknown target 'b'"),
        ({"targets": [{"id": "a", "kind": "fiber", "address": "h"},
                      {"id": "a", "kind": "pon", "address": "h"}]},
         "targets[1].id: duplicate target id 'a'"),
        ({"targets": [{"id": "a", "kind": "fiber", "address": "h", "upstream": "b"},
                      {"id": "b", "kind": "pon", "address": "h", "upstream": "a"}]},
         "targets[0].upstream: dependency cycle a -> b -> a"),
        ({"targets": [{"id": "a", "kind": "fiber", "address": "h",
                       "snmp": {"version": 3, "user": "u", "priv_protocol": "aes128",
                                "priv_key": "12345678"}}]},
         "targets[0].snmp: privacy (priv_protocol) needs authentication too"),
        ({"targets": [{"id": "a", "kind": "fiber", "address": "h",
                       "snmp": {"version": 3, "user": "u", "auth_protocol": "sha",
                                "auth_key": "short"}}]},
         "targets[0].snmp: auth_key must be at least 8 characters"),
        ({"iot": {"routes": [{"community": "c1", "notifiers": ["ghost"]}]}},
         "iot.routes[0].notifiers: unknown notifier 'ghost'"),
        ({"targets": [{"id": "a", "kind": "fiber", "address": "h", "site": "s" * 129}]},
         "targets[0].site: String should have at most 128 characters"),
        ({"daemon": {"trap_listen": "0.0.0.0:trap"}},
         "daemon.trap_listen: address '0.0.0.0:trap': port 'trap' is not a number"),
        ({"daemon": {"trap_listen": "0.0.0.0"}},
         "daemon.trap_listen: expected host:port, got '0.0.0.0'"),
        ({"metrics": {"listen": "localhost"}},
         "metrics.listen: expected host:port, got 'localhost'"),
        ({"metrics": {"listen": "127.0.0.1:70000"}},
         "metrics.listen: expected host:port, got '127.0.0.1:70000'"),
        ({"metrics": {"basic_auth": {"username": "prom", "password": ""}}},
         "metrics.basic_auth.password: must not be empty"),
        ({"metrics": {"basic_auth": {"username": "prom", "password": "${NG_NO_PW:-}"}}},
         "metrics.basic_auth.password: must not be empty"),
        ({"metrics": {"basic_auth": {"username": "", "password": "s3cret!"}}},
         "metrics.basic_auth.username: String should have at least 1 character"),
        ({"iot": {"mqtt": {"alert_topic_prefix": "netguard/#"}}},
         "iot.mqtt.alert_topic_prefix: must be a topic without wildcards"),
    ],
)
def test_invalid_configs_name_the_path(data: dict[str, object], expected: str) -> None:
    with pytest.raises(ConfigError) as info:
        settings_from_data(data, source="x.yaml")
    assert any(p.startswith(expected) for p in info.value.problems), info.value.problems


def test_broken_yaml_reports_line(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_settings(write(tmp_path, "targets:\n  - id: [unclosed\n"))
    assert "line" in info.value.problems[0]
    assert "not valid YAML" in info.value.problems[0]


def test_missing_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read file"):
        load_settings(tmp_path / "absent.yaml")


def test_embedded_defaults_are_valid() -> None:
    settings = load_settings(None)
    assert settings.targets == []
    assert settings.metrics.listen == "127.0.0.1:9108"


def test_target_lookup_unknown_id() -> None:
    settings = settings_from_data({"targets": [{"id": "a", "kind": "fiber", "address": "h"}]})
    assert settings.target("a").port == 161
    with pytest.raises(NotFoundError, match="unknown target 'zz'"):
        settings.target("zz")


def test_real_environment_is_the_default(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for key, value in ENV.items():
        monkeypatch.setenv(key, value)
    assert os.environ["NG_AUTH"] == "auth-secret-1"
    settings = load_settings(write(tmp_path, MINIMAL))
    assert len(settings.targets) == 2


@pytest.mark.parametrize("url", ["postgresql://ng:s3cret-pw@db:notaport/netguard",
                                 "mysql://ng:s3cret-pw@db/netguard", "s3cret-pw",
                                 "postgresql://"])
def test_unusable_store_url_is_refused_without_showing_it(url: str) -> None:
    with pytest.raises(ConfigError) as info:
        settings_from_data({"store": {"url": url}}, source="x.yaml")
    assert [p.split(":")[0] for p in info.value.problems] == ["store.url"], info.value.problems
    assert "s3cret-pw" not in str(info.value)


@pytest.mark.parametrize("url", ["postgresql://ng:pw@db/netguard",
                                 "postgresql+asyncpg://ng:pw@db:5433/netguard",
                                 "postgresql:///netguard?host=/run/postgresql",
                                 "sqlite:///var/lib/netguard/netguard.db"])
def test_supported_store_urls_load(url: str) -> None:
    settings = settings_from_data({"store": {"url": url}}, source="x.yaml")
    assert settings.store.url is not None
    assert settings.store.url.get_secret_value() == url



def test_check_config_refuses_an_empty_metrics_password(tmp_path: Path) -> None:
    """An empty password used to be accepted, and let anyone read /metrics."""
    path = write(tmp_path, "metrics:\n  basic_auth: {username: prom, password: ''}\n")
    netguard = Path(sys.executable).parent / "netguard"
    result = subprocess.run([str(netguard), "check-config", "--config", str(path)],
                            capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 2, result.stderr
    assert "metrics.basic_auth.password: must not be empty" in result.stderr


def test_check_config_refuses_a_route_to_an_unknown_notifier(tmp_path: Path) -> None:
    """A typo in a route used to be caught only when an alert had nowhere to go."""
    path = write(tmp_path, """
iot:
  notifiers:
    - {name: ops-webhook, type: webhook, url: "http://127.0.0.1:9/hook"}
    - {name: console, type: console}
  routes:
    - {community: riverside, notifiers: [ops-webhook, riverside-wecom]}
""")
    netguard = Path(sys.executable).parent / "netguard"
    result = subprocess.run([str(netguard), "check-config", "--config", str(path)],
                            capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 2, result.stderr
    [line] = [ln.strip() for ln in result.stderr.splitlines() if "iot.routes" in ln]
    assert line == ("iot.routes[0].notifiers: unknown notifier 'riverside-wecom' in the route "
                    "for community 'riverside' (known: console, ops-webhook)")
