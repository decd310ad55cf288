"""The transport contract, for every polling engine, against real snmpd and snmpsim.

Each test runs once per engine (``gufo``, the default, and ``pysnmp``). No wall-clock
upper bounds: outcomes, reasons and requests counted (by the session, or by a UDP socket
the test owns that never answers) are what is asserted.
"""

from __future__ import annotations

import re
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from netguard.clock import ManualClock
from netguard.config import settings_from_data
from netguard.errors import AgentResponseError, AgentUnreachableError, ConfigError
from netguard.probes.config import PollEngine, ProbesConfig, TargetConfig
from netguard.probes.gufo_transport import GufoAgentSession, GufoTransport
from netguard.probes.profiles import Metric
from netguard.probes.service import ProbeService
from netguard.probes.transport import PollSession, fetch, open_transport
from netguard.sim import SimAgent, SimRecord, Snmpd, SnmpdUser, SnmpSim, build_agent
from tests.probes.conftest import FAST

pytestmark = pytest.mark.integration

ENGINES: tuple[PollEngine, ...] = ("gufo", "pysnmp")
TIMEOUT, RETRIES = 0.5, 1
TRIES = RETRIES + 1
AUTHS = ("md5", "sha", "sha224", "sha256", "sha384", "sha512")
# net-snmp here offers DES and AES-128 for privacy (AES-192/256 need a build option).
USERS = [SnmpdUser("u-noauth", "none", priv_protocol="none")] + [
    SnmpdUser(f"u-{auth}-{priv}", auth, priv_protocol=priv)
    for auth in AUTHS for priv in ("none", "des", "aes128")]
ALIAS = "1.3.6.1.2.1.31.1.1.1.18"  # ifAlias
IN_OCTETS_1 = "1.3.6.1.2.1.2.2.1.10.1"
BASE = "1.3.6.1.4.1.99999.1"
ROWS = 30


@pytest.fixture(params=ENGINES)
def engine(request: pytest.FixtureRequest) -> PollEngine:
    value: PollEngine = request.param
    return value


def settings(engine: PollEngine, *raw: dict[str, Any]) -> tuple[list[TargetConfig],
                                                                   ProbesConfig]:
    loaded = settings_from_data({"targets": list(raw), "probes": {"engine": engine}})
    return loaded.targets, loaded.probes


def column(name: str, oid: str) -> Metric:
    return Metric(name=name, oid=oid, oid_tuple=tuple(int(p) for p in oid.split(".")),
                  table=True, scale=1.0, text=True, invalid=frozenset())


def scalar(name: str, oid: str) -> Metric:
    return Metric(name=name, oid=oid, oid_tuple=tuple(int(p) for p in oid.split(".")),
                  table=False, scale=1.0, text=True, invalid=frozenset())


def long_text(col: int, row: int, size: int) -> str:
    head = f"c{col}r{row}-"
    return head + "x" * (size - len(head))


@pytest.fixture(scope="module")
def agent(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Snmpd]:
    """snmpd with a user for every auth x priv combination it supports, and long values."""
    overrides = {f"{BASE}.{col}.{row}": long_text(col, row, 200)
                 for col in (1, 2) for row in range(1, ROWS + 1)}
    overrides |= {f"{BASE}.3.{i}.0": long_text(3, i, 200) for i in range(1, ROWS + 1)}
    with Snmpd(tmp_path_factory.mktemp("contract-snmpd"), users=USERS,
               overrides=overrides) as d:
        yield d


async def test_v1_v2c_and_every_v3_combination(engine: PollEngine, agent: Snmpd) -> None:
    v1 = agent.target("v1", timeout_seconds=2.0)
    v1["snmp"]["version"] = "1"
    raw = [v1, agent.target("v2c", timeout_seconds=2.0)]
    raw += [agent.target(u.user, user=u.user, timeout_seconds=2.0) for u in USERS]
    assert len(USERS) == 19
    targets, probes = settings(engine, *raw)
    async with ProbeService(targets, probes=probes) as service:
        results = {o.status.target: o.status for o in await service.poll_all()}
    failed = {k: v.reasons for k, v in results.items() if not v.reachable}
    assert not failed
    assert {s.sys_name for s in results.values()} == {"netguard-test-snmpd"}
    names = [i.name for i in results["v2c"].interfaces]
    assert "lo" in names
    assert all([i.name for i in s.interfaces] == names for s in results.values())
    assert {i.counter_bits for i in results["v1"].interfaces} == {32}
    assert {i.counter_bits for i in results["v2c"].interfaces} == {64}


