"""The fault-event writer never loses an event silently: failures are logged and counted."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import pytest

from netguard.daemon.backlog import FaultBacklog
from netguard.daemon.faultwriter import FaultWriter
from netguard.faults import FaultEvent, FaultKey, FaultOpened
from netguard.store.health import StoreHealth
from netguard.tickets.domain import TicketCounts
from tests.support.wait import async_wait_until

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def _opened(target: str) -> FaultOpened:
    return FaultOpened(FaultKey(target, "agent", "unreachable"), "fiber", None, "critical",
                       "down", (), NOW)


@dataclass
class BuggyTickets:
    """Fails with a bug (not a store error) until fixed."""

    broken: bool = True
    handled: list[FaultEvent] = field(default_factory=list)

    async def handle(self, event: FaultEvent, *, fence: object = None) -> None:
        if self.broken:
            raise RuntimeError("a bug in the ticket service")
        self.handled.append(event)

    async def sweep(self, *, still_active: object = None, fence: object = None) -> None:
        return None

    async def counts(self) -> TicketCounts:
        return TicketCounts(open={})


@dataclass
class Store:
    """A write probe that can itself fail unexpectedly."""

    broken: bool = False

    async def writable(self, within: float | None = None) -> StoreHealth:
        if self.broken:
            raise RuntimeError("a bug in the write probe")
        return StoreHealth(True)


async def _true(value: bool) -> bool:
    return value


async def test_an_unexpected_failure_is_logged_counted_and_retried_in_order(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    # The ticket service fails, and so does the probe that would tell why.
    tickets, store = BuggyTickets(), Store(broken=True)
    writer = FaultWriter(FaultBacklog(tmp_path / "journal"), lambda: tickets, lambda: store,
                         timeout=5.0)
    sent = [_opened("a"), _opened("b")]
    async with asyncio.TaskGroup() as tg:
        task = tg.create_task(writer.run())
        writer.hand_over(sent)
        await async_wait_until(lambda: _true(writer.errors >= 1), what="a failed delivery")
        assert len(writer) == 2  # nothing set aside, nothing lost
        tickets.broken = store.broken = False
        writer.wake()
        await async_wait_until(lambda: _true(len(writer) == 0), what="delivered")
        writer.finish()
        await task
    assert tickets.handled == sent
    assert writer.rejected == 0
    failures = [r for r in caplog.records
                if r.getMessage().startswith("delivering fault events failed unexpectedly")]
    assert failures
    assert failures[0].exc_info is not None


def test_events_the_journal_cannot_take_at_shutdown_are_logged_and_counted(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("")
    writer = FaultWriter(FaultBacklog(blocker / "journal"), BuggyTickets, Store, timeout=5.0)
    writer.hand_over([_opened("a"), _opened("b")])
    assert writer.keep_for_next_start() == 2
    assert writer.dropped == 2
    assert len(writer) == 0
    lost = [r for r in caplog.records if r.levelname == "ERROR"
            and r.getMessage().startswith("fault events not delivered by shutdown are lost")]
    assert [getattr(r, "events", None) for r in lost] == [2]


def test_events_waiting_at_shutdown_go_to_the_journal(tmp_path: Path) -> None:
    journal = tmp_path / "journal"
    writer = FaultWriter(FaultBacklog(journal), BuggyTickets, Store, timeout=5.0)
    writer.hand_over([_opened("a")])
    assert writer.keep_for_next_start() == 1
    assert writer.dropped == 0
    assert len(journal.read_text().splitlines()) == 1
