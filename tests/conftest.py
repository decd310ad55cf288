"""Fixtures shared by every test area: private Mosquitto, throwaway PostgreSQL, stores."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from pydantic import SecretStr

from netguard.store import Store
from netguard.store.config import StoreConfig
from netguard.store.db import upgrade
from tests.support.servers import Broker, mosquitto, pg_database

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Broker]:
    """A private Mosquitto on a free loopback port, stopped after the test."""
    with mosquitto(tmp_path / "mosquitto") as b:
        yield b


@pytest.fixture
def pg_url() -> Iterator[str]:
    """URL of a throwaway PostgreSQL database, dropped after the test."""
    with pg_database() as url:
        yield url


@pytest.fixture(params=["sqlite", "postgresql"])
def store_config(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[StoreConfig]:
    """A migrated, empty store config, once for SQLite and once for PostgreSQL."""
    if request.param == "sqlite":
        yield StoreConfig(path=tmp_path / "netguard.db")
        return
    with pg_database() as url:
        yield StoreConfig(url=SecretStr(url))


@pytest.fixture
async def store(store_config: StoreConfig) -> AsyncIterator[Store]:
    """An open store at the newest schema, on SQLite and on PostgreSQL."""
    await upgrade(store_config)
    async with Store(store_config) as s:
        yield s
