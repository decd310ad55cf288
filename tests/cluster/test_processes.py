"""Three ``netguard run`` processes against one PostgreSQL, one snmpd and one snmpsim
(issue 11's acceptance, the polling half).

The estate is 300 targets (interval 10 s, lease 5 s, heartbeat 1 s):

- 270 ``line-*`` poll the snmpd (cheap; its interfaces are the host's, whose real
  traffic is not known, so they are not used for the counter checks, and they watch
  ``eth0`` only: the loopback carries this test's own traffic, often above the 10 Mbit/s
  it claims, a real utilisation fault);
- 18 ``sim-*`` poll a healthy snmpsim agent whose counters move at a known rate
  (uplink 80 kB/s in on a 2 Mbit/s line: utilisation about 0.32), for the counter checks;
- 6 ``down-*`` poll a snmpsim agent whose uplink is oper-down, and 6 ``dead-*`` a UDP
  port nobody answers on: real faults with real tickets. They are named so that each
  instance owns two of each, so the killed one always owns some.

Every target raises a fault after one bad poll (``raise_after: 1``), the strictest
setting for "no false faults". No ticket is raised again (``repeat``) at any point, also
not while the instances join one after the other at start-up.

Hand-overs: whenever two instances polled a target one after the other (the instances
joining at start-up, the kill, the return), the later poll started at least
:data:`HANDOVER_MIN` (80% of the interval) after the earlier one: each target is polled
once per interval across a hand-over too (the poll grid on the database's clock and the
newcomer's settle, docs/scale-out.md "Hand-over"). The poll's start is its success time
less its duration, both exported; the 20% tolerance covers loop lag on a busy machine.

The three tests share one estate (module fixture) and run in order: the split, then
SIGKILL of the leader, then its return; each also runs alone (it kills the leader first
if nobody has), which matters because xdist's ``loadgroup`` does not group with pytest
9.2 (pytest-xdist issue 1386). Their
measurements (how long after the kill the survivors polled its targets, when the
sweep ran on the new leader) are printed (``pytest -s``). Waits are conditions with
generous deadlines; nothing asserts how fast this machine is.

The last test cuts one process off PostgreSQL through a TCP proxy (60 targets, its
own two processes).
"""

from __future__ import annotations

import asyncio
import functools
import signal
import threading
import time
from collections.abc import Coroutine, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import pytest

from netguard.cluster.rendezvous import assign, owner
from netguard.config import settings_from_data
from netguard.sim import Snmpd
from netguard.sim.agents import build_agent
from netguard.sim.process import free_udp_port
from netguard.sim.snmpsim import SnmpSim
from netguard.store.db import upgrade
from tests.cluster.estate import (
    Instance,
    TicketRow,
    Watcher,
    active_unique_index,
    duplicate_open_tickets,
    sql,
    ticket_actions,
    tickets,
)
from tests.daemon.runproc import json_log
from tests.daemon.tcpproxy import TcpProxy
from tests.support.servers import pg_database
from tests.support.wait import wait_until

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.requires_tool("snmpd"),
              pytest.mark.xdist_group("heavy")]  # CPU-heavy: one at a time (docs/testing.md)

T = TypeVar("T")
NAMES = ("ng-0", "ng-1", "ng-2")
INTERVAL = 10.0
LEASE = 5.0
SCRAPE = 2.0  # scrape every instance this often: well under INTERVAL, so no poll is missed
HANDOVER_MIN = 0.8 * INTERVAL  # two instances' successive polls of a target: at least this
LINES = [f"line-{i:03d}" for i in range(270)]
SIMS = [f"sim-{i:02d}" for i in range(18)]


def _faulty(prefix: str) -> list[str]:
    """Two names per instance: whichever is killed owns some faulty targets."""
    picked: dict[str, list[str]] = {n: [] for n in NAMES}
    for i in range(1000):
        name = f"{prefix}-{i:03d}"
        mine = picked[owner(name, NAMES) or ""]
        if len(mine) < 2:
            mine.append(name)
    return sorted(t for ts in picked.values() for t in ts)


