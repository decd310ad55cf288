"""Two or three nodes against a real PostgreSQL: ownership, leader failover, fencing."""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack, asynccontextmanager

import asyncpg  # type: ignore[import-untyped]
import pytest
from pydantic import SecretStr

from netguard.cluster.config import ClusterConfig
from netguard.cluster.leader import LEADER_APPLICATION_PREFIX, LeaderLock, leader_engine
from netguard.cluster.members import MemberTable
from netguard.cluster.node import ClusterNode
from netguard.cluster.rendezvous import assign
from netguard.store import Store
from netguard.store.config import StoreConfig
from tests.daemon.tcpproxy import TcpProxy
from tests.support.wait import async_wait_until

pytestmark = pytest.mark.integration

TARGETS = [f"t{i:03d}" for i in range(60)]
Applied = list[tuple[str, ...]]


@asynccontextmanager
async def running_node(config: StoreConfig, name: str, *, heartbeat: float = 0.3,
                       lease: float = 3.0) -> AsyncIterator[tuple[ClusterNode, Applied]]:
    """A started node named ``name``; yields it and the owned sets it was told of."""
    applied: list[tuple[str, ...]] = []

    async def on_owned(owned: tuple[str, ...]) -> None:
        applied.append(owned)

    cluster = ClusterConfig(enabled=True, instance_id=name, heartbeat_seconds=heartbeat,
                            lease_seconds=lease)
    async with Store(config) as store:
        node = ClusterNode(cluster, MemberTable(store.engine),
                           LeaderLock(leader_engine(config, name, lease)), TARGETS,
                           on_owned=on_owned, timeout=config.operation_timeout_seconds)
        await node.start()
        try:
            yield node, applied
        finally:
            await node.stop()


def _split(nodes: list[ClusterNode]) -> Callable[[], bool]:
    def settled() -> bool:
        names = sorted(n.instance_id for n in nodes)
        expected = assign(TARGETS, names)
        return all(n.members == tuple(names) and list(n.owned) == expected[n.instance_id]
                   for n in nodes) and sum(n.is_leader for n in nodes) == 1
    return settled


async def _true(predicate: Callable[[], bool]) -> bool:
    return predicate()


async def test_nodes_split_the_targets_and_one_leads(pg_config: StoreConfig) -> None:
    async with running_node(pg_config, "a") as (a, applied_a), \
            running_node(pg_config, "b") as (b, _), running_node(pg_config, "c") as (c, _):
        await async_wait_until(lambda: _true(_split([a, b, c])), timeout=60,
                               what="three nodes to agree")
        owned = [set(n.owned) for n in (a, b, c)]
        assert set().union(*owned) == set(TARGETS)
        assert sum(len(o) for o in owned) == len(TARGETS)
        assert applied_a[0] == tuple(TARGETS)  # alone at first, it owned everything
        assert applied_a[-1] == a.owned
        views = [n.view() for n in (a, b, c)]
        assert {v.members for v in views} == {3}
        assert sum(v.leader for v in views) == 1
    # b and c left cleanly: their rows are gone at once.


async def test_a_leaving_node_hands_over_its_targets_and_leadership(
        pg_config: StoreConfig) -> None:
    async with running_node(pg_config, "a") as (a, _):
        async with running_node(pg_config, "b") as (b, _):
            await async_wait_until(lambda: _true(_split([a, b])), timeout=60,
                                   what="two nodes to agree")
        # b left cleanly (its row is gone): a sees it at its next heartbeat.
        await async_wait_until(lambda: _true(lambda: a.is_leader and a.members == ("a",)
                                             and a.owned == tuple(TARGETS)), timeout=60,
                               what="a to take over b's targets and leadership")


async def test_the_leader_fails_over_when_its_connection_is_closed(
        pg_config: StoreConfig, pg_url: str) -> None:
    async with running_node(pg_config, "a") as (a, _), running_node(pg_config, "b") as (b, _):
        await async_wait_until(lambda: _true(_split([a, b])), timeout=60,
                               what="two nodes to agree")
        leader, other = (a, b) if a.is_leader else (b, a)
        seen: list[bool] = []
        leader.add_leader_listener(seen.append)
        conn = await asyncpg.connect(pg_url)
        try:
            await conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                               "WHERE application_name = $1 AND datname = current_database()",
                               f"{LEADER_APPLICATION_PREFIX}{leader.instance_id}")
        finally:
            await conn.close()
        await async_wait_until(lambda: _true(lambda: not leader.is_leader or other.is_leader),
                               timeout=60, what="the leader to notice its lost connection")
        await async_wait_until(lambda: _true(lambda: sum((a.is_leader, b.is_leader)) == 1),
                               timeout=60, what="one leader again")
        assert False in seen
        # Ownership did not move: both are still members.
        assert a.members == b.members == ("a", "b")


