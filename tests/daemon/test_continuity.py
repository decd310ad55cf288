"""Fault-state continuity across a daemon restart (the probes' hysteresis is in memory).

A fault whose ticket is still open when the daemon dies must be cleared (and its ticket
auto-resolved) when the link is healthy after the restart, and must not open a second
ticket when it is still there.
"""

from __future__ import annotations

import os
import signal
import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from netguard.clock import ManualClock
from netguard.daemon.continuity import stored_active_faults
from netguard.faults import FaultCleared, FaultKey, FaultOpened
from netguard.sim import SnmpSim, build_agent
from netguard.store import Store
from netguard.tickets.config import TicketsConfig
from netguard.tickets.service import TicketService
from tests.daemon.runproc import json_log
from tests.daemon.runproc import metric as _metric
from tests.daemon.runproc import run_netguard as _daemon
from tests.support.ports import free_tcp_port
from tests.support.wait import wait_until

pytestmark = [pytest.mark.integration]

T0 = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)


def _opened(key: FaultKey, *, suppressed_by: str | None = None,
            severity: str = "minor") -> FaultOpened:
    return FaultOpened(key=key, category="fiber", site=None, severity=severity,  # type: ignore[arg-type]
                       summary=f"{key.target}: {key.condition}",
                       reasons=(f"{key.condition} evidence",), at=T0,
                       suppressed_by=suppressed_by)


async def test_the_store_reports_the_faults_it_holds_active(store: Store) -> None:
    tickets = TicketService(store, TicketsConfig(resolve_hold_seconds=300),
                            clock=ManualClock(T0))
    olt = FaultKey("olt-1", "agent", "unreachable")
    acked = FaultKey("fiber-2", "sensor:rx", "rx_power_low")
    clearing = FaultKey("fiber-3", "sensor:rx", "rx_power_low")
    child = FaultKey("ont-1", "agent", "unreachable")
    waiting = FaultKey("ont-9", "agent", "unreachable")
    resolved = FaultKey("fiber-4", "if:ge0", "oper_down")
    for key in (olt, acked, clearing, resolved):
        await tickets.handle(_opened(key, severity="critical" if key is olt else "minor"))
    acked_ticket = await tickets.handle(_opened(acked))
    assert acked_ticket is not None
    await tickets.acknowledge(acked_ticket.ref, actor="alice")
    await tickets.handle(FaultCleared(clearing, at=T0))
    await tickets.handle(_opened(child, suppressed_by="olt-1"))
    await tickets.handle(_opened(waiting, suppressed_by="olt-9"))  # no ticket for olt-9
    resolved_ticket = await tickets.handle(FaultCleared(resolved, at=T0))
    assert resolved_ticket is not None
    await tickets.resolve(resolved_ticket.ref, actor="bob", message="fixed")
    await tickets.open(category="fiber", summary="manual", severity="minor", actor="bob",
                       target="fiber-5")

    faults = {f.key: f for f in await stored_active_faults(store)}

    assert set(faults) == {olt, acked, child, waiting}
    assert faults[olt].suppressed_by is None
    assert faults[olt].level == "down"
    assert faults[olt].reason == "unreachable evidence"
    assert faults[acked].level == "degraded"
    assert faults[child].suppressed_by == "olt-1"
    assert faults[waiting].suppressed_by == "olt-9"


# --------------------------------------------------------------------------- end to end

AGENTS = [build_agent("fiber-fixed", "fiber"), build_agent("fiber-broken", "fiber")]
BAD_RX, GOOD_RX = -30.0, -8.5
SENSORS = 2  # transceivers per simulated fiber agent


@pytest.fixture
def sim(tmp_path: Path) -> Iterator[SnmpSim]:
    with SnmpSim(AGENTS, tmp_path / "snmpsim") as s:
        yield s


def _write_config(tmp_path: Path, sim: SnmpSim, metrics_port: int,
                  agents: tuple[str, ...] = ("fiber-fixed", "fiber-broken"),
                  clear_after: int = 2) -> Path:
    data: dict[str, Any] = {
        "targets": [sim.target(name, interval_seconds=1,
                               thresholds={"raise_after": 1, "clear_after": clear_after})
                    for name in agents],
        "store": {"path": str(tmp_path / "netguard.db"), "auto_upgrade": True},
        "tickets": {"resolve_hold_seconds": 1},
        "metrics": {"listen": f"127.0.0.1:{metrics_port}"},
        "logging": {"level": "INFO", "format": "json"},
        "daemon": {"sweep_interval_seconds": 0.5, "poll_jitter_seconds": 0.2},
    }
    config = tmp_path / "netguard.yaml"
    config.write_text(yaml.safe_dump(data))
    return config


def _tickets(db: Path, target: str) -> list[tuple[Any, ...]]:
    conn = sqlite3.connect(db, timeout=30)
    try:
        return conn.execute("SELECT id, state, cleared_at, occurrences FROM ticket "
                            "WHERE target = ? ORDER BY id", (target,)).fetchall()
    finally:
        conn.close()