DOWN, DEAD = _faulty("down"), _faulty("dead")
HEALTHY = [*LINES, *SIMS]
TARGETS = [*HEALTHY, *DOWN, *DEAD]


@pytest.fixture(scope="module")
def snmpd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Snmpd]:
    """One net-snmp agent the ``line-*`` targets poll (and the cut-off test's)."""
    with Snmpd(tmp_path_factory.mktemp("snmpd")) as agent:
        yield agent


@dataclass
class Estate:
    """The shared 300-target cluster and what the tests learnt of it so far."""

    url: str
    instances: list[Instance]
    watch: Watcher = field(default_factory=Watcher)
    tickets: dict[str, int] = field(default_factory=dict)  # fault key -> ticket id
    actions: dict[int, list[str]] = field(default_factory=dict)  # ticket -> its events
    victim: Instance | None = None

    def live(self) -> list[Instance]:
        return [i for i in self.instances if i is not self.victim]

    def leader(self) -> Instance:
        scrape = self.watch.scrape(self.live())
        leaders = [i for i in self.live()
                   if scrape.readings[i.name].gauges.get("netguard_cluster_leader") == 1.0]
        assert len(leaders) == 1, [i.name for i in leaders]
        return leaders[0]


def _estate_config(url: str, snmpd: Snmpd, sim: SnmpSim) -> dict[str, Any]:
    timing: dict[str, Any] = {"interval_seconds": INTERVAL, "timeout_seconds": 3.0,
                              "retries": 1, "thresholds": {"raise_after": 1, "clear_after": 1}}
    dead = [{"id": t, "kind": "private_line", "address": f"127.0.0.1:{free_udp_port()}",
             "snmp": {"version": "2c", "community": "public"}, **timing} for t in DEAD]
    return {
        # The host's loopback carries this test's own traffic, often more than its
        # nominal 10 Mbit/s: a real utilisation fault, not one the hand-over made up.
        "targets": [*(snmpd.target(t, interfaces=["eth0"], **timing) for t in LINES),
                    *(sim.target("agent-healthy", t, **timing) for t in SIMS),
                    *(sim.target("agent-linkdown", t, **timing) for t in DOWN), *dead],
        "store": {"url": url},
        "logging": {"level": "INFO", "format": "json"},
        "daemon": {"sweep_interval_seconds": 1.0, "shutdown_timeout_seconds": 5},
        "cluster": {"enabled": True, "heartbeat_seconds": 1.0, "lease_seconds": LEASE},
    }


@pytest.fixture(scope="module")
def estate(tmp_path_factory: pytest.TempPathFactory, snmpd: Snmpd) -> Iterator[Estate]:
    """Three processes polling the 300 targets, settled into their split."""
    directory = tmp_path_factory.mktemp("estate")
    agents = [build_agent("agent-healthy", "private_line"),
              build_agent("agent-linkdown", "private_line", scenario="down")]
    with pg_database() as url, SnmpSim(agents, directory / "snmpsim") as sim:
        data = _estate_config(url, snmpd, sim)
        asyncio.run(upgrade(settings_from_data(data).store))
        state = Estate(url, [Instance(directory, name, data) for name in NAMES])
        try:
            for instance in state.instances:
                instance.start()
            _settle(state, time.time(), "three instances to split and poll the targets")
            yield state
        finally:
            for instance in state.instances:
                instance.proc.stop()


def _settled(state: Estate, since: float) -> bool:
    """Each live instance exports exactly its rendezvous share, and every target that
    answers was polled by its owner after ``since``."""
    live = state.live()
    expected = assign(TARGETS, [i.name for i in live])
    scrape = state.watch.scrape(live)
    if any(scrape.readings[i.name].exported != set(expected[i.name]) for i in live):
        return False
    polls = state.watch.polls_since(since)
    owners = _owners(expected)
    return all(any(name == owners[t] for _, name in polls.get(t, []))
               for t in [*HEALTHY, *DOWN])


