"""The simulated agents answer real SNMP requests, change on cue, and stop cleanly."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from netguard.demo.agents import AgentCondition, SimulatedAgents, agent_records
from netguard.demo.fleet import FLEET, fleet_target
from netguard.demo.timeline import Step

pytestmark = pytest.mark.skipif(shutil.which("snmpget") is None, reason="net-snmp tools missing")

SYS_UPTIME = "1.3.6.1.2.1.1.3.0"
HC_IN = "1.3.6.1.2.1.31.1.1.1.6.1"
HUAWEI_RX = "1.3.6.1.4.1.2011.5.25.31.1.1.3.1.8.16850954"
UPS_SOURCE = "1.3.6.1.2.1.33.1.4.1.0"


def snmpget(agents: SimulatedAgents, community: str, *oids: str) -> list[str] | None:
    """Values (as net-snmp prints them), or None on timeout."""
    result = subprocess.run(
        ["snmpget", "-v2c", "-c", community, "-t", "0.5", "-r", "0", "-Oqv", "-On",
         f"{agents.host}:{agents.port}", *oids],
        capture_output=True, text=True, timeout=10, check=False)
    if result.returncode != 0:
        return None
    return result.stdout.split("\n")[:len(oids)]


def test_records_are_sorted_and_follow_the_condition() -> None:
    fiber = fleet_target("fib-field-hospital")
    normal = agent_records(fiber, AgentCondition(), 3)
    low = agent_records(fiber, AgentCondition(rx_low=True), 3)
    oids = [tuple(int(p) for p in line.split("|")[0].split(".")) for line in normal]
    assert oids == sorted(oids)
    assert f"{HUAWEI_RX}|2|-2850" in low
    assert f"{HUAWEI_RX}|2|-2850" not in normal
    pon = agent_records(fleet_target("pon-riverside"), AgentCondition(onus_lost=True), 0)
    statuses = [line for line in pon if ".46.1.15.4194312192." in line]
    assert sum(line.endswith("|2") for line in statuses) == 5
    for target in FLEET:
        assert any(line.startswith(f"{SYS_UPTIME}|67:numeric|") for line in
                   agent_records(target, AgentCondition(), 0))


async def test_agents_answer_change_and_go_down(tmp_path: Path) -> None:
    async with SimulatedAgents(FLEET, tmp_path) as agents:
        pids = agents.pids
        assert len(pids) == 1
        first = snmpget(agents, "fib-field-hospital", HC_IN, HUAWEI_RX)
        assert first is not None
        assert first[1] == "-580"  # the fifth fleet entry: -512 - 4 * 17
        await agents.apply(Step(0, "rx_power_low", "fib-field-hospital", "x"))
        second = snmpget(agents, "fib-field-hospital", HC_IN, HUAWEI_RX)
        assert second is not None
        assert second[1] == "-2850"
        assert int(second[0]) > int(first[0])  # moving counters carry on across rewrites

        await agents.apply(Step(0, "on_battery", "cab-stadium", "x"))
        assert snmpget(agents, "cab-stadium", UPS_SOURCE) == ["5"]

        await agents.apply(Step(0, "agent_down", "pl-east-uplink", "x"))
        await agents.apply(Step(0, "agent_down", "fib-east-clinic", "x"))
        for dark in ("pl-east-uplink", "fib-east-clinic"):
            assert snmpget(agents, dark, SYS_UPTIME) is None, dark
        assert snmpget(agents, "cab-east-school", SYS_UPTIME) is not None
        await agents.apply(Step(0, "agent_up", "fib-east-clinic", "x"))
        assert snmpget(agents, "fib-east-clinic", SYS_UPTIME) is not None
        assert snmpget(agents, "pl-east-uplink", SYS_UPTIME) is None
    assert not [pid for pid in pids if alive(pid)]


def alive(pid: int) -> bool:
    """True while a process with this id exists."""
    return os.path.exists(f"/proc/{pid}")
