"""``/readyz`` follows the store and the broker (issue 5, acceptance 3), with real servers:
PostgreSQL behind a proxy the test cuts, and a private Mosquitto the test stops."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping

import aiohttp
import pytest
from pydantic import SecretStr
from yarl import URL

from netguard.config import settings_from_data
from netguard.daemon.app import Daemon
from netguard.store import upgrade
from netguard.store.config import StoreConfig
from tests.daemon.tcpproxy import TcpProxy
from tests.support.servers import Broker
from tests.support.wait import async_wait_until

pytestmark = [pytest.mark.integration, pytest.mark.slow]


async def _readyz(http: aiohttp.ClientSession, base: str) -> tuple[int, Mapping[str, bool]]:
    async with http.get(f"{base}/readyz") as resp:
        return resp.status, (await resp.json())["checks"]


async def test_readyz_follows_store_and_broker(pg_url: str, broker: Broker) -> None:
    await upgrade(StoreConfig(url=SecretStr(pg_url)))
    url = URL(pg_url)
    proxy = await TcpProxy(url.host or "127.0.0.1", url.port or 5432).start()
    proxied = str(url.with_host("127.0.0.1").with_port(proxy.port))
    settings = settings_from_data({
        "store": {"url": proxied},
        "iot": {"mqtt": {"enabled": True, "host": broker.host, "port": broker.port,
                         "client_id": "netguard-ready-test",
                         "reconnect_min_seconds": 0.1, "reconnect_max_seconds": 0.5}},
        "metrics": {"listen": "127.0.0.1:0"},
        "daemon": {"sweep_interval_seconds": 0.2, "shutdown_timeout_seconds": 5},
    })
    stop = asyncio.Event()

    async def status_is(expected: int, failing: str | None = None) -> bool:
        code, checks = await _readyz(http, base)
        return code == expected and (failing is None or checks.get(failing) is False)

    try:
        async with Daemon(settings) as daemon, aiohttp.ClientSession() as http, \
                asyncio.TaskGroup() as tg:
            assert daemon.metrics_url is not None
            base = daemon.metrics_url
            serving = tg.create_task(daemon.serve(stop))
            await async_wait_until(lambda: status_is(200), timeout=30, what="ready")

            await proxy.cut()
            await async_wait_until(lambda: status_is(503, "store"), timeout=30,
                                   what="not ready without the store")
            await async_wait_until(lambda: _true(daemon.sweep_errors > 0), timeout=10,
                                   what="failed sweep counted")
            async with http.get(f"{base}/healthz") as resp:
                assert resp.status == 200  # alive, just not ready
            await proxy.restore()
            await async_wait_until(lambda: status_is(200), timeout=30, what="ready again")

            broker.process.stop()
            await async_wait_until(lambda: status_is(503, "broker"), timeout=30,
                                   what="not ready without the broker")
            broker.process.start()
            await async_wait_until(lambda: status_is(200), timeout=30,
                                   what="ready after the broker is back")
            stop.set()
            await serving
    finally:
        await proxy.cut()


async def _true(value: bool) -> bool:
    return value
