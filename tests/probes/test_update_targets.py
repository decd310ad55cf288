"""A reload changes the probe service's targets in place, against real snmpsim agents.

Kept targets keep their last sample (the first poll after the reload has rates), their
fault state and their session; a retuned target is judged by its new thresholds at once;
a replaced one polls with its new settings and carries its active faults; a removed one
leaves the statuses; an added one is polled. No polling engine is opened a second time.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Iterator
from typing import Any

import pytest

from netguard.errors import NotFoundError
from netguard.faults import FaultCleared, FaultKey, FaultOpened
from netguard.probes.config import PollEngine, ProbesConfig
from netguard.probes.service import ProbeService, TargetChanges
from netguard.sim import SnmpSim
from tests.probes.conftest import FAST, targets
from tests.support.wait import async_wait_until

pytestmark = pytest.mark.integration

QUICK = {"timeout_seconds": 0.3, "retries": 0}
UNREACHABLE = ("agent", "unreachable")


@pytest.mark.parametrize("engine", ["gufo", "pysnmp"])
async def test_update_keeps_retunes_replaces_adds_and_removes_in_place(
        sim: SnmpSim, engine: PollEngine) -> None:
    keep = sim.target("fiber-normal", "keep")
    tune = sim.target("wireless-normal", "tune", thresholds=FAST)
    drop = sim.target("private_line-normal", "drop")
    swap = sim.target("fiber-down", "swap", thresholds=FAST, **QUICK)
    async with ProbeService(targets(keep, tune, drop, swap),
                            probes=ProbesConfig(engine=engine)) as probes:
        first = {o.status.target: o for o in await probes.poll_all()}
        assert first["keep"].status.interfaces[0].in_bps is None  # no previous sample
        assert first["tune"].status.state == "up"
        swap_faults = {e.key for e in first["swap"].events if isinstance(e, FaultOpened)}
        assert swap_faults  # the "down" scenario opened faults (raise_after 1)
        assert probes.engines_opened == 1

        retuned = {**tune, "thresholds": {**FAST, "signal_low_dbm": 0.0,
                                          "signal_low_clear_dbm": 1.0}}
        wrong = {**swap, "snmp": {**swap["snmp"], "community": "not-fiber-down"}}
        added = sim.target("cabin_5g-normal", "new")
        changes = await probes.update_targets(targets(keep, retuned, wrong, added))

        assert changes == TargetChanges(added=("new",), removed=("drop",),
                                        replaced=("swap",), retuned=("tune",))
        assert probes.engines_opened == 1
        statuses = probes.statuses()
        assert list(statuses) == ["keep", "tune", "swap", "new"]
        assert statuses["keep"] is first["keep"].status  # shown until polled again
        assert statuses["swap"].state == "down"
        assert statuses["new"].last_poll_at is None
        with pytest.raises(NotFoundError):
            probes.status("drop")
        with pytest.raises(NotFoundError):
            await probes.poll("drop")
        # The replaced target's faults are still held (its tickets must not resolve).
        assert swap_faults <= {f.key for f in probes.active_faults()}

        kept = (await probes.poll("keep")).status
        assert kept.interfaces[0].in_bps is not None  # a rate on the first poll after
        assert kept.polls == 2

        tuned = await probes.poll("tune")
        assert tuned.status.interfaces[0].in_bps is not None
        assert [e.key.condition for e in tuned.events] == ["signal_low"]

        swapped = await probes.poll("swap")
        assert swapped.status.state == "unreachable"  # polled with the new community
        # Its carried faults stay active and are not announced again.
        assert [(e.key.component, e.key.condition) for e in swapped.events] == [UNREACHABLE]
        assert swap_faults <= {f.key for f in probes.active_faults()}

        new = (await probes.poll("new")).status
        assert new.reachable
        assert new.interfaces[0].in_bps is None


@pytest.fixture
def black_hole() -> Iterator[socket.socket]:
    """A UDP port that receives requests and never answers."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.setblocking(False)
    yield sock
    sock.close()


def _received(sock: socket.socket) -> int:
    count = 0
    while True:
        try:
            sock.recv(65535)
        except BlockingIOError:
            return count
        count += 1


async def test_a_poll_running_at_the_switch_hands_its_faults_to_the_successor(
        sim: SnmpSim, black_hole: socket.socket) -> None:
    silent: dict[str, Any] = {"id": "moved", "kind": "fiber",
                              "address": f"127.0.0.1:{black_hole.getsockname()[1]}",
                              "thresholds": FAST, **QUICK}
    gone: dict[str, Any] = {**silent, "id": "gone"}
    async with ProbeService(targets(silent, gone)) as probes:
        running = asyncio.create_task(probes.poll("moved"))
        leaving = asyncio.create_task(probes.poll("gone"))
        seen = 0

        async def both_asked() -> bool:
            nonlocal seen
            seen += _received(black_hole)
            return seen >= 2

        await async_wait_until(both_asked, what="both polls under way")
        # The agent moved to a real address while its poll waits on the old one.
        moved = sim.target("fiber-normal", "moved", thresholds=FAST, **QUICK)
        changes = await probes.update_targets(targets(moved))
        assert changes.replaced == ("moved",)
        assert changes.removed == ("gone",)

        old = await running
        assert [(e.key.component, e.key.condition) for e in old.events] == [UNREACHABLE]
        assert (await leaving).status.state == "unreachable"
        # Neither late outcome changed the statuses: one target, not polled yet.
        assert list(probes.statuses()) == ["moved"]
        assert probes.status("moved").last_poll_at is None
        # The fault the old poll opened after the switch is carried, and clears when the
        # target answers at its new address.
        key = FaultKey("moved", *UNREACHABLE)
        assert [f.key for f in probes.active_faults()] == [key]
        after = await probes.poll("moved")
        assert after.status.reachable
        assert [(type(e), e.key) for e in after.events] == [(FaultCleared, key)]
        assert probes.active_faults() == []
