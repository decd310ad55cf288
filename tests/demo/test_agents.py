"""The simulated agents answer real SNMP requests, change on cue, and stop cleanly."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from netguard.demo.agents import SimulatedAgents, profile_of
from netguard.demo.fleet import FLEET, fleet_target
from netguard.demo.timeline import Step
from netguard.errors import DemoError
from netguard.probes.profiles import default_library
from tests.support.tools import require_tool

pytestmark = require_tool("snmpget")

SYS_UPTIME = "1.3.6.1.2.1.1.3.0"
HC_IN = "1.3.6.1.2.1.31.1.1.1.6.1"
HUAWEI_RX = "1.3.6.1.4.1.2011.5.25.31.1.1.3.1.8.67108865"
UPS_SOURCE = "1.3.6.1.2.1.33.1.4.1.0"


def snmpget(address: str, community: str, *oids: str) -> list[str] | None:
    """Values (as net-snmp prints them), or None on timeout."""
    result = subprocess.run(
        ["snmpget", "-v2c", "-c", community, "-t", "0.5", "-r", "0", "-Oqv", "-On",
         address, *oids],
        capture_output=True, text=True, timeout=10, check=False)
    if result.returncode != 0:
        return None
    return result.stdout.split("\n")[:len(oids)]


def alive(pid: int) -> bool:
    """True while a process with this id exists."""
    return os.path.exists(f"/proc/{pid}")


def test_every_fleet_target_has_a_known_profile_of_its_kind() -> None:
    library = default_library()
    for target in FLEET:
        assert profile_of(target) in library.names()
    assert profile_of(fleet_target("fib-hq-core")) == "fiber-standard"
    assert profile_of(fleet_target("fib-field-hospital")) == "fiber-huawei"


async def test_agents_answer_change_and_go_down(tmp_path: Path) -> None:
    fleet = [fleet_target(t) for t in ("fib-field-hospital", "cab-stadium", "pl-east-uplink",
                                       "fib-east-clinic")]
    async with SimulatedAgents(fleet, tmp_path, isolate={"pl-east-uplink"}) as agents:
        pids = agents.pids
        assert len(pids) == 2
        where = agents.addresses
        assert where["pl-east-uplink"].address != where["fib-east-clinic"].address
        fiber = where["fib-field-hospital"].address
        first = snmpget(fiber, "fib-field-hospital", HC_IN, HUAWEI_RX)
        assert first is not None
        assert first[1] == "-850"
        await agents.apply(Step(0, "rx_power_low", "fib-field-hospital", "x"))
        second = snmpget(fiber, "fib-field-hospital", HC_IN, HUAWEI_RX)
        assert second is not None
        assert second[1] == "-2850"
        assert int(second[0]) > int(first[0])  # counters move
        await agents.apply(Step(0, "rx_power_normal", "fib-field-hospital", "x"))
        assert snmpget(fiber, "fib-field-hospital", HUAWEI_RX) == ["-850"]

        await agents.apply(Step(0, "on_battery", "cab-stadium", "x"))
        assert snmpget(where["cab-stadium"].address, "cab-stadium", UPS_SOURCE) == ["5"]

        uplink = where["pl-east-uplink"].address
        await agents.apply(Step(0, "agent_down", "pl-east-uplink", "x"))
        assert snmpget(uplink, "pl-east-uplink", SYS_UPTIME) is None
        assert snmpget(fiber, "fib-east-clinic", SYS_UPTIME) is not None
        with pytest.raises(DemoError, match="shares its simulator"):
            await agents.apply(Step(0, "agent_down", "fib-east-clinic", "x"))
        await agents.apply(Step(0, "agent_up", "pl-east-uplink", "x"))
        assert snmpget(uplink, "pl-east-uplink", SYS_UPTIME) is not None
        pids += agents.pids
    assert not [pid for pid in pids if alive(pid)]
