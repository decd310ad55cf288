"""One writer per event-log chain: the advisory lock named after ``iot.mqtt.client_id``.

Against a real PostgreSQL: a second holder of one chain is refused with the first one
named, waits out a holder that goes, is independent of other chains; a lock whose
connection was cut is taken again, and one taken by another process meanwhile is
reported. At the service level, two intakes with one client id cannot both start.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import socket
from pathlib import Path

import asyncpg  # type: ignore[import-untyped]
import pytest
from pydantic import SecretStr

from netguard.cluster.leader import LEADER_LOCK_KEY
from netguard.iot import service as service_module
from netguard.iot.chainlock import ChainInUseError, ChainLock, chain_lock_key
from netguard.iot.service import IotService
from netguard.store import Store
from netguard.store.config import StoreConfig
from netguard.store.db import upgrade
from tests.iot.conftest import make_settings
from tests.support.servers import Broker
from tests.support.wait import async_wait_until

pytestmark = [pytest.mark.integration]


def _lock(pg_url: str, chain: str = "netguard-a", wait: float = 0.3) -> ChainLock:
    return ChainLock(StoreConfig(url=SecretStr(pg_url)), chain, start_wait=wait)


async def _terminate_holder(pg_url: str, chain: str) -> int:
    """End the server session holding the chain's lock (a cut connection)."""
    key = chain_lock_key(chain)
    conn = await asyncpg.connect(pg_url)
    try:
        return len(await conn.fetch(
            # Advisory locks are per database: another test's database may hold the
            # same chain's key at the same moment (the suite runs on 2 workers).
            "SELECT pg_terminate_backend(pid) FROM pg_locks WHERE locktype = 'advisory' "
            "AND granted AND classid = $1::bigint::oid AND objid = $2::bigint::oid "
            "AND database = (SELECT oid FROM pg_database WHERE datname = current_database())",
            key >> 32, key & 0xFFFFFFFF))
    finally:
        await conn.close()


def test_keys_are_stable_per_chain_and_apart_from_the_leader() -> None:
    assert chain_lock_key("netguard-a") == chain_lock_key("netguard-a")
    assert chain_lock_key("netguard-a") != chain_lock_key("netguard-b")
    for key in (chain_lock_key("netguard"), chain_lock_key("")):
        assert 0 <= key < 2**63
        assert key != LEADER_LOCK_KEY


async def test_a_second_writer_of_one_chain_is_refused_naming_the_first(pg_url: str) -> None:
    first, second, other = _lock(pg_url), _lock(pg_url), _lock(pg_url, "netguard-b")
    try:
        await first.acquire()
        with pytest.raises(ChainInUseError) as refused:
            await second.acquire()
        assert refused.value.chain == "netguard-a"
        assert f"{socket.gethostname()}:{os.getpid()}" in (refused.value.holder or "")
        assert "iot.mqtt.client_id" in str(refused.value)
        assert not second.held
        await other.acquire()  # another chain is another lock
        assert first.held
        assert other.held
        await first.close()
        await second.acquire()  # free once the first has gone
        assert second.held
    finally:
        for lock in (first, second, other):
            await lock.close()


async def test_start_up_waits_for_a_holder_that_goes(
        pg_url: str, caplog: pytest.LogCaptureFixture) -> None:
    # A restarted instance whose old session the server has not ended yet.
    first, second = _lock(pg_url), _lock(pg_url, wait=60)
    try:
        await first.acquire()
        with caplog.at_level(logging.WARNING, logger="netguard.iot.chainlock"):
            waiting = asyncio.create_task(second.acquire())
            await async_wait_until(lambda: _true(any(
                "waiting for it to go" in r.getMessage() for r in caplog.records)),
                timeout=30, what="the second lock to find the chain held and wait")
        assert not waiting.done()
        await first.close()
        await asyncio.wait_for(waiting, timeout=60)
        assert second.held
    finally:
        await first.close()
        await second.close()


async def test_a_holder_gone_quiet_loses_the_lock_on_the_server(pg_url: str) -> None:
    # A process on a host that vanished: no TCP reset, no more checks. The server ends
    # its idle session after idle_session_timeout, and the waiting start-up gets in.
    quiet = ChainLock(StoreConfig(url=SecretStr(pg_url)), "netguard-a", idle_timeout=1.0)
    other = _lock(pg_url, wait=60)
    try:
        await quiet.acquire()
        await other.acquire()
        assert other.held
    finally:
        await quiet.close()
        await other.close()


async def test_a_cut_lock_is_taken_again(pg_url: str) -> None:
    lock = _lock(pg_url)
    try:
        await lock.acquire()
        assert await _terminate_holder(pg_url, "netguard-a") == 1
        assert await lock.check()  # the check notices and takes it again
        assert lock.held
        assert await lock.check()
    finally:
        await lock.close()


async def test_a_lock_taken_by_another_meanwhile_is_reported(
        pg_url: str, caplog: pytest.LogCaptureFixture) -> None:
    first, second = _lock(pg_url), _lock(pg_url)
    try:
        await first.acquire()
        await _terminate_holder(pg_url, "netguard-a")
        await second.acquire()
        with caplog.at_level(logging.ERROR, logger="netguard.iot.chainlock"):
            assert not await first.check()
        assert not first.held
        assert any("two processes write one chain" in r.getMessage() for r in caplog.records)
    finally:
        await first.close()
        await second.close()


async def test_two_intakes_with_one_client_id_cannot_both_start(
        pg_url: str, broker: Broker, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(service_module, "ChainLock",
                        functools.partial(ChainLock, start_wait=0.5))
    config = StoreConfig(url=SecretStr(pg_url))
    await upgrade(config)

    def iot(client_id: str) -> dict[str, object]:
        return {"mqtt": {"enabled": True, "host": broker.host, "port": broker.port,
                         "client_id": client_id}}

    async with Store(config) as store:
        async with IotService(make_settings(config, iot("netguard-1")).iot, store):
            with pytest.raises(ChainInUseError):
                async with IotService(make_settings(config, iot("netguard-1")).iot, store):
                    pass
            async with IotService(make_settings(config, iot("netguard-2")).iot, store):
                pass  # another client id, another chain
        # Released when the first stopped.
        async with IotService(make_settings(config, iot("netguard-1")).iot, store):
            pass


async def _true(value: bool) -> bool:
    return value
