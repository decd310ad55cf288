"""``netguard run --only intake``: the door-sensor intake as its own process.

It stores what the broker delivers, serves ``/metrics`` and ``/readyz`` (store and broker,
no scheduler), polls nothing and keeps no tickets, and stops on SIGTERM with exit code 0.
"""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path
from typing import Any

import pytest

from netguard.iot import registry
from netguard.store import Store
from netguard.store.config import StoreConfig
from netguard.store.db import upgrade
from tests.daemon.runproc import http_get, json_log, metric
from tests.iot.conftest import T0
from tests.iot.support import count_rows, intake_process, native, publish_all, write_config
from tests.support.ports import free_tcp_port
from tests.support.servers import mosquitto
from tests.support.wait import async_wait_until

pytestmark = [pytest.mark.integration]

MESSAGES = 5


async def _prepare(tmp_path: Path, broker_port: int, metrics_port: int) -> tuple[Path, Path]:
    db = tmp_path / "iot.db"
    store_config = StoreConfig(path=db)
    await upgrade(store_config)
    async with Store(store_config) as store, store.session() as s:
        await registry.add_household(s, "h1", "c1", start=T0, now=T0)
        await s.flush()
        await registry.add_sensor(s, "n0", "h1", fmt="native", now=T0)
        await s.commit()
    config: dict[str, Any] = {
        # A target that the intake alone must not poll (nothing answers there anyway).
        "targets": [{"id": "not-polled", "kind": "fiber", "address": "127.0.0.1:9",
                     "interval_seconds": 0.1}],
        "store": {"path": str(db)},
        "metrics": {"listen": f"127.0.0.1:{metrics_port}"},
        "logging": {"format": "json", "level": "INFO"},
        "iot": {"mqtt": {"enabled": True, "host": "127.0.0.1", "port": broker_port,
                         "client_id": "netguard-intake-only"},
                "rules": {"heartbeat_timeout_seconds": 86400}},
    }
    return db, write_config(tmp_path / "netguard.yaml", config)


async def test_the_intake_runs_alone_and_stops_cleanly(tmp_path: Path) -> None:
    metrics_port = free_tcp_port()
    base = f"http://127.0.0.1:{metrics_port}"
    with mosquitto(tmp_path / "broker") as broker:
        db, config = await _prepare(tmp_path, broker.port, metrics_port)
        intake = intake_process(config, tmp_path / "intake.log")
        intake.start()
        try:
            progress = [0]
            await publish_all(broker.host, broker.port,
                              [native("n0", seq) for seq in range(MESSAGES)], progress)
            await async_wait_until(lambda: _true(count_rows(db) == MESSAGES), timeout=30,
                                   what=f"{MESSAGES} events stored\n{intake.tail()}")
            status, body = await asyncio.to_thread(http_get, f"{base}/readyz")
            assert status == 200, body
            assert b"scheduler" not in body
            assert await asyncio.to_thread(metric, base, "netguard_mqtt_connected") == 1
            text = (await asyncio.to_thread(http_get, f"{base}/metrics"))[1].decode()
            assert 'target="not-polled"' not in text
            assert intake.stop(signal.SIGTERM) == 0, intake.tail()
        finally:
            intake.stop(signal.SIGKILL)
    records = json_log(intake)
    started = [r for r in records if r["msg"] == "netguard started"]
    assert [(r["only"], r["targets"]) for r in started] == [("intake", 0)]
    assert not [r for r in records if r["logger"] == "netguard.probes"]
    assert any(r["msg"] == "netguard stopped" for r in records)
    assert not [r for r in records if r["level"] in ("ERROR", "CRITICAL")]


async def _true(value: bool) -> bool:
    return value
