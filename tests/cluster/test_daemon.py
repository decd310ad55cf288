"""Daemons in a cluster (one process, real services, PostgreSQL, snmpd): each target is
polled by exactly one instance, sweeps run on the leader only, a leaving instance's
targets are taken over; and ``netguard cluster status`` shows it."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
import yaml

from netguard.cluster.rendezvous import assign, owner
from netguard.config import Settings, settings_from_data
from netguard.daemon.app import Daemon
from netguard.daemon.continuity import stored_active_faults
from netguard.daemon.ports import PollOutcomeView
from netguard.faults import FaultOpened
from netguard.metrics import render
from netguard.sim import Snmpd, free_udp_port
from netguard.store.db import Store, upgrade
from tests.support.wait import async_wait_until

pytestmark = [pytest.mark.integration, pytest.mark.requires_tool("snmpd")]

TARGETS = [f"line-{i:02d}" for i in range(24)]
NETGUARD = Path(sys.executable).parent / "netguard"
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def snmpd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Snmpd]:
    """One net-snmp agent that every target polls (distinct ids, one address)."""
    with Snmpd(tmp_path_factory.mktemp("snmpd")) as agent:
        yield agent


def _config(pg_url: str, snmpd: Snmpd, name: str, directory: Path) -> dict[str, Any]:
    return {
        "targets": [snmpd.target(t, interval_seconds=1.0, timeout_seconds=2.0, retries=0)
                    for t in TARGETS],
        "store": {"url": pg_url, "operation_timeout_seconds": 5},
        "metrics": {"enabled": False},
        "daemon": {"sweep_interval_seconds": 0.2, "poll_jitter_seconds": 0.5,
                   "fault_journal": str(directory / f"{name}.journal")},
        "cluster": {"enabled": True, "instance_id": name, "heartbeat_seconds": 0.3,
                    "lease_seconds": 4.0},
    }


@asynccontextmanager
async def serving(settings: Settings, polled: list[str]) -> AsyncIterator[Daemon]:
    """A daemon serving until the block ends; ``polled`` gets every polled target id."""
    stop = asyncio.Event()

    def record(outcome: PollOutcomeView) -> None:
        polled.append(outcome.status.target)

    async with Daemon(settings) as daemon:
        daemon.on_poll.append(record)
        task = asyncio.get_running_loop().create_task(daemon.serve(stop))
        try:
            yield daemon
        finally:
            stop.set()
            await task


def _settled(daemons: list[Daemon], targets: list[str] = TARGETS) -> bool:
    names = sorted(d.settings.cluster.member_id for d in daemons)
    expected = assign(targets, names)
    return all(d.cluster is not None and d.cluster.node.members == tuple(names)
               and sorted(d.probes.statuses()) == sorted(expected[d.settings.cluster.member_id])
               for d in daemons) and sum(bool(d.cluster and d.cluster.is_leader)
                                         for d in daemons) == 1


def _rounds(polled: list[str], count: int) -> bool:
    """Every target polled at least ``count`` times in ``polled``."""
    return all(polled.count(t) >= count for t in TARGETS)


async def _true(value: bool) -> bool:
    return value


async def test_two_daemons_poll_disjoint_halves_and_one_sweeps(
        pg_url: str, snmpd: Snmpd, tmp_path: Path) -> None:
    settings_a = settings_from_data(_config(pg_url, snmpd, "a", tmp_path))
    settings_b = settings_from_data(_config(pg_url, snmpd, "b", tmp_path))
    await upgrade(settings_a.store)
    polled_a: list[str] = []
    polled_b: list[str] = []
    async with AsyncExitStack() as stack:
        a = await stack.enter_async_context(serving(settings_a, polled_a))
        b = await stack.enter_async_context(serving(settings_b, polled_b))
        await async_wait_until(lambda: _true(_settled([a, b])), timeout=30,
                               what="the two daemons to split the targets")
        # Polls running at the split still finish: three rounds (of 1 s, polls time out
        # after 2 s) later none is left.
        mark_a, mark_b = len(polled_a), len(polled_b)
        await async_wait_until(lambda: _true(_rounds(polled_a[mark_a:] + polled_b[mark_b:],
                                                     3)), timeout=30, what="three rounds")
        # From now on each target is polled by its owner only.
        mark_a, mark_b = len(polled_a), len(polled_b)
        await async_wait_until(lambda: _true(_rounds(polled_a[mark_a:] + polled_b[mark_b:],
                                                     2)), timeout=30, what="two more rounds")
        assert not set(polled_a[mark_a:]) & set(polled_b[mark_b:])
        assert a.cluster is not None
        assert b.cluster is not None
        leader, other = (a, b) if a.cluster.is_leader else (b, a)
        steps = {name for name, _ in leader._sweep_steps()}
        assert {"tickets", "iot"} <= steps
        assert not {"tickets", "iot"} & {name for name, _ in other._sweep_steps()}
        # The outbox delivers on the leader only (decision 18).
        assert [_gate(d) for d in (leader, other)] == [True, False]
        text = render(leader.metrics_snapshot()).decode()
        assert "netguard_cluster_members 2" in text
        assert "netguard_cluster_leader 1" in text
        owned = len(leader.probes.statuses())
        assert f"netguard_cluster_owned_targets {owned}" in text
        assert text.count("netguard_target_up{") == owned

        config_file = tmp_path / "netguard.yaml"
        config_file.write_text(yaml.safe_dump(_config(pg_url, snmpd, "cli", tmp_path)))
        shown = await asyncio.to_thread(_cluster_status, config_file)
        assert shown["leader"] == leader.settings.cluster.member_id
        assert shown["live_members"] == 2
        assert {m["instance_id"]: m["owned_targets"] for m in shown["members"]} == {
            d.settings.cluster.member_id: len(d.probes.statuses()) for d in (a, b)}


async def test_a_stopped_daemon_is_taken_over(pg_url: str, snmpd: Snmpd,
                                             tmp_path: Path) -> None:
    settings_a = settings_from_data(_config(pg_url, snmpd, "a", tmp_path))
    settings_b = settings_from_data(_config(pg_url, snmpd, "b", tmp_path))
    await upgrade(settings_a.store)
    polled_a: list[str] = []
    async with serving(settings_a, polled_a) as a:
        async with serving(settings_b, []) as b:
            await async_wait_until(lambda: _true(_settled([a, b])), timeout=30,
                                   what="the two daemons to split the targets")
        await async_wait_until(lambda: _true(_settled([a])), timeout=30,
                               what="a to own every target and lead")
        mark = len(polled_a)
        await async_wait_until(lambda: _true(set(polled_a[mark:]) == set(TARGETS)),
                               timeout=30, what="a to poll every target")
        assert a.cluster is not None
        assert {n for n, _ in a._sweep_steps()} >= {"tickets", "iot"}
        assert _gate(a)


def _gate(daemon: Any) -> bool:
    """Whether the daemon's outbox delivers now (its leader gate is open)."""
    gate = daemon._services.leader_gate
    assert gate is not None
    return bool(gate())


