"""Fenced ticket writes against a real PostgreSQL: a live epoch writes, a stale one is
refused inside the write's own transaction, and a rejoin racing with a write serialises."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest
from sqlalchemy import text

from netguard.clock import ManualClock
from netguard.cluster.fence import MARGIN_SHARE, EpochFence
from netguard.cluster.members import Epoch, MemberTable
from netguard.errors import StaleEpochError
from netguard.faults import FaultCleared, FaultKey, FaultOpened
from netguard.store import Store
from netguard.tickets.config import TicketsConfig
from netguard.tickets.domain import Ticket, TicketState
from netguard.tickets.service import TicketService
from tests.support.wait import async_wait_until

pytestmark = pytest.mark.integration

KEY = FaultKey("olt-1", "if:3", "oper_down")
START = datetime(2026, 12, 4, 8, 0, tzinfo=UTC)


def _opened() -> FaultOpened:
    return FaultOpened(key=KEY, category="fiber", site=None, severity="major",
                       summary="olt-1: if:3 down", reasons=("if:3 down",), at=START)


def _cleared() -> FaultCleared:
    return FaultCleared(key=KEY, at=START, reasons=("if:3 up",))


def _service(store: Store, clock: ManualClock | None = None) -> TicketService:
    return TicketService(store, TicketsConfig(), clock=clock or ManualClock(START))


async def _only_ticket(tickets: TicketService) -> Ticket:
    found = await tickets.list()
    assert len(found) == 1
    return found[0]


async def _history(store: Store, ticket_id: int) -> list[tuple[str, str | None]]:
    """``(action, writer)`` of a ticket's audit records."""
    async with store.engine.connect() as conn:
        rows = await conn.execute(text("SELECT action, writer FROM ticket_event "
                                       "WHERE ticket_id = :i ORDER BY id"), {"i": ticket_id})
        return [(str(r[0]), r[1]) for r in rows]


async def _refused(tickets: TicketService, epoch: Epoch) -> StaleEpochError:
    with pytest.raises(StaleEpochError) as caught:
        await tickets.handle(_cleared(), fence=EpochFence(epoch))
    return caught.value


async def test_a_live_epoch_writes_and_a_stale_one_is_refused_in_its_transaction(
        pg_store: Store) -> None:
    table = MemberTable(pg_store.engine)
    tickets = _service(pg_store)
    first, _ = await table.join("a", 30.0)
    await tickets.handle(_opened(), fence=EpochFence(first))
    ticket = await _only_ticket(tickets)
    assert ticket.state is TicketState.OPEN

    # The instance re-registered: what it raised under its first epoch is stale. The
    # clear's writes ran before the check at the end and were rolled back with it.
    second, _ = await table.join("a", 30.0)
    refused = await _refused(tickets, first)
    assert (refused.reason, refused.final) == ("taken over", True)
    assert (await _only_ticket(tickets)).cleared_at is None
    assert await _history(pg_store, ticket.id) == [("opened", "a:1")]
    # An event a previous process journalled comes back under incarnation 0.
    assert (await _refused(tickets, Epoch("a", 0))).reason == "an earlier run"

    # The lease's last quarter: not final, the event waits for the next heartbeat.
    async with pg_store.engine.begin() as conn:
        await conn.execute(text(
            "UPDATE cluster_member SET heartbeat_at = now() - make_interval(secs => 25)"))
    refused = await _refused(tickets, second)
    assert (refused.reason, refused.final) == ("lease ending", False)
    assert (await table.heartbeat(second)).renewed

    await tickets.handle(_cleared(), fence=EpochFence(second))
    assert (await _only_ticket(tickets)).cleared_at is not None
    assert await _history(pg_store, ticket.id) == [("opened", "a:1"), ("cleared", "a:2")]
    await tickets.handle(_opened())  # outside a cluster: no writer
    assert (await _history(pg_store, ticket.id))[2:] == [("flap", None), ("repeat", None)]

    async with pg_store.engine.begin() as conn:
        await conn.execute(text(
            "UPDATE cluster_member SET heartbeat_at = now() - make_interval(secs => 31)"))
    assert (await _refused(tickets, second)).reason == "expired"
    assert await table.leave(second)
    assert (await _refused(tickets, second)).reason == "missing"


async def test_a_sweep_under_a_stale_epoch_resolves_nothing(pg_store: Store) -> None:
    # A leader paused mid-sweep past its lease: another instance leads now.
    table = MemberTable(pg_store.engine)
    clock = ManualClock(START)
    tickets = _service(pg_store, clock)
    first, _ = await table.join("a", 30.0)
    await tickets.handle(_opened(), fence=EpochFence(first))
    await tickets.handle(_cleared(), fence=EpochFence(first))
    clock.advance(TicketsConfig().resolve_hold_seconds + 60)
    second, _ = await table.join("a", 30.0)
    with pytest.raises(StaleEpochError):
        await tickets.sweep(fence=EpochFence(first))
    ticket = await _only_ticket(tickets)
    assert (ticket.state, ticket.resolved_at) == (TicketState.OPEN, None)
    assert (await tickets.sweep(fence=EpochFence(second))).resolved == (ticket.ref,)
    assert (await _only_ticket(tickets)).state is TicketState.RESOLVED


