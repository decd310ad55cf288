"""Issue 2: max-repetitions adapts to responses that do not fit, and every walk ends.

Real agents make the errors here; nothing stands in for the protocol:

- net-snmp ``snmpd`` answers an SNMPv3 GET whose response exceeds the manager's
  ``msgMaxSize`` with ``tooBig`` and such a GETBULK with ``genErr``; the transport sends a
  small ``msgMaxSize`` (``SnmpTransport(max_message_size=...)``) and the agent serves
  long OctetStrings (``Snmpd(overrides=...)``).
- snmpsim (pysnmp) and net-snmp silently drop a response above the 65,507-byte UDP limit,
  so a GETBULK of 25 rows of 3,000-byte values times out while 12 rows fit.
- snmpsim's ``delay`` variation with ``wait`` above 99,999 ms never answers a request that
  touches its record: an agent that stops answering mid-walk.
- Killing the simulator: a host that dies before and during a walk.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from netguard.errors import AgentResponseError, AgentUnreachableError
from netguard.probes.config import ProbesConfig, TargetConfig
from netguard.probes.profiles import Metric
from netguard.probes.pysnmp_transport import SnmpTransport
from netguard.probes.service import ProbeService
from netguard.probes.transport import fetch
from netguard.sim import SimAgent, SimRecord, Snmpd, SnmpdUser, SnmpSim, build_agent
from tests.probes.conftest import FAST, targets
from tests.support.timing import slack
from tests.support.wait import async_wait_until

pytestmark = pytest.mark.integration

TIMEOUT, RETRIES, MARGIN = 0.5, 1, 0.5
BUDGET = TIMEOUT * (RETRIES + 1)
BASE = "1.3.6.1.4.1.99999.1"  # a private subtree served with long strings
ROWS = 30


def column(name: str, oid: str) -> Metric:
    """A text table column, as a profile would resolve it."""
    return Metric(name=name, oid=oid, oid_tuple=tuple(int(p) for p in oid.split(".")),
                  table=True, scale=1.0, text=True, invalid=frozenset())


def scalar(name: str, oid: str) -> Metric:
    """A text scalar, as a profile would resolve it."""
    return Metric(name=name, oid=oid, oid_tuple=tuple(int(p) for p in oid.split(".")),
                  table=False, scale=1.0, text=True, invalid=frozenset())


def long_text(col: int, row: int, size: int) -> str:
    """A distinct value of ``size`` characters for each cell."""
    head = f"c{col}r{row}-"
    return head + "x" * (size - len(head))


def target(raw: dict[str, object]) -> TargetConfig:
    return targets(raw)[0]


# --- net-snmp: real tooBig / genErr to requests that exceed the v3 msgMaxSize ---------

@pytest.fixture(scope="module")
def big_snmpd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Snmpd]:
    """snmpd with two 30-row columns and 30 scalars of 200 characters, one of 600."""
    overrides = {f"{BASE}.{col}.{row}": long_text(col, row, 200)
                 for col in (1, 2) for row in range(1, ROWS + 1)}
    overrides |= {f"{BASE}.3.{i}.0": long_text(3, i, 200) for i in range(1, ROWS + 1)}
    overrides[f"{BASE}.4.0"] = long_text(4, 0, 600)
    with Snmpd(tmp_path_factory.mktemp("big-snmpd"), v3=SnmpdUser(),
               overrides=overrides) as d:
        yield d


async def test_walk_shrinks_on_too_big_and_returns_every_row(big_snmpd: Snmpd) -> None:
    cols = [column("first", f"{BASE}.1"), column("second", f"{BASE}.2")]
    tgt = target(big_snmpd.target("big", v3=True, timeout_seconds=TIMEOUT, retries=RETRIES))
    assert tgt.snmp.max_repetitions == 25

    # Control: with the default msgMaxSize the same walk fits in one PDU per 25 rows.
    async with SnmpTransport() as roomy:
        session = roomy.agent(tgt)
        tables = await session.walk(cols)
    assert session.too_big == 0
    assert session.max_repetitions == 25
    assert len(tables["first"]) == ROWS

    async with SnmpTransport(max_message_size=2000) as tight:
        session = tight.agent(tgt)
        tables = await session.walk(cols)
        assert session.too_big >= 1
        assert session.walk_timeouts == 0
        # 50 rows x ~215 bytes cannot fit in 2,000 bytes; 3 rows x 2 columns can.
        assert 1 <= session.max_repetitions <= 4
        for col, name in ((1, "first"), (2, "second")):
            assert tables[name] == {(row,): long_text(col, row, 200).encode()
                                    for row in range(1, ROWS + 1)}
        # The next walk starts from the adapted size and still reads everything.
        shrunk = session.max_repetitions
        again = await session.walk(cols)
        assert again == tables
        assert session.max_repetitions <= max(shrunk * 2, 4)


async def test_get_split_on_too_big_returns_every_scalar(big_snmpd: Snmpd) -> None:
    scalars = [scalar(f"s{i}", f"{BASE}.3.{i}.0") for i in range(1, ROWS + 1)]
    tgt = target(big_snmpd.target("big", v3=True, timeout_seconds=TIMEOUT, retries=RETRIES))
    async with SnmpTransport(max_message_size=2000) as tight:
        session = tight.agent(tgt)
        values = await session.get(scalars)
    assert values == {f"s{i}": long_text(3, i, 200).encode() for i in range(1, ROWS + 1)}
    assert session.too_big >= 3  # 30 -> 15 -> 7/8 -> ... until a part fits
    assert session.pdus > session.too_big


async def test_one_object_too_big_for_any_pdu_is_a_clear_error(big_snmpd: Snmpd) -> None:
    tgt = target(big_snmpd.target("big", v3=True, timeout_seconds=TIMEOUT, retries=RETRIES))
    async with SnmpTransport(max_message_size=484) as tiny:  # the RFC 3412 minimum
        session = tiny.agent(tgt)
        with pytest.raises(AgentResponseError, match="GET failed: tooBig"):
            await session.get([scalar("huge", f"{BASE}.4.0")])
    assert session.too_big == 0  # nothing left to split


def test_max_message_size_is_checked() -> None:
    with pytest.raises(ValueError, match="max_message_size must be 484 to 65507"):
        SnmpTransport(max_message_size=100)
    with pytest.raises(ValueError, match="max_message_size must be 484 to 65507"):
        SnmpTransport(max_message_size=70000)


# --- snmpsim: oversized responses are dropped; agents that stop answering -------------

ALIAS = "1.3.6.1.2.1.31.1.1.1.18"  # ifAlias


def agent_with_long_aliases(name: str, size: int) -> SimAgent:
    agent = build_agent(name, "fiber", interfaces=ROWS)
    agent.records = [SimRecord(r.oid, 4, long_text(18, int(r.oid.rsplit(".", 1)[1]), size))
                     if r.oid.startswith(f"{ALIAS}.") else r for r in agent.records]
    return agent


async def test_walk_shrinks_when_a_big_response_is_dropped(tmp_path: Path) -> None:
    # 25 rows x 3,000 bytes exceed a UDP datagram; pysnmp drops the response.
    with SnmpSim([agent_with_long_aliases("wide", 3000)], tmp_path / "wide") as sim:
        tgt = target(sim.target("wide", timeout_seconds=TIMEOUT, retries=RETRIES))
        async with SnmpTransport() as transport:
            session = transport.agent(tgt)
            tables = await session.walk([column("alias", ALIAS)])
    assert tables["alias"] == {(row,): long_text(18, row, 3000).encode()
                               for row in range(1, ROWS + 1)}
    assert session.walk_timeouts == 1
    assert session.too_big == 0
    assert session.max_repetitions == 12


async def test_walk_with_no_retries_gives_up_but_next_poll_starts_smaller(
        tmp_path: Path) -> None:
    with SnmpSim([agent_with_long_aliases("wide0", 3000)], tmp_path / "wide0") as sim:
        tgt = target(sim.target("wide0", timeout_seconds=TIMEOUT, retries=0))
        async with SnmpTransport() as transport:
            session = transport.agent(tgt)
            with pytest.raises(AgentUnreachableError, match=re.escape("within 0.5 s x 1 tries")):
                await session.walk([column("alias", ALIAS)])
            assert session.max_repetitions == 12
            tables = await session.walk([column("alias", ALIAS)])
    assert len(tables["alias"]) == ROWS


@pytest.fixture
def stalling(tmp_path: Path) -> Iterator[SnmpSim]:
    """An agent that never answers a request touching row 20 of ifAlias."""
    agent = build_agent("stall", "fiber", interfaces=ROWS)
    agent.records = [SimRecord(r.oid, 4, "wait=100000", "delay")
                     if r.oid == f"{ALIAS}.20" else r for r in agent.records]
    with SnmpSim([agent], tmp_path / "stall") as sim:
        yield sim


async def test_agent_that_stops_answering_mid_walk_ends_the_walk_in_time(
        stalling: SnmpSim) -> None:
    tgt = target(stalling.target("stall", timeout_seconds=TIMEOUT, retries=RETRIES))
    async with SnmpTransport() as transport:
        session = transport.agent(tgt)
        scalars = await session.get([scalar("descr", "1.3.6.1.2.1.1.1.0")])
        assert scalars["descr"]
        answered = session.pdus
        with pytest.raises(AgentUnreachableError) as caught:
            await session.walk([column("alias", ALIAS)])
    assert str(caught.value).endswith(
        f"no response from {stalling.address} within 0.5 s x 2 tries "
        "(a wrong community looks the same)")
    assert caught.value.target_id == "stall"  # type: ignore[attr-defined]
    # "In time" is counted, not clocked: the walk gave up after exactly retries + 1
    # unanswered requests, so it waited TIMEOUT x (RETRIES + 1) and no more.
    assert session.walk_timeouts == RETRIES + 1
    assert session.pdus - answered > RETRIES + 1  # rows before 20 were answered first


async def test_fetch_reports_an_agent_that_stops_mid_walk_as_unreachable(
        stalling: SnmpSim) -> None:
    tgt = target(stalling.target("stall", timeout_seconds=TIMEOUT, retries=RETRIES))
    async with SnmpTransport() as transport:
        session = transport.agent(tgt)
        with pytest.raises(AgentUnreachableError):
            await fetch(session, [scalar("descr", "1.3.6.1.2.1.1.1.0")],
                        [column("alias", ALIAS)])


async def test_poll_of_an_agent_that_stalls_mid_walk_is_unreachable_in_time(
        stalling: SnmpSim) -> None:
    raw = stalling.target("stall", timeout_seconds=TIMEOUT, retries=RETRIES, thresholds=FAST)
    # This file is about the pysnmp engine; the contract suite covers both engines.
    async with ProbeService(targets(raw), probes=ProbesConfig(engine="pysnmp")) as probes:
        outcome = await probes.poll("stall")
        # The first request of a fresh engine carries a one-off start-up cost; time the
        # second poll, which stalls in the same place.
        again = (await probes.poll("stall")).status
    status = outcome.status
    assert status.state == "unreachable"
    assert status.reasons[0].startswith(
        f"no response from {stalling.address} within 0.5 s x 2 tries")
    assert [e.key.condition for e in outcome.events] == ["unreachable"]
    assert again.state == "unreachable"
    assert again.polls == 2
    assert again.poll_duration_seconds is not None
    # It waited for every try (load only adds to this), and ended within the budget plus
    # an overhead allowance scaled to this machine (tests/support/timing.py): one more
    # try would need another TIMEOUT on top, which the transport tests rule out by count.
    assert again.poll_duration_seconds >= BUDGET * 0.9
    assert again.poll_duration_seconds <= BUDGET + slack(MARGIN)


async def test_walk_of_a_dead_agent_ends_in_time(tmp_path: Path) -> None:
    with SnmpSim([build_agent("gone", "fiber")], tmp_path / "gone") as sim:
        tgt = target(sim.target("gone", timeout_seconds=TIMEOUT, retries=RETRIES))
        async with SnmpTransport() as transport:
            session = transport.agent(tgt)
            assert len((await session.walk([column("alias", ALIAS)]))["alias"]) == 2
            sim.kill()
            before = session.walk_timeouts
            started = time.monotonic()
            with pytest.raises(AgentUnreachableError, match=re.escape("within 0.5 s x 2 tries")):
                await session.walk([column("alias", ALIAS)])
            took = time.monotonic() - started
    # Ended after exactly retries + 1 unanswered requests, having waited for each.
    assert session.walk_timeouts - before == RETRIES + 1
    assert took >= BUDGET * 0.9


async def test_agent_killed_during_a_walk_ends_it_in_time(tmp_path: Path) -> None:
    agent = build_agent("dying", "fiber", interfaces=400)
    with SnmpSim([agent], tmp_path / "dying") as sim:
        # One row per PDU: the walk takes hundreds of PDUs, so it is surely mid-way.
        tgt = target(sim.target("dying", timeout_seconds=TIMEOUT, retries=RETRIES,
                                snmp={"version": "2c", "community": "dying",
                                      "max_repetitions": 1}))
        async with SnmpTransport() as transport:
            session = transport.agent(tgt)
            walk = asyncio.create_task(session.walk([column("alias", ALIAS)]),
                                       name="test.walk")

            async def mid_walk() -> bool:
                return session.pdus >= 5 or walk.done()

            await async_wait_until(mid_walk, timeout=30, interval=0.005, what="5 PDUs")
            assert not walk.done(), "the walk finished before the agent could be killed"
            sim.kill()
            with pytest.raises(AgentUnreachableError, match=re.escape("within 0.5 s x 2 tries")):
                await walk
    assert 5 <= session.pdus - session.walk_timeouts < 400
    # Counted, not clocked: the walk stopped after retries + 1 unanswered requests.
    assert session.walk_timeouts == RETRIES + 1


async def test_an_object_that_always_fails_still_ends_the_walk(tmp_path: Path) -> None:
    # genErr also shrinks a GETBULK (net-snmp's answer to an oversized one), but at one
    # row it is a real error and the walk ends with it.
    agent = build_agent("broken", "fiber", interfaces=ROWS)
    agent.records = [SimRecord(r.oid, 4, "op=any,status=genError", "error")
                     if r.oid == f"{ALIAS}.7" else r for r in agent.records]
    with SnmpSim([agent], tmp_path / "broken") as sim:
        tgt = target(sim.target("broken", timeout_seconds=TIMEOUT, retries=RETRIES))
        async with SnmpTransport() as transport:
            session = transport.agent(tgt)
            with pytest.raises(AgentResponseError, match="GETBULK failed: genErr"):
                await session.walk([column("alias", ALIAS)])
    assert session.max_repetitions == 1
    assert session.pdus <= 12  # 25 -> 12 -> 6 -> 3 -> 1 plus the rows before it
