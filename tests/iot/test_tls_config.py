"""A broken MQTT TLS setting stops ``netguard run`` at start with a clear message."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from netguard.errors import ConfigError
from netguard.iot.service import IotService
from netguard.store import Store
from netguard.store.config import StoreConfig
from netguard.store.db import upgrade
from tests.iot.conftest import make_settings
from tests.support.ports import free_tcp_port

NETGUARD = str(Path(sys.executable).parent / "netguard")


def _mqtt(tls: dict[str, str]) -> dict[str, object]:
    # Nothing listens on the port: the check must happen before any connection attempt.
    return {"mqtt": {"enabled": True, "host": "127.0.0.1", "port": free_tcp_port(),
                     "tls": tls}}


@pytest.mark.parametrize(("key", "content"), [("ca_file", None),
                                              ("ca_file", "not a certificate\n"),
                                              ("cert_file", None)])
async def test_iot_service_refuses_a_tls_file_it_cannot_load(
        sqlite_store: Store, tmp_path: Path, key: str, content: str | None) -> None:
    path = tmp_path / f"{key}.pem"
    if content is not None:
        path.write_text(content)
    settings = make_settings(sqlite_store.config, _mqtt({key: str(path)}))
    with pytest.raises(ConfigError) as info:
        async with IotService(settings.iot, sqlite_store):
            pass
    assert f"iot.mqtt.tls.{key}" in str(info.value)
    assert str(path) in str(info.value)


def test_netguard_run_exits_2_naming_the_missing_ca_file(tmp_path: Path) -> None:
    db = tmp_path / "run.db"
    asyncio.run(upgrade(StoreConfig(path=db)))
    missing = tmp_path / "no-such-ca.crt"
    config = tmp_path / "netguard.yaml"
    config.write_text(yaml.safe_dump({
        "store": {"path": str(db)},
        "metrics": {"listen": f"127.0.0.1:{free_tcp_port()}"},
        "iot": _mqtt({"ca_file": str(missing)})}))
    result = subprocess.run([NETGUARD, "run", "--config", str(config)], capture_output=True,
                            text=True, timeout=60, check=False, cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    assert "iot.mqtt.tls.ca_file" in result.stderr
    assert str(missing) in result.stderr
    assert "Traceback" not in result.stderr
