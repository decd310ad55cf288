"""Acceptance 4: nothing lost when the intake is SIGKILLed or the broker restarts."""

from __future__ import annotations

import asyncio
import json
import signal
from pathlib import Path
from typing import Any

import pytest

from netguard.iot import registry
from netguard.iot.eventlog import verify
from netguard.store import Store
from netguard.store.config import StoreConfig
from netguard.store.db import upgrade
from tests.iot.conftest import T0
from tests.iot.support import (
    count_rows,
    intake_process,
    native,
    publish_all,
    shipped_broker_section,
    write_config,
)
from tests.support.ports import free_tcp_port
from tests.support.seeds import seeded_rng
from tests.support.servers import mosquitto
from tests.support.wait import async_wait_until

pytestmark = [pytest.mark.integration, pytest.mark.slow,
              pytest.mark.xdist_group("heavy")]  # CPU-heavy: one at a time (docs/testing.md)

N = 10_000
SENSORS = 20


async def _prepare(tmp_path: Path, port: int, protocol: str = "5") -> tuple[Path, Path]:
    db = tmp_path / "iot.db"
    store_config = StoreConfig(path=db)
    await upgrade(store_config)
    async with Store(store_config) as store, store.session() as s:
        await registry.add_household(s, "h1", "c1", start=T0, now=T0)
        await s.flush()
        for i in range(SENSORS):
            await registry.add_sensor(s, f"n{i}", "h1", fmt="native", now=T0)
            await registry.add_sensor(s, f"z{i}", "h1", fmt="zigbee2mqtt",
                                      address=f"door_z{i}", now=T0)
        await s.commit()
    config: dict[str, Any] = {
        "store": {"path": str(db)},
        "logging": {"format": "json", "level": "INFO"},
        "metrics": {"listen": f"127.0.0.1:{free_tcp_port()}"},
        "daemon": {"sweep_interval_seconds": 3600},
        "iot": {"mqtt": {"enabled": True, "host": "127.0.0.1", "port": port,
                         "client_id": "netguard-durability", "protocol": protocol,
                         "reconnect_min_seconds": 0.1, "reconnect_max_seconds": 1.0},
                "rules": {"heartbeat_timeout_seconds": 86400}},
    }
    return db, write_config(tmp_path / "netguard.yaml", config)


def _mixed_stream() -> list[tuple[str, bytes]]:
    """Half native (with sequence numbers), half Zigbee2MQTT state reports that repeat
    byte-identical payloads, which only the DUP-window deduplication can tell apart."""
    messages: list[tuple[str, bytes]] = []
    for k in range(N // 2):
        messages.append(native(f"n{k % SENSORS}", k))
        body = {"battery": 90, "contact": True, "linkquality": 100 + k % 3}
        messages.append((f"zigbee2mqtt/door_z{k % SENSORS}", json.dumps(body).encode()))
    return messages


async def _verify_chain(db: Path) -> None:
    async with Store(StoreConfig(path=db)) as store, store.session() as s:
        report = await verify(s)
    assert report.ok, report.problems


@pytest.mark.parametrize("protocol", ["5", "3.1.1"])
async def test_intake_sigkilled_twice_loses_and_duplicates_nothing(tmp_path: Path,
                                                                   protocol: str) -> None:
    rng = seeded_rng(f"intake kill points ({protocol})")
    with mosquitto(tmp_path / "broker", base=shipped_broker_section(tmp_path)) as broker:
        db, config = await _prepare(tmp_path, broker.port, protocol)
        intake = intake_process(config, tmp_path / "intake.log")
        intake.start()
        messages = _mixed_stream()
        progress = [0]
        publisher = asyncio.create_task(publish_all(broker.host, broker.port, messages,
                                                    progress))
        try:
            for low, high in ((500, 4000), (5000, 9000)):
                kill_at = rng.randint(low, high)
                await async_wait_until(_reached(progress, kill_at), timeout=60,
                                       what=f"{kill_at} messages published")
                intake.send_signal(signal.SIGKILL)
                intake.stop()
                await asyncio.to_thread(intake.start)
            await publisher
            await async_wait_until(_rows(db, N), timeout=120,
                                   what=f"{N} events stored\n{intake.tail()}")
            # Let the intake drain any redeliveries, then stop it cleanly.
            assert intake.stop() == 0, intake.tail()
        finally:
            publisher.cancel()
            intake.stop(signal.SIGKILL)
    assert count_rows(db) == N
    assert count_rows(db, "dead_reason IS NOT NULL") == 0
    assert count_rows(db, "sensor_id LIKE 'n%'") == N // 2
    assert count_rows(db, "sensor_id LIKE 'z%'") == N // 2
    await _verify_chain(db)


async def test_broker_restart_with_shipped_config_loses_nothing(tmp_path: Path) -> None:
    rng = seeded_rng("broker restart point")
    with mosquitto(tmp_path / "broker", base=shipped_broker_section(tmp_path)) as broker:
        db, config = await _prepare(tmp_path, broker.port)
        intake = intake_process(config, tmp_path / "intake.log")
        intake.start()
        # Native only: the test publisher itself resends messages whose PUBACK the broker
        # restart swallowed, and only sequence numbers can recognise those copies.
        messages = [native(f"n{k % SENSORS}", k) for k in range(N)]
        progress = [0]
        publisher = asyncio.create_task(publish_all(broker.host, broker.port, messages,
                                                    progress))
        try:
            restart_at = rng.randint(2000, 8000)
            await async_wait_until(_reached(progress, restart_at), timeout=60,
                                   what=f"{restart_at} messages published")
            await asyncio.to_thread(broker.restart)
            await publisher
            await async_wait_until(_rows(db, N), timeout=120,
                                   what=f"{N} events stored\n{intake.tail()}")
            assert intake.stop() == 0, intake.tail()
        finally:
            publisher.cancel()
            intake.stop(signal.SIGKILL)
    assert count_rows(db) == N
    assert count_rows(db, "seq IS NOT NULL") == N
    await _verify_chain(db)


def _reached(progress: list[int], n: int) -> Any:
    async def check() -> bool:
        return progress[0] >= n
    return check


def _rows(db: Path, n: int) -> Any:
    async def check() -> bool:
        return await asyncio.to_thread(count_rows, db) >= n
    return check
