"""Acceptance 5: a dead agent, a rebooting agent and a value of the wrong type."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from netguard.probes.config import ProbesConfig
from netguard.probes.service import ProbeService
from netguard.probes.state import TargetStatus
from netguard.sim import SimRecord, SnmpSim, build_agent
from tests.probes.conftest import FAST, targets
from tests.support.timing import slack

pytestmark = pytest.mark.integration

TIMEOUT, RETRIES, MARGIN = 0.5, 1, 0.5


@pytest.fixture
def victim(tmp_path: Path) -> Iterator[SnmpSim]:
    """An agent in its own simulator, so it can die alone."""
    with SnmpSim([build_agent("victim", "fiber")], tmp_path / "victim") as s:
        yield s


async def test_dead_agent_is_unreachable_in_time_and_others_keep_schedule(
        sim: SnmpSim, victim: SnmpSim) -> None:
    dead = victim.target("victim", timeout_seconds=TIMEOUT, retries=RETRIES, thresholds=FAST)
    live = sim.target("fiber-normal", "live", timeout_seconds=TIMEOUT, retries=RETRIES)
    async with ProbeService(targets(dead, live)) as probes:
        assert (await probes.poll("victim")).status.reachable
        victim.kill()

        live_polls: list[TargetStatus] = []
        started = time.monotonic()
        victim_poll = asyncio.create_task(probes.poll("victim"), name="test.victim")

        async def keep_polling_live() -> None:
            # At least one live poll, and more for as long as the dead one is pending.
            live_polls.append((await probes.poll("live")).status)
            while not victim_poll.done():
                live_polls.append((await probes.poll("live")).status)

        await keep_polling_live()
        outcome = await victim_poll
        took = time.monotonic() - started

    status = outcome.status
    assert status.state == "unreachable"
    assert status.reachable is False
    assert status.reasons[0].startswith(f"no response from {victim.address} within 0.5 s x 2")
    assert [e.key.condition for e in outcome.events] == ["unreachable"]
    # On loopback the kernel's port-unreachable lets gufo tell a killed agent at once (the
    # reason says so); at worst it waits out its tries. The overhead allowance scales with
    # this machine's measured slowdown (tests/support/timing.py).
    assert took <= TIMEOUT * (RETRIES + 1) + slack(MARGIN)
    assert status.poll_duration_seconds is not None
    # The live target kept being polled, and answering, while the dead one failed.
    assert live_polls
    assert all(p.reachable for p in live_polls)


async def test_reboot_shows_no_traffic_spike(tmp_path: Path) -> None:
    with SnmpSim([build_agent("reboot", "fiber")], tmp_path / "reboot") as s:
        async with ProbeService(targets(s.target("reboot"))) as probes:
            # Let uptime and counters grow so the reboot visibly winds both back.
            first = (await probes.poll("reboot")).status
            status = first
            deadline = time.monotonic() + 15
            while status is first or ((status.sys_uptime_seconds or 0) < 2.0
                                      and time.monotonic() < deadline):
                status = (await probes.poll("reboot")).status
            assert status.interfaces[0].in_bps is not None
            normal_bps = status.interfaces[0].in_bps
            before = status.interfaces[0].in_octets
            s.restart()
            after = (await probes.poll("reboot")).status
            assert after.reachable
            assert after.interfaces[0].in_octets is not None
            assert before is not None
            assert all(i.in_bps is None and i.out_bps is None for i in after.interfaces)
            assert any("(agent restarted)" in p for p in after.problems), after.problems
            # The next poll has rates again, of the normal size.
            status = after
            while status.interfaces[0].in_bps is None and time.monotonic() < deadline:
                status = (await probes.poll("reboot")).status
            assert status.interfaces[0].in_bps is not None
            assert status.interfaces[0].in_bps < normal_bps * 3


async def test_wrong_type_gives_a_reason_and_the_poll_continues(tmp_path: Path) -> None:
    agent = build_agent("odd-cabin", "cabin_5g")
    charge = "1.3.6.1.2.1.33.1.2.4.0"
    agent.records = [SimRecord(r.oid, 4, "full") if r.oid == charge else r
                     for r in agent.records]
    with SnmpSim([agent], tmp_path / "odd") as s:
        async with ProbeService(targets(s.target("odd-cabin"))) as probes:
            status = (await probes.poll("odd-cabin")).status
            again = (await probes.poll("odd-cabin")).status
    assert status.reachable
    assert status.state == "up"
    assert "ups_charge_percent: expected a number, got text 'full'" in status.reasons
    assert status.ups is not None
    assert status.ups.charge_percent is None
    assert status.ups.minutes_remaining == 90
    assert status.interfaces
    assert again.polls == 2


async def test_failing_table_walk_keeps_the_rest_of_the_poll(tmp_path: Path) -> None:
    agent = build_agent("broken-table", "cabin_5g", scenario="degraded")
    alias2 = "1.3.6.1.2.1.31.1.1.1.18.2"
    agent.records = [SimRecord(r.oid, 4, "op=any,status=genError", "error")
                     if r.oid == alias2 else r for r in agent.records]
    with SnmpSim([agent], tmp_path / "broken") as broken:
        # pysnmp reports the genErr; gufo-snmp hides error-status and ends the column
        # early instead (tests/probes/test_transport_contract.py, docs/probes.md).
        async with ProbeService(targets(broken.target("broken-table", thresholds=FAST)),
                                probes=ProbesConfig(engine="pysnmp")) as probes:
            status = (await probes.poll("broken-table")).status
    assert status.reachable
    assert status.state == "degraded"
    assert status.sys_uptime_seconds is not None
    assert status.ups is not None
    assert status.ups.on_battery
    assert status.interfaces == ()
    assert any(p.startswith("table walk failed: GETBULK failed: genErr")
               for p in status.problems), status.problems