# --- agents that do not answer ---------------------------------------------------------

@pytest.fixture
def black_hole() -> Iterator[socket.socket]:
    """A UDP port that receives requests and never answers (no ICMP either)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.setblocking(False)
    yield sock
    sock.close()


def received(sock: socket.socket) -> int:
    count = 0
    while True:
        try:
            sock.recv(65535)
        except BlockingIOError:
            return count
        count += 1


@pytest.mark.parametrize("version", ["2c", "3"])
async def test_silent_agent_is_unreachable_after_each_try(
        engine: PollEngine, black_hole: socket.socket, version: str) -> None:
    port = black_hole.getsockname()[1]
    snmp: dict[str, Any] = {"version": "2c", "community": "public"} if version == "2c" \
        else SnmpdUser().snmp_config()
    targets, probes = settings(engine, {
        "id": "silent", "kind": "fiber", "address": f"127.0.0.1:{port}", "snmp": snmp,
        "timeout_seconds": TIMEOUT, "retries": RETRIES, "thresholds": FAST})
    async with ProbeService(targets, probes=probes) as service:
        outcome = await service.poll("silent")
    status = outcome.status
    assert status.state == "unreachable"
    hint = "a wrong community" if version == "2c" else "a wrong SNMPv3 privacy key"
    assert status.reasons[0] == (f"no response from 127.0.0.1:{port} within 0.5 s x 2 "
                                 f"tries ({hint} looks the same)")
    assert [e.key.condition for e in outcome.events] == ["unreachable"]
    assert received(black_hole) == TRIES  # one request per try, no more
    assert status.poll_duration_seconds is not None
    assert status.poll_duration_seconds >= 0.9 * TIMEOUT * TRIES


async def test_dead_agent_is_unreachable(engine: PollEngine, tmp_path: Path) -> None:
    with SnmpSim([build_agent("gone", "fiber")], tmp_path / "gone") as sim:
        raw = sim.target("gone", timeout_seconds=TIMEOUT, retries=RETRIES, thresholds=FAST)
        targets, probes = settings(engine, raw)
        async with ProbeService(targets, probes=probes) as service:
            assert (await service.poll("gone")).status.reachable
            sim.kill()
            status = (await service.poll("gone")).status
    assert status.state == "unreachable"
    assert status.reasons[0].startswith(
        f"no response from {sim.address} within 0.5 s x 2 tries (")


@pytest.fixture
def stalling(tmp_path: Path) -> Iterator[SnmpSim]:
    """An agent that never answers a request touching row 20 of ifAlias."""
    stall = build_agent("stall", "fiber", interfaces=ROWS)
    stall.records = [SimRecord(r.oid, 4, "wait=100000", "delay")
                     if r.oid == f"{ALIAS}.20" else r for r in stall.records]
    with SnmpSim([stall], tmp_path / "stall") as sim:
        yield sim


async def test_agent_that_stalls_mid_walk(engine: PollEngine, stalling: SnmpSim) -> None:
    targets, probes = settings(engine, stalling.target(
        "stall", timeout_seconds=TIMEOUT, retries=RETRIES))
    async with open_transport(engine) as transport:
        session: PollSession = transport.agent(targets[0])
        assert (await session.get([scalar("descr", "1.3.6.1.2.1.1.1.0")]))["descr"]
        with pytest.raises(AgentUnreachableError) as caught:
            await session.walk([column("alias", ALIAS)])
        assert str(caught.value).endswith(
            f"no response from {stalling.address} within 0.5 s x 2 tries "
            "(a wrong community looks the same)")
        assert session.walk_timeouts == TRIES
        assert session.pdus >= 1 + TRIES  # the GET, then one request per try
        # fetch() reports it as unreachable too, and the service as a state.
        with pytest.raises(AgentUnreachableError):
            await fetch(session, [scalar("descr", "1.3.6.1.2.1.1.1.0")],
                        [column("alias", ALIAS)])
    async with ProbeService(targets, probes=probes) as service:
        status = (await service.poll("stall")).status
    assert status.state == "unreachable"


# --- responses that do not fit -----------------------------------------------------------

async def test_responses_that_do_not_fit_adapt_and_lose_nothing(
        engine: PollEngine, agent: Snmpd) -> None:
    # gufo asks SNMPv3 agents for at most 2,048-byte messages: snmpd answers a GETBULK of
    # 25 rows of 200 bytes with genErr and a GET of 30 such objects with tooBig.
    targets, _ = settings(engine, agent.target(
        "big", user="u-sha256-aes128", timeout_seconds=2.0, retries=RETRIES))
    cols = [column("first", f"{BASE}.1"), column("second", f"{BASE}.2")]
    async with open_transport(engine) as transport:
        session = transport.agent(targets[0])
        tables = await session.walk(cols)
        for col, name in ((1, "first"), (2, "second")):
            assert tables[name] == {(row,): long_text(col, row, 200).encode()
                                    for row in range(1, ROWS + 1)}
        assert await session.walk(cols) == tables  # again, from the adapted size
        values = await session.get([scalar(f"s{i}", f"{BASE}.3.{i}.0")
                                    for i in range(1, ROWS + 1)])
        assert values == {f"s{i}": long_text(3, i, 200).encode() for i in range(1, ROWS + 1)}
        assert session.walk_timeouts == 0
        if engine == "gufo":
            assert session.too_big >= 2
            assert session.max_repetitions < 25


def agent_with_long_aliases(name: str, size: int) -> SimAgent:
    wide = build_agent(name, "fiber", interfaces=ROWS)
    wide.records = [SimRecord(r.oid, 4, long_text(18, int(r.oid.rsplit(".", 1)[1]), size))
                    if r.oid.startswith(f"{ALIAS}.") else r for r in wide.records]
    return wide


async def test_big_v2c_responses_are_read_whole(engine: PollEngine, tmp_path: Path) -> None:
    # 25 rows of 1,000 bytes: above gufo's 4 KB receive buffer, below the UDP limit.
    with SnmpSim([agent_with_long_aliases("wide", 1000)], tmp_path / "wide") as sim:
        targets, _ = settings(engine, sim.target("wide", timeout_seconds=2.0,
                                                 retries=RETRIES))
        async with open_transport(engine) as transport:
            session = transport.agent(targets[0])
            tables = await session.walk([column("alias", ALIAS)])
    assert tables["alias"] == {(row,): long_text(18, row, 1000).encode()
                               for row in range(1, ROWS + 1)}
    assert session.walk_timeouts == 0
    if engine == "gufo":
        assert session.too_big >= 1


async def test_object_that_always_fails(engine: PollEngine, tmp_path: Path) -> None:
    broken = build_agent("broken", "fiber", interfaces=ROWS)
    broken.records = [SimRecord(r.oid, 4, "op=any,status=genError", "error")
                      if r.oid == f"{ALIAS}.7" else r for r in broken.records]
    with SnmpSim([broken], tmp_path / "broken") as sim:
        targets, _ = settings(engine, sim.target("broken", timeout_seconds=2.0,
                                                 retries=RETRIES))
        async with open_transport(engine) as transport:
            session = transport.agent(targets[0])
            if engine == "pysnmp":
                with pytest.raises(AgentResponseError, match="GETBULK failed: genErr"):
                    await session.walk([column("alias", ALIAS)])
            else:
                # gufo hides error-status: the column ends before the broken row
                # (documented in docs/probes.md). It never loops or hangs.
                tables = await session.walk([column("alias", ALIAS)])
                assert sorted(tables["alias"]) == [(row,) for row in range(1, 7)]
    assert session.max_repetitions >= 1


# --- counters ------------------------------------------------------------------------------

async def test_counter32_wrap_is_not_a_spike(engine: PollEngine, tmp_path: Path) -> None:
    wrap = build_agent("wrap", "fiber")
    wrap.records = [SimRecord(r.oid, 65, 4294967295 - 1000, "writecache")
                    if r.oid == IN_OCTETS_1 else r for r in wrap.records]
    with SnmpSim([wrap], tmp_path / "wrap") as sim:
        raw = sim.target("wrap", timeout_seconds=2.0)
        raw["snmp"]["version"] = "1"  # 32-bit counters
        targets, probes = settings(engine, raw)
        async with ProbeService(targets, probes=probes) as service:
            first = (await service.poll("wrap")).status
            sim.set_raw("wrap", [(IN_OCTETS_1, 65, 5000)])
            second = (await service.poll("wrap")).status
    assert first.interfaces[0].in_octets == 4294967295 - 1000
    assert second.interfaces[0].in_octets == 5000
    rate = second.interfaces[0].in_bps
    assert rate is not None
    assert 0 < rate < 6001 * 8 / 0.001  # 6,001 bytes, not 4 GB, however short the gap
    assert not any("reset" in r for r in second.problems)


# --- wrong credentials ---------------------------------------------------------------------

def wrong(agent: Snmpd, what: str) -> dict[str, Any]:
    raw = agent.target(f"wrong-{what}", user="u-sha256-aes128", timeout_seconds=TIMEOUT,
                       retries=RETRIES, thresholds=FAST)
    if what == "community":
        raw = agent.target("wrong-community", timeout_seconds=TIMEOUT, retries=RETRIES,
                           thresholds=FAST)
        raw["snmp"]["community"] = "not-public"
    elif what == "user":
        raw["snmp"]["user"] = "mallory"
    elif what == "auth":
        raw["snmp"]["auth_key"] = "not-the-auth-key"
    else:
        raw["snmp"]["priv_key"] = "not-the-priv-key"
    return raw


async def test_wrong_credentials_give_a_human_reason(engine: PollEngine,
                                                     agent: Snmpd) -> None:
    whats = ("community", "user", "auth", "priv")
    statuses = {}
    for what in whats:  # one service each: pysnmp refuses one user with several keys
        targets, probes = settings(engine, wrong(agent, what))
        async with ProbeService(targets, probes=probes) as service:
            statuses[what] = (await service.poll(f"wrong-{what}")).status
    for status in statuses.values():
        assert status.state == "unreachable"
        assert not status.reachable
    assert re.fullmatch(r"no response from \S+ within 0\.5 s x 2 tries "
                        r"\(a wrong community looks the same\)",
                        statuses["community"].reasons[0])
    for what in ("user", "auth"):
        reason = statuses[what].reasons[0]
        assert reason.startswith("SNMPv3 ")
        assert reason.endswith("(check user, auth/priv protocols and keys)")
    priv = statuses["priv"].reasons[0]
    assert "(a wrong SNMPv3 privacy key looks the same)" in priv or \
        priv.endswith("(check user, auth/priv protocols and keys)")
    if engine == "gufo":
        assert priv.endswith("(a wrong SNMPv3 privacy key looks the same)")


# --- gufo only: what netguard adds around it -----------------------------------------------

async def test_gufo_rediscovers_the_engine_after_the_time_window(agent: Snmpd) -> None:
    clock = ManualClock()
    targets, probes = settings("gufo", agent.target("v3", user="u-sha-aes128"))
    async with ProbeService(targets, probes=probes, clock=clock) as service:
        for step in (0, 100, 149, 151, 10):
            clock.advance(step)
            assert (await service.poll("v3")).status.reachable
        session = service._slots["v3"].session
    assert isinstance(session, GufoAgentSession)
    assert session.discoveries == 2  # the first poll, and after 151 s of silence


async def test_gufo_keeps_open_sockets_bounded(agent: Snmpd) -> None:
    raw = [agent.target(f"t{i}", timeout_seconds=2.0) for i in range(30)]
    raw += [agent.target(f"v3-{i}", user="u-sha256-aes128", timeout_seconds=2.0)
            for i in range(10)]
    targets, _ = settings("gufo", *raw)
    probes = ProbesConfig(engine="gufo", max_open_sockets=5)
    async with ProbeService(targets, probes=probes, max_concurrency=4) as service:
        for _ in range(2):
            outcomes = await service.poll_all()
            assert all(o.status.reachable for o in outcomes)
        transport = service._transports["gufo"] if service._transports else None
        assert isinstance(transport, GufoTransport)
        assert transport.open_sockets <= 5
        assert transport.evictions >= 2 * 40 - 5


# --- configuration -------------------------------------------------------------------------

def test_engine_option_is_validated() -> None:
    assert settings_from_data({}).probes.engine == "gufo"
    with pytest.raises(ConfigError, match=r"probes\.engine: .*unknown engine 'net-snmp'"):
        settings_from_data({"probes": {"engine": "net-snmp"}})


def test_v3_context_needs_pysnmp() -> None:
    raw = {"id": "ctx", "kind": "fiber", "address": "127.0.0.1",
           "snmp": {**SnmpdUser().snmp_config(), "context_name": "vlan-10"}}
    with pytest.raises(ConfigError, match=r"targets\[0\]\.snmp\.context_name: the gufo "
                                          "engine has no SNMPv3 context names"):
        settings_from_data({"targets": [raw]})
    raw["snmp"]["engine"] = "pysnmp"
    assert settings_from_data({"targets": [raw]}).probes.engine_of(
        settings_from_data({"targets": [raw]}).targets[0]) == "pysnmp"
