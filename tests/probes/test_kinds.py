"""Acceptance 3 and 4: every kind with its readings against snmpsim, scenarios,
suppression under a down upstream, runtime changes, and SNMPv3 authPriv."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from netguard.faults import FaultCleared, FaultOpened
from netguard.probes.service import ProbeService
from netguard.probes.state import TargetStatus
from netguard.sim import SnmpSim, V3User, build_agent
from tests.probes.conftest import FAST, targets

pytestmark = pytest.mark.integration

EXPECTED = {"normal": "up", "degraded": "degraded", "down": "down"}


async def _poll_until(probes: ProbeService, tid: str, state: str) -> TargetStatus:
    """Poll until the target reaches ``state`` (rates need two samples some time apart)."""
    deadline = time.monotonic() + 10.0
    while True:
        status = (await probes.poll(tid)).status
        if status.state == state or time.monotonic() > deadline:
            return status


def _check_readings(status: TargetStatus) -> None:
    assert status.reachable
    assert status.sys_uptime_seconds is not None
    assert status.interfaces
    first = status.interfaces[0]
    assert first.admin_status == 1
    assert first.in_octets is not None
    assert first.speed_bps
    if status.kind == "fiber":
        assert status.optical
        assert all(o.rx_dbm is not None and o.tx_dbm is not None for o in status.optical)
    if status.kind == "wireless":
        assert status.radio is not None
        assert status.radio.signal_dbm is not None
        assert status.radio.snr_db is not None
    if status.kind == "cabin_5g":
        assert status.ups is not None
        assert status.ups.battery_status in (2, 4)
        assert status.ups.input_voltage is not None
    if status.kind == "pon":
        assert [p.onus_total for p in status.pon] == [8, 8]
        assert status.pon[1].onus_online == 8
        assert all(v is not None for v in status.pon[1].onu_rx_dbm.values())


@pytest.mark.parametrize("kind", ["fiber", "wireless", "private_line", "cabin_5g", "pon"])
async def test_every_kind_and_scenario(sim: SnmpSim, kind: str) -> None:
    names = [f"{kind}-{s}" for s in EXPECTED]
    async with ProbeService(targets(*(sim.target(n, thresholds=FAST) for n in names))) as probes:
        for name, scenario in zip(names, EXPECTED, strict=True):
            status = await _poll_until(probes, name, EXPECTED[scenario])
            assert status.state == EXPECTED[scenario], (name, status.reasons)
            _check_readings(status)
            if scenario == "normal":
                assert status.reasons == ()
            else:
                assert status.reasons
            # Counters move and produce rates once two samples exist.
            again = (await probes.poll(name)).status
            assert again.interfaces[0].in_octets is not None
            assert first_in(again) >= first_in(status)
            assert again.interfaces[0].in_bps is not None
            assert again.interfaces[0].in_bps > 0


def first_in(status: TargetStatus) -> int:
    value = status.interfaces[0].in_octets
    assert value is not None
    return value


async def test_vendor_presets(sim: SnmpSim) -> None:
    async with ProbeService(targets(sim.target("fiber-huawei"),
                                    sim.target("wireless-cambium"))) as probes:
        huawei = (await probes.poll("fiber-huawei")).status
        cambium = (await probes.poll("wireless-cambium")).status
    optic = huawei.optical[0]
    assert (optic.sensor, optic.rx_dbm, optic.tx_dbm) == ("GigabitEthernet0/0/1", -8.5, -2.3)
    assert cambium.radio is not None
    assert (cambium.radio.signal_dbm, cambium.radio.snr_db) == (-58.0, 30.0)


async def test_child_under_down_upstream_is_suppressed(sim: SnmpSim) -> None:
    parent = sim.target("pon-down", "olt-1", thresholds=FAST)
    child = sim.target("cabin_5g-degraded", "cabin-7", upstream="olt-1", thresholds=FAST)
    healthy = sim.target("cabin_5g-normal", "cabin-8", upstream="olt-1", thresholds=FAST)
    async with ProbeService(targets(parent, child, healthy)) as probes:
        outcomes = {o.status.target: o for o in await probes.poll_all()}
    assert outcomes["olt-1"].status.state == "down"
    assert outcomes["olt-1"].status.suppressed_by is None
    kid = outcomes["cabin-7"]
    assert kid.status.state == "degraded"
    assert kid.status.suppressed_by == "olt-1"
    opened = [e for e in kid.events if isinstance(e, FaultOpened)]
    assert opened
    assert all(e.suppressed_by == "olt-1" for e in opened)
    assert outcomes["cabin-8"].events == ()
    root = [e for e in outcomes["olt-1"].events if isinstance(e, FaultOpened)]
    assert root
    assert all(e.suppressed_by is None for e in root)


async def test_runtime_changes_open_and_clear_faults(sim: SnmpSim) -> None:
    names = ("flip-fiber", "flip-cabin", "flip-pon", "flip-line")
    raw = [sim.target(n, thresholds=FAST) for n in names]
    async with ProbeService(targets(*raw)) as probes:
        for name in names:
            assert (await probes.poll(name)).status.state == "up"
        await sim.aset_knob("flip-fiber", "rx_dbm", -27.4)
        fiber = await probes.poll("flip-fiber")
        assert fiber.status.state == "degraded"
        assert "GigabitEthernet0/0/1 rx power -27.4 dBm below -25.0" in fiber.status.reasons
        assert {e.key.condition for e in fiber.events} == {"rx_power_low"}
        await sim.aset_knob("flip-fiber", "rx_dbm", -8.0)
        fiber = await probes.poll("flip-fiber")
        assert fiber.status.state == "up"
        assert fiber.events
        assert all(isinstance(e, FaultCleared) for e in fiber.events)

        sim.apply_scenario("flip-cabin", "degraded")
        cabin = await probes.poll("flip-cabin")
        assert cabin.status.ups is not None
        assert cabin.status.ups.on_battery
        assert [e.key.condition for e in cabin.events] == ["on_battery"]

        await sim.aset_knob("flip-line", "dsx1_line_status", 64)
        line = await probes.poll("flip-line")
        assert line.status.state == "down"
        assert line.status.reasons == ("E1/T1 line 1 alarm: loss of signal",)
        await sim.aset_knob("flip-line", "dsx1_line_status", 1)
        assert (await probes.poll("flip-line")).status.state == "up"

        await sim.aset_knob("flip-pon", "onus_online:1", 2)
        pon = await probes.poll("flip-pon")
        assert [(p.onus_online, p.onus_total) for p in pon.status.pon] == [(8, 8), (2, 8)]
        assert pon.status.reasons == ("PON GPON 0/1/1: 6 of 8 ONUs offline",)


async def test_snmpv3_authpriv_on_snmpsim(sim: SnmpSim) -> None:
    good = sim.target("fiber-huawei", "v3-ok", v3=True)
    bad = sim.target("fiber-huawei", "v3-bad", v3=True, timeout_seconds=0.5, retries=0)
    bad["snmp"]["priv_key"] = "wrong-priv-key"
    bad["snmp"]["auth_key"] = "wrong-auth-key"
    assert good["snmp"]["auth_protocol"] == "sha256"
    assert good["snmp"]["priv_protocol"] == "aes128"
    # snmpsim picks the agent by SNMPv3 context name, which only the pysnmp engine sends;
    # pysnmp refuses one user name with two key sets in one service, hence two.
    good["snmp"]["engine"] = bad["snmp"]["engine"] = "pysnmp"
    async with ProbeService(targets(good)) as probes:
        ok = (await probes.poll("v3-ok")).status
    async with ProbeService(targets(bad)) as probes:
        refused = (await probes.poll("v3-bad")).status
    assert ok.state == "up"
    assert ok.optical[0].rx_dbm == -8.5
    assert refused.state == "unreachable"
    # A refusal, not a timeout: the reason says which.
    assert refused.reasons
    assert refused.reasons[0].startswith("SNMPv3 Wrong SNMP PDU digest")


@pytest.mark.parametrize(("auth", "priv"), [("SHA512", "AES256"), ("MD5", "AES192"),
                                            ("SHA224", "DES")])
async def test_snmpv3_other_protocols_on_snmpsim(tmp_path: Path, auth: str, priv: str) -> None:
    user = V3User(auth_proto=auth, priv_proto=priv)
    with SnmpSim([build_agent("radio", "wireless")], tmp_path / "v3", v3=user) as s:
        raw = s.target("radio", v3=True)
        raw["snmp"]["engine"] = "pysnmp"  # snmpsim needs the v3 context name
        async with ProbeService(targets(raw)) as probes:
            status = (await probes.poll("radio")).status
    assert status.reachable, status.reasons
    assert status.radio is not None
    assert status.radio.signal_dbm == -58.0
