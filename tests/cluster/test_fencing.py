"""A node cut off from PostgreSQL through a TCP proxy writes nothing stale afterwards,
and ``/readyz`` says so while it is fenced (in-process nodes and daemons)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from pydantic import SecretStr
from sqlalchemy import text

from netguard.clock import ManualClock
from netguard.cluster.config import ClusterConfig
from netguard.cluster.fence import EpochFence
from netguard.cluster.leader import LeaderLock, leader_engine
from netguard.cluster.members import MemberTable
from netguard.cluster.node import ClusterNode
from netguard.cluster.rendezvous import owner
from netguard.config import settings_from_data
from netguard.daemon.app import Daemon
from netguard.daemon.backlog import FaultBacklog
from netguard.daemon.faultwriter import FaultWriter
from netguard.errors import StaleEpochError
from netguard.faults import FaultCleared, FaultKey, FaultOpened
from netguard.metrics import render
from netguard.sim import free_udp_port
from netguard.store import Store
from netguard.store.config import StoreConfig
from netguard.store.db import upgrade
from netguard.tickets.config import TicketsConfig
from netguard.tickets.domain import TicketCounts, TicketState
from netguard.tickets.service import TicketService
from tests.daemon.tcpproxy import TcpProxy
from tests.support.ports import free_tcp_port
from tests.support.wait import async_wait_until

pytestmark = pytest.mark.integration

START = datetime(2026, 12, 4, 8, 0, tzinfo=UTC)
LEASE = 3.0


def _pg_port(url: str) -> int:
    return int(url.split("@", 1)[1].split("/", 1)[0].split(":")[1])


def _via(url: str, proxy: TcpProxy) -> str:
    port = _pg_port(url)
    return url.replace(f"127.0.0.1:{port}", f"127.0.0.1:{proxy.port}")


@asynccontextmanager
async def _node(config: StoreConfig, store: Store, name: str,
                targets: list[str]) -> AsyncIterator[ClusterNode]:
    cluster = ClusterConfig(enabled=True, instance_id=name, heartbeat_seconds=0.3,
                            lease_seconds=LEASE)
    node = ClusterNode(cluster, MemberTable(store.engine),
                       LeaderLock(leader_engine(config, name, LEASE)), targets,
                       timeout=config.operation_timeout_seconds)
    await node.start()
    try:
        yield node
    finally:
        await node.stop()


async def _true(value: bool) -> bool:
    return value


def _opened(key: FaultKey, at: datetime) -> FaultOpened:
    return FaultOpened(key=key, category="fiber", site=None, severity="major",
                       summary=f"{key.target} down", reasons=("no answer",), at=at)


async def test_a_cut_off_nodes_stale_fault_cleared_is_refused_after_it_rejoins(
        pg_config: StoreConfig, pg_url: str, tmp_path: Path,
        caplog: pytest.LogCaptureFixture) -> None:
    target = next(f"olt-{i}" for i in range(100) if owner(f"olt-{i}", ["cut", "ok"]) == "cut")
    key = FaultKey(target, "device", "unreachable")
    targets = [target, "olt-other"]
    proxy = await TcpProxy("127.0.0.1", _pg_port(pg_url)).start()
    via_proxy = pg_config.model_copy(update={"url": SecretStr(_via(pg_url, proxy))})
    clock = ManualClock(START)
    caplog.set_level(logging.WARNING, "netguard.daemon.faultwriter")
    try:
        async with Store(via_proxy) as cut_store, Store(pg_config) as ok_store, \
                _node(via_proxy, cut_store, "cut", targets) as cut, \
                _node(pg_config, ok_store, "ok", targets) as ok:
            await async_wait_until(lambda: _true(cut.owns(target) and ok.members == (
                "cut", "ok") and not ok.owns(target)), timeout=20, what="cut to own it")
            cut_tickets = TicketService(cut_store, TicketsConfig(), clock=clock)
            ok_tickets = TicketService(ok_store, TicketsConfig(), clock=clock)
            writer = FaultWriter(FaultBacklog(tmp_path / "cut.journal"), lambda: cut_tickets,
                                 lambda: cut_store, timeout=3.0)
            run = asyncio.get_running_loop().create_task(writer.run())
            first = cut.epoch
            assert first is not None
            writer.hand_over([_opened(key, START)], first)
            await async_wait_until(lambda: _true(writer.handled == 1), timeout=20,
                                   what="the fault to be stored")

            await proxy.cut()
            # Its last poll saw the target answer again; the store is out of reach.
            writer.hand_over([FaultCleared(key=key, at=START + timedelta(seconds=30),
                                           reasons=("answers again",))], first)
            await async_wait_until(lambda: _true(writer.write_failures >= 1), timeout=20,
                                   what="the writer to find the store unreachable")
            await async_wait_until(lambda: _true(cut.fenced and cut.owned == ()
                                                 and ok.owns(target)), timeout=20,
                                   what="cut to fence itself and ok to take the target")
            # The new owner finds the target still down and reports it under its epoch.
            assert ok.epoch is not None
            await ok_tickets.handle(_opened(key, START + timedelta(seconds=40)),
                                    fence=EpochFence(ok.epoch))

            await proxy.restore()
            await async_wait_until(lambda: _true(not cut.fenced and cut.epoch is not None
                                                 and cut.epoch.incarnation
                                                 > first.incarnation), timeout=20,
                                   what="cut to rejoin under a new incarnation")
            writer.wake()
            await async_wait_until(lambda: _true(len(writer) == 0), timeout=20,
                                   what="the stale event to be dealt with")
            writer.finish()
            await asyncio.wait_for(run, 20)

            assert writer.stale_refused == {"fault_cleared": 1}
            assert writer.handled == 1
            assert writer.rejected == 0
            ticket = (await ok_tickets.list())[0]
            assert (ticket.state, ticket.cleared_at, ticket.occurrences) == (
                TicketState.OPEN, None, 2)
            async with ok_store.engine.connect() as conn:
                history = (await conn.execute(text(
                    "SELECT action, writer FROM ticket_event ORDER BY id"))).all()
            assert [tuple(r) for r in history] == [("opened", f"cut:{first.incarnation}"),
                                                   ("repeat", str(EpochFence(ok.epoch)))]
            refused = [r for r in caplog.records if "refused a stale fault event" in r.message]
            # Expired if the writer retried before the rejoin, taken over after it.
            assert [r.__dict__["fault"] for r in refused] == [str(key)]
            assert refused[0].__dict__["reason"] in {"expired", "taken over"}
            assert str(key) in writer.stale_recent[0]
    finally:
        await proxy.close()


def _daemon_config(url: str, directory: Path, port: int) -> dict[str, Any]:
    return {
        # One target whose agent never answers: polls cost a timeout, nothing more.
        "targets": [{"id": "olt-dead", "kind": "private_line",
                     "address": f"127.0.0.1:{free_udp_port()}",
                     "snmp": {"version": "2c", "community": "public"},
                     "interval_seconds": 5.0, "timeout_seconds": 0.3, "retries": 0}],
        "store": {"url": url, "operation_timeout_seconds": 3, "connect_timeout_seconds": 2,
                  "statement_timeout_seconds": 2},
        "metrics": {"listen": f"127.0.0.1:{port}"},
        "daemon": {"sweep_interval_seconds": 0.5,
                   "fault_journal": str(directory / "fault.journal")},
        "cluster": {"enabled": True, "instance_id": "solo", "heartbeat_seconds": 0.3,
                    "lease_seconds": LEASE},
    }


class StaleSweep:
    """A ticket service whose sweep finds the leader's epoch stale."""

    async def sweep(self, *, still_active: object = None, fence: object = None) -> None:
        assert fence is not None
        raise StaleEpochError("solo", 1, "expired", final=True)

    async def handle(self, event: object, *, fence: object = None) -> None:
        raise NotImplementedError

    async def counts(self) -> TicketCounts:
        return TicketCounts(open={})