@pytest.mark.parametrize("failure", ["cut", "freeze"])
async def test_a_node_cut_off_from_the_database_fences_itself(pg_config: StoreConfig,
                                                                pg_url: str, failure: str
                                                                ) -> None:
    # cut: connections refused; freeze: a hung server (nothing answers, nothing closes),
    # where only the fence deadline bounds the heartbeat.
    proxy = await TcpProxy("127.0.0.1", _pg_port(pg_url)).start()
    via_proxy = pg_config.model_copy(update={"url": SecretStr(
        pg_url.replace(f"127.0.0.1:{_pg_port(pg_url)}", f"127.0.0.1:{proxy.port}"))})
    try:
        async with running_node(via_proxy, "cut") as (cut, applied), \
                running_node(pg_config, "ok") as (ok, _):
            await async_wait_until(lambda: _true(_split([cut, ok])), timeout=60,
                                   what="two nodes to agree")
            first_epoch = cut.epoch
            await (proxy.cut() if failure == "cut" else proxy.freeze())
            await async_wait_until(lambda: _true(lambda: cut.fenced and not cut.is_leader
                                                 and cut.owned == ()), timeout=60,
                                   what="the cut-off node to fence itself")
            assert applied[-1] == ()
            assert not cut.is_leader
            assert cut.view().members == 0
            await async_wait_until(lambda: _true(lambda: ok.owned == tuple(TARGETS)
                                                 and ok.is_leader), timeout=60,
                                   what="the other node to take everything over")
            # Its old epoch is refused from now on: the others may have acted on it.
            assert first_epoch is not None
            async with Store(pg_config) as store:
                assert not await MemberTable(store.engine).epoch_current(first_epoch)
            if failure == "freeze":
                return  # a hung server never comes back in this test
            await proxy.restore()
            await async_wait_until(lambda: _true(_split([cut, ok])), timeout=60,
                                   what="the node to rejoin after the cut")
            assert cut.epoch is not None
            assert cut.epoch.incarnation > first_epoch.incarnation
    finally:
        await proxy.close()


def _pg_port(url: str) -> int:
    return int(url.split("@", 1)[1].split("/", 1)[0].split(":")[1])


async def test_a_newcomer_takes_no_target_before_the_others_let_go(
        pg_config: StoreConfig) -> None:
    # Every owned set as each node applies it; at no moment may two nodes hold a target.
    current: dict[str, set[str]] = {}
    overlaps: list[tuple[str, set[str]]] = []
    applied: dict[str, list[tuple[str, ...]]] = {}

    def listener(name: str) -> Callable[[tuple[str, ...]], Awaitable[None]]:
        async def on_owned(owned: tuple[str, ...]) -> None:
            applied.setdefault(name, []).append(owned)
            others = set().union(*(o for n, o in current.items() if n != name))
            if others & set(owned):
                overlaps.append((name, others & set(owned)))
            current[name] = set(owned)
        return on_owned

    async with AsyncExitStack() as stack:
        nodes = []
        for name in ("a", "b", "c"):
            store = await stack.enter_async_context(Store(pg_config))
            cluster = ClusterConfig(enabled=True, instance_id=name, heartbeat_seconds=0.3,
                                    lease_seconds=3.0)
            node = ClusterNode(cluster, MemberTable(store.engine),
                               LeaderLock(leader_engine(pg_config, name, 3.0)), TARGETS,
                               on_owned=listener(name),
                               timeout=pg_config.operation_timeout_seconds)
            await node.start()
            stack.push_async_callback(node.stop)
            nodes.append(node)
            await async_wait_until(lambda: _true(_split(nodes)), timeout=60,
                                   what=f"{name} to take its share")
        assert overlaps == []
        # Alone, "a" owned everything at once; "b" and "c" joined while others were live:
        # their first ownership was empty (settling), their share came after.
        assert applied["a"][0] == tuple(TARGETS)
        assert applied["b"][0] == ()
        assert applied["c"][0] == ()
        assert all(n.settle is None for n in nodes)
        assert all(n.clock.offset is not None for n in nodes)


async def _sees(node: ClusterNode, name: str) -> bool:
    return name in node.members


async def test_targets_of_a_lapsed_member_come_with_its_expiry_a_leaver_s_do_not(
        pg_config: StoreConfig) -> None:
    # "a" is a node; "b" and "c" are bare registrations. "b" stops heartbeating (as if
    # killed): "a" gains its targets with b's lease expiry (the catch-up's input); "c"
    # leaves cleanly: "a" gains its targets with none.
    seen: list[tuple[tuple[str, ...], dict[str, float]]] = []
    cluster = ClusterConfig(enabled=True, instance_id="a", heartbeat_seconds=0.3,
                            lease_seconds=3.0)
    async with Store(pg_config) as store:
        table = MemberTable(store.engine)
        node: ClusterNode

        async def on_owned(owned: tuple[str, ...]) -> None:
            seen.append((owned, dict(node.taken_over)))

        node = ClusterNode(cluster, table, LeaderLock(leader_engine(pg_config, "a", 3.0)),
                           TARGETS, on_owned=on_owned,
                           timeout=pg_config.operation_timeout_seconds)
        await node.start()
        try:
            for name, lease in (("c", 60.0), ("b", 2.0)):
                epoch, _ = await table.join(name, lease)
                await async_wait_until(
                    functools.partial(_sees, node, name), timeout=60, what=f"a to see {name}")
                if name == "c":
                    c = epoch
            owned_by_b = set(assign(TARGETS, ["a", "b", "c"])["b"])
            await async_wait_until(lambda: _true(lambda: node.members == ("a", "c")),
                                   timeout=60, what="b's lease to run out")
            row = {m.instance_id: m for m in await table.members()}["b"]
            owned, taken = seen[-1]
            # What "a" gains of b's targets (c gains the rest), each with b's expiry.
            gained = owned_by_b & set(assign(TARGETS, ["a", "c"])["a"])
            assert gained
            assert owned == tuple(assign(TARGETS, ["a", "c"])["a"])
            assert set(taken) == gained
            expiry = row.heartbeat_at.timestamp() + 2.0
            assert all(v == pytest.approx(expiry, abs=1e-3) for v in taken.values())
            assert node.taken_over == {}  # only while the listener runs
            assert await table.leave(c)
            await async_wait_until(lambda: _true(lambda: node.members == ("a",)),
                                   timeout=60, what="a to see c leave")
            owned, taken = seen[-1]
            assert owned == tuple(TARGETS)
            assert taken == {}
        finally:
            await node.stop()