def _owners(assignment: dict[str, list[str]]) -> dict[str, str]:
    return {t: member for member, owned in assignment.items() for t in owned}


def _settle(state: Estate, since: float, what: str) -> float:
    """Wait until the split is the expected one and applied; when that was seen."""
    wait_until(lambda: _settled(state, since), timeout=4 * (LEASE + 2 * INTERVAL) + 60,
               interval=SCRAPE, what=what)
    return time.time()


def _rounds(state: Estate, count: int) -> tuple[float, float]:
    """Watch ``count`` rounds in each of which every answering target is polled again."""
    begun = time.time()
    for _ in range(count):
        mark = time.time()
        wait_until(functools.partial(_all_polled_after, state, mark), timeout=4 * INTERVAL + 30,
                   interval=SCRAPE, what="a round in which every target is polled")
    return begun, time.time()


def _all_polled_after(state: Estate, mark: float) -> bool:
    state.watch.scrape(state.live())
    polls = state.watch.polls_since(mark)
    return all(t in polls for t in [*HEALTHY, *DOWN])


def _assert_one_poller(state: Estate, settled: float, window: tuple[float, float]) -> None:
    """Since ``settled``: each target exported by exactly its owner in every scrape, and
    polled only by it; no instance polled more than once per target and interval."""
    live = state.live()
    expected = assign(TARGETS, [i.name for i in live])
    for scrape in state.watch.since(settled):
        assert not scrape.doubles(), scrape.doubles()
        for name, reading in scrape.readings.items():
            assert reading.exported == set(expected[name]), name
    owners = _owners(expected)
    for target, polls in state.watch.polls_since(settled).items():
        assert {name for _, name in polls} == {owners[target]}, (target, polls)
    # The poll counters over the window: at most one poll per target and interval (+2
    # for the two ends and the scheduler's spread). Double polling would be about twice
    # that; a busy machine polls less, never more.
    scrapes = [s for s in state.watch.since(window[0]) if s.ended <= window[1]]
    first, last = scrapes[0], scrapes[-1]
    made = sum(last.readings[i.name].polls_total - first.readings[i.name].polls_total
               for i in live)
    bound = len(TARGETS) * ((last.ended - first.started) / INTERVAL + 2)
    assert len(HEALTHY) <= made <= bound, (made, bound)


def _check_counter_bounds(state: Estate, since: float) -> dict[str, float]:
    """No counter spike: utilisation (faster direction over line speed) within 0..1."""
    seen = state.watch.max_utilisation(SIMS, since)
    assert seen, "no utilisation exported for the snmpsim targets"
    assert all(0.0 <= v <= 1.0 for v in seen.values()), seen
    return seen


def _check_tickets(state: Estate) -> list[TicketRow]:
    """One active ticket per fault of the faulty targets, the same since first seen; none
    for a healthy target. Once remembered (``state.actions``), a ticket gets no event
    but the sweep's ``overdue``: not cleared, resolved, reopened, nor raised again."""
    assert "UNIQUE INDEX" in active_unique_index(state.url)
    assert duplicate_open_tickets(state.url) == []
    rows = tickets(state.url)
    faulty = set(DOWN) | set(DEAD)
    assert {r.target for r in rows} == faulty, "a healthy target got a ticket, or a " \
        "faulty one none"
    assert all(r.active for r in rows), [r for r in rows if not r.active]
    keys = [r.fault_key for r in rows]
    assert len(keys) == len(set(keys)), keys
    current = {str(r.fault_key): r.id for r in rows}
    if state.tickets:
        assert current == state.tickets  # the same tickets, none new, none replaced
    actions = ticket_actions(state.url)
    for row in rows:
        acts = actions.get(row.id, [])
        assert acts.count("opened") == 1, (row, acts)
        assert set(acts) <= {"opened", "repeat", "overdue"}, (row, acts)
        if state.actions:
            before = state.actions[row.id]
            assert acts[:len(before)] == before, (row, acts)
            assert set(acts[len(before):]) <= {"overdue"}, (row, acts)
    return rows