async def _readyz(url: str) -> tuple[int, dict[str, Any]]:
    timeout = aiohttp.ClientTimeout(total=10)
    async with aiohttp.ClientSession(timeout=timeout) as http, \
            http.get(f"{url}/readyz") as response:
        body: dict[str, Any] = await response.json()
        return response.status, body


async def test_readyz_is_not_ready_while_fenced_and_ready_again_after_rejoining(
        pg_url: str, tmp_path: Path) -> None:
    proxy = await TcpProxy("127.0.0.1", _pg_port(pg_url)).start()
    settings = settings_from_data(_daemon_config(_via(pg_url, proxy), tmp_path,
                                                 free_tcp_port()))
    await upgrade(settings.store)
    stop = asyncio.Event()
    try:
        async with Daemon(settings) as daemon:
            serving = asyncio.get_running_loop().create_task(daemon.serve(stop))
            url = daemon.metrics_url
            assert url is not None
            assert daemon.cluster is not None

            async def ready() -> bool:
                status, body = await _readyz(url)
                return status == 200 and body["checks"].get("cluster") is True

            await async_wait_until(ready, timeout=30, what="the daemon to be ready")
            await proxy.cut()

            async def fenced() -> dict[str, Any] | None:
                status, body = await _readyz(url)
                return body if status == 503 and "cluster" in body.get("reasons", {}) else None

            body = await async_wait_until(fenced, timeout=30, what="/readyz to say fenced")
            assert body["checks"]["cluster"] is False
            assert body["reasons"]["cluster"].startswith("cluster: fenced")
            text = render(daemon.metrics_snapshot()).decode()
            assert "netguard_cluster_members 0" in text
            assert 'netguard_cluster_stale_writes_refused_total{write="fault_cleared"} 0' in text

            await proxy.restore()
            await async_wait_until(ready, timeout=30, what="ready again after rejoining")
            _, body = await _readyz(url)
            assert "cluster" not in body.get("reasons", {})
            # A sweep whose epoch went stale under it is counted, not raised.
            assert await daemon.cluster.sweep_tickets(StaleSweep(), lambda _k: True) is None
            text = render(daemon.metrics_snapshot()).decode()
            assert 'netguard_cluster_stale_writes_refused_total{write="ticket_sweep"} 1' in text
            stop.set()
            await serving
    finally:
        stop.set()
        await proxy.close()