async def test_the_fence_sets_the_idle_timeout_that_ends_a_paused_commit(
        pg_store: Store) -> None:
    table = MemberTable(pg_store.engine)
    epoch, _ = await table.join("a", 2.0)
    async with pg_store.engine.connect() as conn, conn.begin():
        await EpochFence(epoch)(conn)
        shown = (await conn.execute(text("SHOW idle_in_transaction_session_timeout")))
        assert shown.scalar() == f"{round(2.0 * MARGIN_SHARE * 1000)}ms"
    # After the commit the session's own setting is back.
    async with pg_store.engine.connect() as conn:
        shown = await conn.execute(text("SHOW idle_in_transaction_session_timeout"))
        assert shown.scalar() == "0"


async def test_a_fenced_transaction_left_idle_before_commit_is_ended_by_the_server(
        pg_store: Store) -> None:
    # A process stopped between the check and COMMIT: the server ends its session
    # within the margin, so the write never lands after the lease.
    table = MemberTable(pg_store.engine)
    tickets = _service(pg_store)
    epoch, _ = await table.join("a", 2.0)
    await tickets.handle(_opened(), fence=EpochFence(epoch))
    ticket = await _only_ticket(tickets)
    conn = await pg_store.engine.connect()
    try:
        tx = await conn.begin()
        pid = (await conn.execute(text("SELECT pg_backend_pid()"))).scalar()
        await conn.execute(text("UPDATE ticket SET summary = 'stale' WHERE id = :i"),
                           {"i": ticket.id})
        await EpochFence(epoch)(conn)
        await async_wait_until(lambda: _gone(pg_store, pid), timeout=20,
                               what="the server to end the idle fenced session")
        with pytest.raises(Exception):  # noqa: B017 - the driver's "connection closed"
            await tx.commit()
    finally:
        await conn.invalidate()
        await conn.close()
    assert (await _only_ticket(tickets)).summary == "olt-1: if:3 down"


async def _gone(store: Store, pid: object) -> bool:
    async with store.engine.connect() as conn:
        found = await conn.execute(text("SELECT 1 FROM pg_stat_activity WHERE pid = :p"),
                                   {"p": pid})
        return found.first() is None


async def _waiting_on_a_lock(store: Store) -> bool:
    async with store.engine.connect() as conn:
        found = await conn.execute(text(
            "SELECT 1 FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
            "AND datname = current_database()"))
        return found.first() is not None


async def test_a_rejoin_waits_for_a_fenced_write_that_checked_first(pg_store: Store) -> None:
    table = MemberTable(pg_store.engine)
    first, _ = await table.join("a", 30.0)
    async with pg_store.engine.connect() as conn:
        tx = await conn.begin()
        await EpochFence(first)(conn)  # the write's check holds the row until it commits
        rejoin = asyncio.get_running_loop().create_task(table.join("a", 30.0))
        await async_wait_until(lambda: _waiting_on_a_lock(pg_store), timeout=20,
                               what="the rejoin to wait on the fenced write")
        assert not rejoin.done()
        await tx.commit()
    second, _ = await asyncio.wait_for(rejoin, 20)
    assert second.incarnation == first.incarnation + 1
    assert not await table.epoch_current(first)


async def test_a_fenced_write_waits_for_a_rejoin_under_way_and_is_refused(
        pg_store: Store) -> None:
    table = MemberTable(pg_store.engine)
    tickets = _service(pg_store)
    epoch, _ = await table.join("a", 30.0)
    await tickets.handle(_opened(), fence=EpochFence(epoch))
    async with pg_store.engine.connect() as conn:
        # A join of the same id under way: the row locked and its incarnation bumped.
        tx = await conn.begin()
        await conn.execute(text("SELECT 1 FROM cluster_member WHERE instance_id = 'a' "
                                "FOR UPDATE"))
        await conn.execute(text("UPDATE cluster_member SET incarnation = incarnation + 1 "
                                "WHERE instance_id = 'a'"))
        write = asyncio.get_running_loop().create_task(
            tickets.handle(_cleared(), fence=EpochFence(epoch)))
        await async_wait_until(lambda: _waiting_on_a_lock(pg_store), timeout=20,
                               what="the fenced write to wait on the rejoin")
        assert not write.done()
        await tx.commit()
    with pytest.raises(StaleEpochError) as caught:
        await asyncio.wait_for(write, 20)
    assert caught.value.reason == "taken over"
    assert (await _only_ticket(tickets)).cleared_at is None
