"""Shared helpers for the door-sensor tests: settings, a registered estate, a receiver."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr
from typer.testing import CliRunner

from netguard.cli import app
from netguard.clock import ManualClock
from netguard.config import Settings, settings_from_data
from netguard.iot import registry
from netguard.store import Store
from netguard.store.config import StoreConfig
from netguard.store.db import upgrade

T0 = datetime(2026, 3, 1, 8, 0, tzinfo=UTC)


def make_settings(store: StoreConfig, iot: dict[str, Any] | None = None) -> Settings:
    """Settings with the given store and iot section (MQTT disabled unless given)."""
    store_data: dict[str, Any] = {"path": str(store.path)}
    if store.url is not None:
        store_data = {"url": store.url.get_secret_value()}
    return settings_from_data({"store": store_data, "iot": iot or {}})


async def register_estate(store: Store, now: datetime) -> None:
    """Household h1 (community c1, quarantined since a day ago) with one sensor per format;
    household h2 (community c2, not quarantined) with a native sensor."""
    async with store.session() as s:
        await registry.add_household(s, "h1", "c1", label="Flat 1", start=now - timedelta(days=1),
                                     now=now)
        await registry.add_household(s, "h2", "c2", label="Flat 2", now=now)
        await s.flush()
        await registry.add_sensor(s, "n1", "h1", fmt="native", now=now)
        await registry.add_sensor(s, "z1", "h1", fmt="zigbee2mqtt", address="door_z1", now=now)
        await registry.add_sensor(s, "s1", "h1", fmt="shelly", address="shellydw2-ABC", now=now)
        await registry.add_sensor(s, "n2", "h2", fmt="native", now=now)
        await s.commit()


_runner = CliRunner()


@pytest.fixture
def clock() -> ManualClock:
    """A manual clock at T0."""
    return ManualClock(T0)


@pytest.fixture
async def sqlite_store(tmp_path: Any) -> AsyncIterator[Store]:
    """A migrated SQLite store (for tests that need not run on both databases)."""
    config = StoreConfig(path=tmp_path / "iot.db")
    await upgrade(config)
    async with Store(config) as s:
        yield s


def secret(value: str) -> SecretStr:
    """Shorthand."""
    return SecretStr(value)




@pytest.fixture
def config(tmp_path: Path) -> Path:
    """A netguard.yaml naming a migrated SQLite store, for CLI tests."""
    db = tmp_path / "cli.db"
    asyncio.run(upgrade(StoreConfig(path=db)))
    path = tmp_path / "netguard.yaml"
    path.write_text(f"store:\n  path: {db}\n")
    return path


def ng(config: Path, *args: str) -> tuple[int, str]:
    """Run ``netguard ARGS --config CONFIG`` in process: (exit code, output)."""
    result = _runner.invoke(app, [*args, "--config", str(config)])
    return result.exit_code, result.output
