"""A trap brings a target's poll forward (real daemon services, snmpsim, net-snmp snmptrap)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from netguard.config import settings_from_data
from netguard.daemon.app import Daemon
from netguard.sim import SnmpSim, build_agent
from netguard.store import upgrade
from tests.support.ports import free_udp_port
from tests.support.tools import require_tool
from tests.support.wait import async_wait_until

pytestmark = [pytest.mark.integration,
              require_tool("snmptrap")]


async def test_link_down_trap_triggers_an_immediate_poll(tmp_path: Path) -> None:
    agent = build_agent("fiber-trap", "fiber")
    trap_port = free_udp_port()
    with SnmpSim([agent], tmp_path / "sim") as sim:
        settings = settings_from_data({
            # An hour between polls: only the trap can cause a second one.
            "targets": [sim.target(agent.name, interval_seconds=3600)],
            "store": {"path": str(tmp_path / "netguard.db")},
            "metrics": {"enabled": False},
            "daemon": {"trap_listen": f"127.0.0.1:{trap_port}", "poll_jitter_seconds": 0,
                       "shutdown_timeout_seconds": 5},
        })
        await upgrade(settings.store)
        stop = asyncio.Event()
        polls: list[str] = []
        async with Daemon(settings) as daemon, asyncio.TaskGroup() as tg:
            daemon.on_poll.append(lambda outcome: polls.append(outcome.status.target))
            tg.create_task(daemon.serve(stop))
            await async_wait_until(lambda: _true(len(polls) == 1), timeout=30,
                                   what="first poll")
            proc = await asyncio.create_subprocess_exec(
                "snmptrap", "-v", "2c", "-c", agent.name, f"127.0.0.1:{trap_port}", "",
                "1.3.6.1.6.3.1.1.5.3", "1.3.6.1.2.1.2.2.1.1.1", "i", "1")
            assert await proc.wait() == 0
            await async_wait_until(lambda: _true(len(polls) == 2), timeout=30,
                                   what="poll brought forward by the trap")
            stop.set()
        assert polls == ["fiber-trap", "fiber-trap"]


async def _true(value: bool) -> bool:
    return value
