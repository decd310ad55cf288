"""The fault-event writer never loses an event silently: failures are logged and counted."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import pytest

from netguard.cluster.members import Epoch
from netguard.daemon.backlog import FaultBacklog, encode_event
from netguard.daemon.faultwriter import FaultWriter
from netguard.errors import StaleEpochError
from netguard.faults import FaultCleared, FaultEvent, FaultKey, FaultOpened
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


def test_epochs_wait_with_their_events_and_only_this_process_keeps_them(
        tmp_path: Path) -> None:
    journal = tmp_path / "journal"
    backlog = FaultBacklog(journal, memory_limit=1)
    epoch = Epoch("ng-a", 7)
    backlog.append(_opened("a"), epoch)
    backlog.append(_opened("b"), epoch)  # memory full: spilled to the journal
    backlog.append(_opened("c"))  # outside a cluster: no epoch, the line as before
    assert [backlog.head_epoch(), backlog.pop().key.target] == [epoch, "a"]
    assert [backlog.head_epoch(), backlog.pop().key.target] == [epoch, "b"]
    assert [backlog.head_epoch(), backlog.pop().key.target] == [None, "c"]
    assert not journal.exists()
    assert encode_event(_opened("c")) == encode_event(_opened("c"), None, backlog.run)

    backlog.append(_opened("d"), epoch)
    assert backlog.persist() == 1
    # The next process reads it back under incarnation 0: no registration has it.
    again = FaultBacklog(journal)
    assert again.head() == _opened("d")
    assert again.head_epoch() == Epoch("ng-a", 0)


@dataclass
class FencedTickets(BuggyTickets):
    """Refuses events for their epoch: for good, or while the lease is ending."""

    refusals: list[StaleEpochError] = field(default_factory=list)
    fences: list[object] = field(default_factory=list)

    async def handle(self, event: FaultEvent, *, fence: object = None) -> None:
        self.fences.append(fence)
        if self.refusals:
            raise self.refusals.pop(0)
        self.handled.append(event)


async def test_stale_events_are_dropped_counted_and_logged_and_an_ending_lease_waits(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    tickets = FencedTickets(broken=False, refusals=[
        StaleEpochError("ng-a", 7, "taken over", final=True),
        StaleEpochError("ng-a", 8, "lease ending", final=False)])
    writer = FaultWriter(FaultBacklog(tmp_path / "journal"), lambda: tickets, Store,
                         timeout=5.0)
    async with asyncio.TaskGroup() as tg:
        task = tg.create_task(writer.run())
        writer.hand_over([FaultCleared(FaultKey("a", "agent", "unreachable"), NOW)],
                         Epoch("ng-a", 7))
        writer.hand_over([_opened("b")], Epoch("ng-a", 8))
        await async_wait_until(lambda: _true(writer.handled == 1), timeout=20,
                               what="the live event after a retry")
        writer.finish()
        await task
    assert tickets.handled == [_opened("b")]
    assert writer.stale_refused == {"fault_cleared": 1}
    assert (writer.rejected, writer.write_failures, writer.refusing) == (0, 0, "")
    assert [str(f) for f in tickets.fences] == ["ng-a:7", "ng-a:8", "ng-a:8"]
    assert list(writer.stale_recent) == [
        "fault_cleared a|agent|unreachable at 2026-01-01T00:00:00+00:00 "
        "(epoch ng-a:7: taken over)"]
    logged = [r for r in caplog.records if r.getMessage().startswith("refused a stale")]
    assert [(r.levelname, getattr(r, "fault", None)) for r in logged] == [
        ("WARNING", "a|agent|unreachable")]


async def test_without_the_cluster_epochs_left_in_the_journal_are_not_fenced(
        tmp_path: Path) -> None:
    tickets = FencedTickets(broken=False)
    writer = FaultWriter(FaultBacklog(tmp_path / "journal"), lambda: tickets, Store,
                         timeout=5.0, fenced=False)
    async with asyncio.TaskGroup() as tg:
        task = tg.create_task(writer.run())
        writer.hand_over([_opened("a")], Epoch("ng-a", 0))
        await async_wait_until(lambda: _true(writer.handled == 1), what="delivered")
        writer.finish()
        await task
    assert tickets.fences == [None]


def test_in_a_cluster_events_of_a_target_given_up_during_its_poll_are_dropped(
        tmp_path: Path) -> None:
    owned = {"a", "b"}
    writer = FaultWriter(FaultBacklog(tmp_path / "journal"), BuggyTickets, Store, timeout=5.0)
    writer.hand_over([_opened("c")])  # not a cluster yet: everything is taken
    writer.only_for(owned.__contains__)
    writer.hand_over([_opened("a"), _opened("c")])
    owned.discard("a")  # handed over while its next poll ran
    writer.hand_over([_opened("a"), _opened("b")])
    assert writer.disowned == 2
    assert writer.keep_for_next_start() == 3  # c (before), a (owned then), b
