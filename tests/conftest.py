"""Fixtures shared by every test area: private Mosquitto, throwaway PostgreSQL, stores.

Also the suite's run-wide settings: hypothesis profiles, the timing calibration behind
``tests.support.timing.slack`` and the ``requires_tool`` marker (docs/testing.md).
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings
from pydantic import SecretStr

from netguard.store import Store
from netguard.store.config import StoreConfig
from netguard.store.db import upgrade
from tests.iot.receiver import Receiver
from tests.support import timing
from tests.support.servers import Broker, mosquitto, pg_database
from tests.support.tools import check_tools, in_ci

REPO = Path(__file__).resolve().parent.parent

# Hypothesis: no per-example deadline anywhere (a wall-clock bound a busy machine
# breaks); under CI the examples are derived from the test, so a run is reproducible,
# and a failure prints the blob that replays it (@reproduce_failure).
settings.register_profile("dev", deadline=None, print_blob=True)
settings.register_profile("ci", deadline=None, print_blob=True, derandomize=True,
                          database=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE") or ("ci" if in_ci() else "dev"))


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "requires_tool(*names): needs these programs on PATH; skipped when "
        "missing, failed under CI=true (use tests.support.tools.require_tool)")


def pytest_report_header() -> list[str]:
    mode = "CI=true: missing tools fail" if in_ci() else "missing tools skip (CI unset)"
    return [timing.calibration().describe(), mode]


@pytest.fixture(scope="session", autouse=True)
def machine_calibration() -> timing.Calibration:
    """Measures the machine once per session (per xdist worker) before any test runs."""
    return timing.calibration()


def pytest_runtest_setup(item: pytest.Item) -> None:
    for mark in item.iter_markers("requires_tool"):
        check_tools(tuple(mark.args))


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


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    """A real HTTP receiver (webhook, WeCom and DingTalk formats), listening (a test module
    may define its own, e.g. one that starts later to play an outage)."""
    r = Receiver()
    await r.start()
    yield r
    await r.stop()