def _cluster_status(config: Path) -> dict[str, Any]:
    result = subprocess.run([str(NETGUARD), "cluster", "status", "--json", "--config",
                             str(config)], capture_output=True, text=True, timeout=60,
                            check=False, env={**os.environ, "PYTHONPATH": str(REPO)})
    assert result.returncode == 0, result.stderr
    data: dict[str, Any] = json.loads(result.stdout)
    return data


async def test_a_target_taken_over_continues_its_open_fault(pg_url: str, snmpd: Snmpd,
                                                            tmp_path: Path) -> None:
    # A dead target that "a" owns while both run; b takes it over when a stops.
    dead = next(f"dead-{i}" for i in range(100) if owner(f"dead-{i}", ["a", "b"]) == "a")
    targets = [*TARGETS, dead]
    data = [_config(pg_url, snmpd, name, tmp_path) for name in ("a", "b")]
    for item in data:
        item["targets"].append({
            "id": dead, "kind": "private_line", "address": f"127.0.0.1:{free_udp_port()}",
            "snmp": {"version": "2c", "community": "public"}, "interval_seconds": 1.0,
            "timeout_seconds": 0.3, "retries": 0,
            "thresholds": {"raise_after": 1, "clear_after": 1}})
    settings_a, settings_b = (settings_from_data(item) for item in data)
    await upgrade(settings_a.store)
    outcomes_b: list[PollOutcomeView] = []
    async with Store(settings_a.store) as store, serving(settings_b, []) as b:
        b.on_poll.append(outcomes_b.append)
        async with serving(settings_a, []) as a:
            await async_wait_until(lambda: _true(_settled([a, b], targets)), timeout=30,
                                   what="a and b to split the targets")
            await async_wait_until(lambda: _stored_fault(store, dead), timeout=30,
                                   what="a to open the dead target's fault")
        await async_wait_until(lambda: _true(_settled([b], targets)), timeout=30,
                               what="b to take everything over")
        mark = len(outcomes_b)
        await async_wait_until(lambda: _true(
            sum(o.status.target == dead for o in outcomes_b[mark:]) >= 2), timeout=30,
            what="b to poll the dead target")
        assert any(str(f.key).startswith(f"{dead}|") for f in b.probes.active_faults())
        # b continued the fault: none of its polls since the takeover opened it again.
        # (b, started first, owned and polled everything for a moment before a joined;
        # it dropped that state when a took the dead target.)
        assert not [e for o in outcomes_b[mark:] for e in o.events
                    if isinstance(e, FaultOpened) and e.key.target == dead]


async def _stored_fault(store: Store, target: str) -> bool:
    return any(f.key.target == target for f in await stored_active_faults(store))
