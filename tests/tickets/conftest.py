"""Fixtures for ticket tests: a service on a migrated store with a manual clock."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

import pytest

from netguard.clock import ManualClock
from netguard.faults import FaultCleared, FaultKey, FaultOpened, FaultSeverity
from netguard.store import Store
from netguard.tickets.config import SiteConfig, TicketsConfig
from netguard.tickets.service import TicketService

START = datetime(2026, 11, 29, 8, 0, tzinfo=UTC)


@pytest.fixture
def clock() -> ManualClock:
    """A clock that moves only when the test says so."""
    return ManualClock(START)


@pytest.fixture
def tickets_config() -> TicketsConfig:
    """Short, round timings so that tests read clearly."""
    return TicketsConfig(
        resolve_hold_seconds=300, reopen_window_seconds=3600, orphan_grace_seconds=600,
        sites=[SiteConfig(id="hotel-1", criticality="quarantine_hotel"),
               SiteConfig(id="lab", criticality="normal")],
    )


@pytest.fixture
def service(store: Store, tickets_config: TicketsConfig, clock: ManualClock) -> TicketService:
    """A ticket service on a fresh store (SQLite and PostgreSQL)."""
    return TicketService(store, tickets_config, clock=clock)


OpenFactory = Callable[..., FaultOpened]


@pytest.fixture
def opened(clock: ManualClock) -> OpenFactory:
    """Build a FaultOpened at the clock's current time."""

    def make(target: str = "olt-1", component: str = "if:3", condition: str = "oper_down",
             *, severity: FaultSeverity = "major", site: str | None = None,
             category: str = "fiber", suppressed_by: str | None = None,
             summary: str | None = None) -> FaultOpened:
        return FaultOpened(key=FaultKey(target, component, condition), category=category,
                           site=site, severity=severity,
                           summary=summary or f"{target}: {component} {condition}",
                           reasons=(f"{component} {condition}",), at=clock.now(),
                           suppressed_by=suppressed_by)

    return make


@pytest.fixture
def cleared(clock: ManualClock) -> Callable[..., FaultCleared]:
    """Build a FaultCleared at the clock's current time."""

    def make(target: str = "olt-1", component: str = "if:3",
             condition: str = "oper_down") -> FaultCleared:
        return FaultCleared(key=FaultKey(target, component, condition), at=clock.now(),
                            reasons=("recovered",))

    return make
