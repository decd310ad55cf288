"""A sick database is seen as such (issue 14, items 5 and 8), with real servers:

- PostgreSQL switched read-only answers ``SELECT 1`` but refuses writes: the write probe
  says so, and the refusal is store-wide (never grounds to set an event aside);
- a row-level error (a value too long) is specific to what was written;
- a server that accepts connections and never answers costs the configured timeouts,
  not asyncpg's 60 s or forever.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest
import sqlalchemy as sa
from pydantic import SecretStr
from yarl import URL

from netguard.errors import StoreUnavailableError
from netguard.store import Store, upgrade
from netguard.store.config import StoreConfig
from netguard.store.db import create_engine
from netguard.store.health import bounded, probe_writable, store_wide_reason
from tests.daemon.tcpproxy import TcpProxy

pytestmark = [pytest.mark.integration]


async def _set_read_only(pg_url: str, on: bool) -> None:
    """``ALTER DATABASE ... SET default_transaction_read_only`` and drop its sessions, as a
    failover to a read-only node (or an operator) does; new sessions are read-only."""
    name = URL(pg_url).path.lstrip("/")
    admin = str(URL(pg_url).with_path("/postgres"))
    conn = await asyncpg.connect(admin)
    try:
        await conn.execute(f'ALTER DATABASE "{name}" SET default_transaction_read_only = '
                           f'{"on" if on else "off"}')
        await conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                           "WHERE datname = $1 AND pid <> pg_backend_pid()", name)
    finally:
        await conn.close()


@pytest.fixture
async def pg_store(pg_url: str) -> AsyncIterator[Store]:
    config = StoreConfig(url=SecretStr(pg_url))
    await upgrade(config)
    async with Store(config) as store:
        yield store


async def test_read_only_postgresql_answers_select_1_but_is_not_writable(
        pg_store: Store, pg_url: str) -> None:
    assert (await pg_store.writable()).writable
    await _set_read_only(pg_url, True)
    try:
        assert await pg_store.ping()  # what /readyz used to ask
        health = await pg_store.writable()
        assert not health.writable
        assert "read-only" in health.reason
        with pytest.raises(sa.exc.DBAPIError) as err:
            async with pg_store.engine.begin() as conn:
                await conn.execute(sa.text("UPDATE alembic_version SET version_num = "
                                           "version_num"))
        assert store_wide_reason(err.value) == "read-only"
    finally:
        await _set_read_only(pg_url, False)
    assert (await pg_store.writable()).writable


async def test_a_value_too_long_is_specific_to_the_row(pg_store: Store) -> None:
    with pytest.raises(sa.exc.DBAPIError) as err:
        async with pg_store.engine.begin() as conn:
            await conn.execute(sa.text("UPDATE alembic_version SET version_num = :v"),
                               {"v": "x" * 1000})
    assert store_wide_reason(err.value) is None


def test_sqlite_errors_are_sorted_by_result_code(tmp_path: Path) -> None:
    db = tmp_path / "x.db"
    conn = sqlite3.connect(db)
    conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY)")
    conn.execute("INSERT INTO t VALUES (1)")
    conn.commit()
    with pytest.raises(sqlite3.IntegrityError) as dup:
        conn.execute("INSERT INTO t VALUES (1)")
    conn.close()
    assert store_wide_reason(dup.value) is None
    read_only = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    with pytest.raises(sqlite3.OperationalError) as refused:
        read_only.execute("INSERT INTO t VALUES (2)")
    read_only.close()
    assert store_wide_reason(refused.value) == "read-only"


async def test_sqlite_store_is_writable(tmp_path: Path) -> None:
    config = StoreConfig(path=tmp_path / "n.db", auto_upgrade=True)
    async with Store(config) as store:
        assert (await store.writable()).writable


async def test_a_hung_postgresql_costs_the_configured_timeouts(pg_url: str) -> None:
    url = URL(pg_url)
    await upgrade(StoreConfig(url=SecretStr(pg_url)))
    proxy = await TcpProxy(url.host or "127.0.0.1", url.port or 5432).start()
    config = StoreConfig(url=SecretStr(str(url.with_host("127.0.0.1").with_port(proxy.port))),
                         connect_timeout_seconds=0.5, statement_timeout_seconds=0.5,
                         operation_timeout_seconds=1.0)
    try:
        async with Store(config) as store:
            assert (await store.writable()).writable
            await proxy.freeze()
            # Each call returns (not ready) instead of hanging: the deadline is only there
            # so that a regression fails instead of hanging the suite.
            async with asyncio.timeout(60):
                assert not await store.ping()
                health = await store.writable(1.0)
                assert not health.writable
                assert "timed out" in health.reason
                with pytest.raises(TimeoutError):
                    await bounded(asyncio.Event().wait(), 0.1)
        # A fresh start against the hung server fails instead of waiting 60 s.
        async with asyncio.timeout(60):
            with pytest.raises(StoreUnavailableError):
                async with Store(config):
                    pass
            engine_health = await _probe_fresh(config)
        assert not engine_health
    finally:
        await proxy.close()


async def _probe_fresh(config: StoreConfig) -> bool:
    engine = create_engine(config)
    try:
        return (await probe_writable(engine, 1.0)).writable
    finally:
        await engine.dispose()
