"""The members table and the leader lock against a real PostgreSQL."""

from __future__ import annotations

import asyncpg  # type: ignore[import-untyped]
import pytest

from netguard.cluster.leader import LEADER_APPLICATION_PREFIX, LeaderLock, leader_engine
from netguard.cluster.members import MemberTable
from netguard.store import Store
from netguard.store.config import StoreConfig
from tests.support.wait import async_wait_until

pytestmark = pytest.mark.integration


async def test_members_join_heartbeat_and_leave(pg_store: Store) -> None:
    table = MemberTable(pg_store.engine)
    a, before = await table.join("a", 30.0, host="h1", pid=11)
    b, _ = await table.join("b", 30.0, host="h2", pid=12)
    assert before is None
    assert (a.incarnation, b.incarnation) == (1, 1)
    beat = await table.heartbeat(a)
    assert beat.renewed
    assert beat.members == ("a", "b")
    assert await table.epoch_current(a)
    assert await table.leave(a)
    assert await table.live() == ("b",)
    assert (await table.heartbeat(b)).lapsed == ()  # a clean leave leaves no row
    assert not await table.epoch_current(a)
    assert not (await table.heartbeat(a)).renewed
    assert [m.instance_id for m in await table.members()] == ["b"]


async def test_a_member_past_its_lease_is_gone_and_its_epoch_stale(pg_store: Store) -> None:
    table = MemberTable(pg_store.engine)
    short, _ = await table.join("short", 0.3)
    long, _ = await table.join("long", 60.0)
    await async_wait_until(lambda: _live_is(table, ("long",)), timeout=10,
                           what="the short lease to run out")
    assert not await table.epoch_current(short)
    beat = await table.heartbeat(short)
    assert (beat.renewed, beat.reason, beat.members) == (False, "expired", ("long",))
    rows = {m.instance_id: m for m in await table.members()}
    assert not rows["short"].live
    assert rows["short"].age_seconds >= 0.3
    # A live member's heartbeat reads the lapsed one with its expiry (the catch-up's).
    lapsed = (await table.heartbeat(long)).lapsed
    assert [lapse.instance_id for lapse in lapsed] == ["short"]
    assert lapsed[0].expired == pytest.approx(rows["short"].heartbeat_at.timestamp() + 0.3,
                                              abs=1e-3)
    # Joining again is a new incarnation; the old epoch stays refused.
    again, previous = await table.join("short", 60.0)
    assert again.incarnation == short.incarnation + 1
    assert previous is not None
    assert not previous.live
    assert await table.epoch_current(again)
    assert not await table.epoch_current(short)


async def test_a_second_registration_of_the_same_id_takes_it_over(pg_store: Store) -> None:
    table = MemberTable(pg_store.engine)
    first, _ = await table.join("dup", 60.0, pid=1)
    second, previous = await table.join("dup", 60.0, pid=2)
    assert previous is not None
    assert previous.live
    assert previous.pid == 1
    beat = await table.heartbeat(first)
    assert (beat.renewed, beat.reason) == (False, "taken over")
    assert (await table.heartbeat(second)).renewed


async def test_the_leader_lock_is_held_by_one_and_lost_with_its_connection(
        pg_config: StoreConfig, pg_url: str) -> None:
    first = LeaderLock(leader_engine(pg_config, "a", 30.0))
    second = LeaderLock(leader_engine(pg_config, "b", 30.0))
    try:
        assert await first.try_acquire()
        assert not await second.try_acquire()
        assert await first.try_acquire()  # kept while held
        await _terminate(pg_url, f"{LEADER_APPLICATION_PREFIX}a")
        assert not await first.check()
        assert not first.held
        assert await second.try_acquire()
        assert not await first.try_acquire()
        await second.release()
        assert await first.try_acquire()
    finally:
        await first.close()
        await second.close()


async def test_the_leader_lock_is_released_by_the_server_after_an_idle_lease(
        pg_config: StoreConfig) -> None:
    # A leader that stops talking (paused, cut off) loses the lock on the server.
    first = LeaderLock(leader_engine(pg_config, "a", 1.0))
    second = LeaderLock(leader_engine(pg_config, "b", 30.0))
    try:
        assert await first.try_acquire()
        await async_wait_until(second.try_acquire, timeout=15,
                               what="the idle leader session to be ended")
        assert not await first.check()
    finally:
        await first.close()
        await second.close()


async def _live_is(table: MemberTable, expected: tuple[str, ...]) -> bool:
    return await table.live() == expected


async def _terminate(url: str, application_name: str) -> None:
    conn = await asyncpg.connect(url)
    try:
        killed = await conn.fetchval(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE application_name = $1 AND datname = current_database()", application_name)
        assert killed == 1
    finally:
        await conn.close()