def _wait_tickets(state: Estate) -> None:
    """Wait until every faulty target has its ticket(s); remember them."""
    def ready() -> bool:
        state.watch.scrape(state.live())
        return {r.target for r in tickets(state.url)} == set(DOWN) | set(DEAD)
    wait_until(ready, timeout=4 * INTERVAL + 60, interval=SCRAPE,
               what="a ticket for every faulty target")
    state.tickets = {str(r.fault_key): r.id for r in _check_tickets(state)}
    state.actions = ticket_actions(state.url)
    repeats = sorted(i for i, acts in state.actions.items() if "repeat" in acts)
    print(f"\ntickets before the kill: {len(state.tickets)}; raised again at start-up: "
          f"{repeats}")
    # The instances joined one by one, each taking over targets whose faults the others
    # had raised: each new owner continued them (the first switch reads the stored
    # faults, after the others let go), none raised one again.
    assert repeats == [], {i: state.actions[i] for i in repeats}


def _check_handovers(state: Estate, step: str, *, seen: bool = True) -> None:
    """No two instances polled a target within HANDOVER_MIN of each other, ever (and,
    with ``seen``, some hand-over was seen: at start-up the watcher may have missed the
    first instance's polls of the targets it handed on before the scrapes began)."""
    pairs = state.watch.handover_pairs()
    gaps = [gap for _t, _a, _b, gap in pairs]
    print(f"{step}: {len(pairs)} hand-overs seen (successive polls of a target by two "
          f"instances), seconds between their starts: "
          + (f"min {gaps[0]:.2f}, median {gaps[len(gaps) // 2]:.2f}, max {gaps[-1]:.2f}"
             if gaps else "none"))
    assert pairs or not seen, "no hand-over seen"
    assert not [p for p in pairs if p[3] < HANDOVER_MIN], pairs[:10]


def test_300_targets_split_evenly_each_polled_by_one_instance(estate: Estate) -> None:
    shares = assign(TARGETS, NAMES)
    assert all(80 <= len(owned) <= 120 for owned in shares.values()), \
        {n: len(o) for n, o in shares.items()}
    scrape = estate.watch.scrape(estate.instances)
    for name, reading in scrape.readings.items():
        assert reading.gauges["netguard_cluster_owned_targets"] == len(shares[name])
        assert reading.gauges["netguard_cluster_members"] == 3.0
    assert sorted(r.gauges["netguard_cluster_leader"] for r in scrape.readings.values()) \
        == [0.0, 0.0, 1.0]
    _wait_tickets(estate)
    settled = time.time()
    window = _rounds(estate, 3)
    _assert_one_poller(estate, settled, window)
    seen = _check_counter_bounds(estate, settled)
    print(f"utilisation of the snmpsim targets: {min(seen.values()):.3f}.."
          f"{max(seen.values()):.3f} (highest per target)")
    _check_tickets(estate)
    _check_handovers(estate, "start-up", seen=False)


def _sweep_ran_after(state: Estate, ticket: int, at: float) -> float | None:
    rows = sql(state.url, "SELECT extract(epoch FROM at) AS at FROM ticket_event "
               "WHERE ticket_id = $1 AND action = 'overdue'", ticket)
    return float(rows[0]["at"]) if rows and float(rows[0]["at"]) >= at else None


def _kill_the_leader(state: Estate) -> tuple[Instance, float]:
    if not state.tickets:
        _wait_tickets(state)
    victim = state.leader()
    victim.proc.stop(signal.SIGKILL)
    state.victim = victim
    return victim, time.time()


