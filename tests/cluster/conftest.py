"""Fixtures of the cluster tests: a migrated throwaway PostgreSQL database."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from pydantic import SecretStr

from netguard.store import Store
from netguard.store.config import StoreConfig
from netguard.store.db import upgrade


def pg_store_config(url: str, **overrides: object) -> StoreConfig:
    """A store config for ``url`` with short timeouts (a cut database must cost seconds)."""
    values: dict[str, object] = {"url": SecretStr(url), "connect_timeout_seconds": 2.0,
                                 "statement_timeout_seconds": 2.0,
                                 "operation_timeout_seconds": 3.0}
    values.update(overrides)
    return StoreConfig.model_validate(values)


@pytest.fixture
async def pg_config(pg_url: str) -> StoreConfig:
    """A migrated, empty PostgreSQL database."""
    config = pg_store_config(pg_url)
    await upgrade(config)
    return config


@pytest.fixture
async def pg_store(pg_config: StoreConfig) -> AsyncIterator[Store]:
    """An open store on that database."""
    async with Store(pg_config) as store:
        yield store
