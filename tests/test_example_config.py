"""config/netguard.example.yaml stays valid and keeps showing every option."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from pydantic import BaseModel

import netguard.config as config_module
from netguard.config import Settings, load_settings
from netguard.probes.profiles import default_library
from tests.support.tls import self_signed

REPO = Path(__file__).resolve().parent.parent
EXAMPLE = REPO / "config" / "netguard.example.yaml"
NETGUARD = Path(sys.executable).parent / "netguard"

# The example reads these; any value will do for validation.
ENV = {
    "NETGUARD_SNMP_AUTH_KEY": "example-auth-key",
    "NETGUARD_MQTT_PASSWORD": "example-mqtt-password",
    "NETGUARD_DINGTALK_URL": "https://oapi.dingtalk.com/robot/send?access_token=x",
    "NETGUARD_DINGTALK_SECRET": "SECexample",
    "NETGUARD_METRICS_PASSWORD": "example-metrics-password",
    "NETGUARD_AUDIT_KEY": "example-audit-key",
}


@pytest.fixture
def secrets_dir(tmp_path: Path) -> Path:
    """The example's secret files, written where the example expects them via a copy."""
    (tmp_path / "community").write_text("public\n")
    (tmp_path / "snmp-priv-key").write_text("example-priv-key\n")
    (tmp_path / "ack-link-key").write_text("example-ack-link-key\n")
    (tmp_path / "riverside-wecom-url").write_text(
        "https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=x\n")
    (tmp_path / "netops-wecom-url").write_text(
        "https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=y\n")
    (tmp_path / "duty-dingtalk-url").write_text(
        "https://oapi.dingtalk.com/robot/send?access_token=z\n")
    (tmp_path / "duty-dingtalk-secret").write_text("SECexample\n")
    (tmp_path / "alertmanager-token").write_text("example-alertmanager-token\n")
    # check-config loads the TLS files too.
    self_signed(tmp_path / "metrics.pem", tmp_path / "metrics.key")
    self_signed(tmp_path / "netguard.pem", tmp_path / "netguard.key")
    (tmp_path / "ca.pem").write_bytes((tmp_path / "netguard.pem").read_bytes())
    return tmp_path


def _localised_example(secrets_dir: Path) -> Path:
    text = (EXAMPLE.read_text(encoding="utf-8")
            .replace("/etc/netguard/secrets/", f"{secrets_dir}/")
            .replace("/etc/netguard/tls/", f"{secrets_dir}/"))
    path = secrets_dir / "netguard.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_check_config_passes_on_the_example(secrets_dir: Path) -> None:
    path = _localised_example(secrets_dir)
    result = subprocess.run([str(NETGUARD), "check-config", "--config", str(path)],
                            capture_output=True, text=True, timeout=60,
                            env={**os.environ, **ENV}, check=False)
    assert result.returncode == 0, result.stderr
    assert ": OK" in result.stdout
    assert "13 targets" in result.stdout or "targets: 13" in result.stdout


def test_example_has_each_kind_and_sets_every_option(secrets_dir: Path) -> None:
    settings = load_settings(_localised_example(secrets_dir), env=ENV)
    kinds = {t.kind for t in settings.targets}
    assert kinds == {"fiber", "wireless", "private_line", "cabin_5g", "pon"}
    for kind in kinds:
        assert sum(1 for t in settings.targets if t.kind == kind) >= 2
    missing = _unset_options(settings, EXAMPLE.read_text(encoding="utf-8"))
    assert not missing, f"options not shown in the example: {missing}"


def test_example_without_secrets_names_the_missing_variables(secrets_dir: Path) -> None:
    path = _localised_example(secrets_dir)
    result = subprocess.run([str(NETGUARD), "check-config", "--config", str(path)],
                            capture_output=True, text=True, timeout=60,
                            env={k: v for k, v in os.environ.items() if k not in ENV},
                            check=False)
    assert result.returncode == 2
    assert "NETGUARD_MQTT_PASSWORD is not set" in result.stderr


def _unset_options(settings: Settings, text: str) -> list[str]:
    """Every field of every config model must appear (as ``name:``) somewhere in the text."""
    missing: list[str] = []
    seen: set[type[BaseModel]] = set()

    def visit(model: type[BaseModel], path: str) -> None:
        if model in seen:
            return
        seen.add(model)
        for attr, field in model.model_fields.items():
            name = field.alias or attr  # continue_ is spelled continue
            # Secret options may be given as <name>_file instead.
            if f"{name}:" not in text and f"{name}_file:" not in text:
                missing.append(f"{path}.{name}")
            for sub in _models_in(field.annotation):
                visit(sub, f"{path}.{name}")

    visit(type(settings), "")
    return missing


def _models_in(annotation: object) -> list[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    out: list[type[BaseModel]] = []
    for arg in getattr(annotation, "__args__", ()):
        out.extend(_models_in(arg))
    return out


def test_every_example_target_resolves_its_profile(secrets_dir: Path) -> None:
    settings = load_settings(_localised_example(secrets_dir), env=ENV)
    library = default_library()
    for target in settings.targets:
        profile = library.for_target(target)
        assert profile.scalars or profile.columns, target.id


@pytest.mark.parametrize(("option", "problem"), [
    ("metrics.pem", "metrics.tls: cannot load the certificate or key"),
    ("metrics.key", "metrics.tls: cannot load the certificate or key"),
    ("ca.pem", "iot.mqtt.tls.ca_file: cannot read"),
    ("netguard.pem", "iot.mqtt.tls.cert_file: cannot read"),
    ("netguard.key", "iot.mqtt.tls.key_file: cannot read"),
])
def test_check_config_loads_the_tls_files(secrets_dir: Path, option: str,
                                          problem: str) -> None:
    path = _localised_example(secrets_dir)
    (secrets_dir / option).unlink()
    result = subprocess.run([str(NETGUARD), "check-config", "--config", str(path)],
                            capture_output=True, text=True, timeout=60,
                            env={**os.environ, **ENV}, check=False)
    assert result.returncode == 2, result.stdout + result.stderr
    assert problem in result.stderr
    assert str(secrets_dir / option) in result.stderr


def test_check_config_refuses_a_certificate_that_does_not_parse(secrets_dir: Path) -> None:
    path = _localised_example(secrets_dir)
    (secrets_dir / "metrics.pem").write_text("not a certificate\n")
    result = subprocess.run([str(NETGUARD), "check-config", "--config", str(path)],
                            capture_output=True, text=True, timeout=60,
                            env={**os.environ, **ENV}, check=False)
    assert result.returncode == 2
    assert "metrics.tls: cannot load the certificate or key" in result.stderr


def test_example_config_reads_the_same_with_the_config_loader_as_with_pyyaml_safe_load(
) -> None:
    # load_settings parses with libyaml when PyYAML has it (memory at 10,000 targets);
    # every value of the example must come out as yaml.safe_load reads it.
    text = EXAMPLE.read_text(encoding="utf-8")
    assert yaml.load(text, Loader=config_module._YAML_LOADER) == yaml.safe_load(text)