def test_sigkill_of_the_leader_is_taken_over_without_false_faults(estate: Estate) -> None:
    before = assign(TARGETS, NAMES)
    victim, killed = _kill_the_leader(estate)
    # The ticket sweep marks a ticket overdue once its SLA passes: make one due now, so
    # only a sweep after the kill (on a survivor: the victim is dead) can mark it.
    due = min(estate.tickets.values())
    sql(estate.url, "UPDATE ticket SET sla_due = now() WHERE id = $1", due)
    settled = _settle(estate, killed, "the survivors to take over and poll the targets")
    moved = before[victim.name]
    first = {t: min(at for at, _ in p) for t, p in estate.watch.polls_since(killed).items()
             if t in moved}
    swept = wait_until(lambda: _sweep_ran_after(estate, due, killed), timeout=4 * LEASE + 30,
                       interval=0.5, what="the ticket sweep on a survivor")
    assert swept is not None
    gaps = estate.watch.handover_gaps(moved, None, killed)
    # The survivors took every target of the victim over from a lapsed member (its row
    # stays, not live): each with its expiry, polled at once if its slot came after it.
    lapsed = [r for i in estate.live() for r in json_log(i.proc)
              if r["msg"].startswith("took over targets of a member whose lease ran out")]
    assert sum(r["targets"] for r in lapsed) == len(moved), lapsed
    print(f"\nkill -> survivors polled all {len(first)} of its answering targets: "
          f"{max(first.values()) - killed:.1f}s (lease {LEASE}s + interval {INTERVAL}s); "
          f"caught up at once (slot after the victim's lease expiry): "
          f"{sum(r['catching_up'] for r in lapsed)} of {len(moved)}; "
          f"kill -> ticket sweep on the new leader: {swept - killed:.1f}s; {_gaps(gaps)}")
    # The survivors only gain the victim's targets, and agree on who gains which.
    assert not [s.doubles() for s in estate.watch.since(killed) if s.doubles()]
    estate.leader()  # exactly one of the survivors leads
    window = _rounds(estate, 2)
    _assert_one_poller(estate, settled, window)
    _check_counter_bounds(estate, settled)
    # The survivors exported rates for the killed one's snmpsim targets: computed from
    # their own two polls, within bounds.
    assert {t for t in SIMS if t in moved} <= set(estate.watch.max_utilisation(SIMS, settled))
    _check_tickets(estate)
    _check_handovers(estate, "after the kill")


def _gaps(gaps: list[float]) -> str:
    """How close the new owner's first poll came to the old owner's last (measured)."""
    if not gaps:
        return "no hand-over gap seen"
    return (f"old owner's last poll -> new owner's first: min {gaps[0]:.1f}s, median "
            f"{gaps[len(gaps) // 2]:.1f}s, {sum(g < INTERVAL for g in gaps)} of {len(gaps)} "
            f"within one interval")


def test_the_instance_comes_back_and_takes_a_third_back(estate: Estate) -> None:
    if estate.victim is None:  # run alone (-k): kill one first
        _kill_the_leader(estate)
        _settle(estate, time.time(), "the survivors to take over")
    victim = estate.victim
    assert victim is not None
    before = _owners(assign(TARGETS, [i.name for i in estate.live()]))
    victim.start()
    estate.victim = None
    back = time.time()
    settled = _settle(estate, back, "the returning instance to take its share back")
    after = assign(TARGETS, NAMES)
    moved = {t for t, member in _owners(after).items() if before[t] != member}
    assert moved == set(after[victim.name])  # only its own share moved, all to it
    assert 80 <= len(moved) <= 120, len(moved)
    first = {t: min(at for at, name in p if name == victim.name)
             for t, p in estate.watch.polls_since(back).items() if t in moved}
    # Recorded, not asserted: a scrape reads the instances one after the other, so one
    # round can see a target on the old owner just before it let go and on the newcomer
    # just after it took over. Double polls are what _check_handovers asserts against.
    doubled = {t for s in estate.watch.since(back) if s.started < settled for t in s.doubles()}
    print(f"\nback (ready) -> it polled all {len(first)} of its answering targets: "
          f"{max(first.values()) - back:.1f}s; targets two instances exported in one "
          f"scrape meanwhile: {len(doubled)}; "
          f"{_gaps(estate.watch.handover_gaps(moved, victim.name, back))}")
    window = _rounds(estate, 2)
    _assert_one_poller(estate, settled, window)
    _check_counter_bounds(estate, settled)
    assert {t for t in SIMS if t in moved} <= set(estate.watch.max_utilisation(SIMS, settled))
    _check_tickets(estate)
    _check_handovers(estate, "after the return")