def _events(db: Path, ticket_id: int) -> list[str]:
    conn = sqlite3.connect(db, timeout=30)
    try:
        return [r[0] for r in conn.execute(
            "SELECT action FROM ticket_event WHERE ticket_id = ? ORDER BY id", (ticket_id,))]
    finally:
        conn.close()


def _polls(base: str) -> float:
    return _metric(base, "netguard_polls_total", 'result="success"') or 0.0


@pytest.mark.slow
def test_sigkill_then_restart_resolves_recovered_faults_and_keeps_present_ones(
        tmp_path: Path, sim: SnmpSim) -> None:
    db = tmp_path / "netguard.db"
    port = free_tcp_port()
    config = _write_config(tmp_path, sim, port)
    first = _daemon(tmp_path, config, port, "run1").start(timeout=60)
    try:
        sim.set_knob("fiber-fixed", "rx_dbm", BAD_RX)
        sim.set_knob("fiber-broken", "rx_dbm", BAD_RX)
        for target in ("fiber-fixed", "fiber-broken"):
            # The knob dims both transceivers of the agent: one ticket each.
            wait_until(lambda t=target: [r[1] for r in _tickets(db, t)] == ["open"] * SENSORS,  # type: ignore[misc]
                       timeout=30, what=f"{target} tickets open")
    finally:
        assert first.stop(signal.SIGKILL) == -signal.SIGKILL
    fixed_ids = [r[0] for r in _tickets(db, "fiber-fixed")]
    before = {r[0]: r[3] for r in _tickets(db, "fiber-broken")}

    # While netguard is down, one link is repaired and the other is not.
    sim.set_knob("fiber-fixed", "rx_dbm", GOOD_RX)
    port = free_tcp_port()
    config = _write_config(tmp_path, sim, port)
    second = _daemon(tmp_path, config, port, "run2").start(timeout=60)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: [r[1] for r in _tickets(db, "fiber-fixed")]
                   == ["resolved"] * SENSORS, timeout=60,
                   what="the repaired link's tickets auto-resolved after the restart")
        # Several more polls of the broken link under the new process.
        polled = _polls(base)
        wait_until(lambda: _polls(base) >= polled + 4, timeout=30, what="more polls")
        restored = [r for r in json_log(second)
                    if r["msg"] == "restored active faults from the ticket store"]
    finally:
        second.stop()

    assert [r[0] for r in _tickets(db, "fiber-fixed")] == fixed_ids, \
        "no second ticket for the repaired link"
    for ticket_id in fixed_ids:
        assert _events(db, ticket_id)[-2:] == ["cleared", "resolved"]
    broken = _tickets(db, "fiber-broken")
    assert [r[0] for r in broken] == list(before), "no second ticket for the link still broken"
    for ticket_id, state, cleared_at, occurrences in broken:
        assert (state, cleared_at) == ("open", None)
        assert occurrences >= before[ticket_id]
        assert "cleared" not in _events(db, ticket_id)
    assert restored
    assert restored[0]["faults"] == 2 * SENSORS
    assert restored[0]["unknown_targets"] == 0


@pytest.mark.slow
def test_a_reload_that_changes_the_targets_keeps_the_faults_of_kept_targets(
        tmp_path: Path, sim: SnmpSim) -> None:
    db = tmp_path / "netguard.db"
    port = free_tcp_port()
    # Three good polls to clear: the repair below is not seen through before the reload.
    config = _write_config(tmp_path, sim, port, ("fiber-fixed",), clear_after=3)
    daemon = _daemon(tmp_path, config, port, "run").start(timeout=60)
    try:
        sim.set_knob("fiber-fixed", "rx_dbm", BAD_RX)
        wait_until(lambda: [r[1] for r in _tickets(db, "fiber-fixed")] == ["open"] * SENSORS,
                   timeout=30, what="tickets open")
        ids = [r[0] for r in _tickets(db, "fiber-fixed")]
        # Repaired just as a reload adds a target (a fresh probe service for the list).
        sim.set_knob("fiber-fixed", "rx_dbm", GOOD_RX)
        _write_config(tmp_path, sim, port, ("fiber-fixed", "fiber-broken"), clear_after=3)
        os.kill(daemon.pid, signal.SIGHUP)
        wait_until(lambda: any(r["msg"] == "configuration reloaded" for r in json_log(daemon)),
                   timeout=30, what="reload")
        wait_until(lambda: [r[1] for r in _tickets(db, "fiber-fixed")]
                   == ["resolved"] * SENSORS, timeout=60,
                   what="tickets auto-resolved after the reload")
    finally:
        assert daemon.stop() == 0
    assert [r[0] for r in _tickets(db, "fiber-fixed")] == ids