class ThreadedProxy:
    """A :class:`TcpProxy` on its own event loop in a thread, for a synchronous test."""

    def __init__(self, host: str, port: int) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()
        self.proxy = self._run(TcpProxy(host, port).start())

    def _run(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout=30)

    def cut(self) -> None:
        """Drop every connection and refuse new ones."""
        self._run(self.proxy.cut())

    def restore(self) -> None:
        """Accept connections again."""
        self._run(self.proxy.restore())

    def close(self) -> None:
        self._run(self.proxy.close())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=30)
        self._loop.close()


CUT_TARGETS = [f"line-{i:03d}" for i in range(60)]


def _cut_data(pg_url: str, snmpd: Snmpd) -> dict[str, Any]:
    return {
        "targets": [snmpd.target(t, interval_seconds=2.0, timeout_seconds=2.0, retries=0)
                    for t in CUT_TARGETS],
        "store": {"url": pg_url},
        "logging": {"level": "INFO", "format": "json"},
        "daemon": {"sweep_interval_seconds": 1.0, "shutdown_timeout_seconds": 5},
        "cluster": {"enabled": True, "heartbeat_seconds": 0.5, "lease_seconds": LEASE},
    }


def _split_as_expected(instances: list[Instance], since: float) -> bool:
    """Each live instance exports exactly its rendezvous share, polled after ``since``."""
    expected = assign(CUT_TARGETS, [i.name for i in instances])
    for instance in instances:
        polled = instance.polled()
        if sorted(polled) != sorted(expected[instance.name]):
            return False
        if any(at < since for at in polled.values()):
            return False
    return True


def test_a_process_cut_off_from_the_database_stops_polling(tmp_path: Path, pg_url: str,
                                                          snmpd: Snmpd) -> None:
    data = _cut_data(pg_url, snmpd)
    asyncio.run(upgrade(settings_from_data(data).store))
    host_port = pg_url.split("@", 1)[1].split("/", 1)[0]
    host, port = host_port.split(":")
    proxy = ThreadedProxy(host, int(port))
    via_proxy = pg_url.replace(host_port, f"127.0.0.1:{proxy.proxy.port}")
    cut = Instance(tmp_path, "ng-cut", data, store_url=via_proxy)
    ok = Instance(tmp_path, "ng-ok", data)
    try:
        cut.start()
        ok.start()
        started = time.time()
        wait_until(lambda: _split_as_expected([cut, ok], started), timeout=90,
                   interval=0.5, what="two instances to split and poll the targets")
        proxy.cut()
        cut_at = time.time()
        # Within a lease (plus slack) it polls and exports nothing, and does not lead;
        # the other polls everything.
        wait_until(lambda: cut.gauge("netguard_cluster_owned_targets") == 0.0
                   and not cut.polled() and cut.gauge("netguard_cluster_leader") == 0.0,
                   timeout=60, interval=0.5, what="the cut-off instance to stop polling")
        wait_until(lambda: _split_as_expected([ok], cut_at), timeout=60, interval=0.5,
                   what="the other instance to poll every target")
        proxy.restore()
        back = time.time()
        wait_until(lambda: _split_as_expected([cut, ok], back), timeout=90, interval=0.5,
                   what="the instance to rejoin once the database is back")
    finally:
        cut.proc.stop()
        ok.proc.stop()
        proxy.close()
