"""Trap receiver: real v1/v2c/v3 traps from net-snmp ``snmptrap`` trigger an immediate re-poll."""

from __future__ import annotations

import asyncio
import subprocess

import pytest

from netguard.errors import ProbeError
from netguard.probes.service import ProbeService
from netguard.probes.traps import TRAP_TYPES, TrapReceiver, trap_name, trap_type
from netguard.sim import SnmpSim, free_udp_port
from tests.probes.conftest import FAST, targets

pytestmark = pytest.mark.integration

ENGINE_ID = "8000000001020304"
V3 = {"version": "3", "user": "ng", "auth_protocol": "sha256", "auth_key": "ng-auth-key-1",
      "priv_protocol": "aes128", "priv_key": "ng-priv-key-1", "engine_id": ENGINE_ID}


async def snmptrap(*args: str) -> None:
    await asyncio.to_thread(subprocess.run, ["snmptrap", *args], check=True, timeout=20,
                            env={"MIBS": "", "PATH": "/usr/bin:/bin"})


def test_trap_names() -> None:
    assert trap_name("1.3.6.1.6.3.1.1.5.3") == "linkDown"
    assert trap_name(".1.3.6.1.2.1.33.2.1") == "upsTrapOnBattery"
    assert trap_name("1.3.6.1.4.1.9.9.1") == "1.3.6.1.4.1.9.9.1"
    # Metric labels stay bounded whatever OID an agent sends.
    assert trap_type(".1.3.6.1.6.3.1.1.5.4") == "linkUp"
    assert trap_type("1.3.6.1.4.1.9.9.1") == "other"
    assert trap_type("") == "unknown"
    assert {"linkDown", "other", "unknown"} <= set(TRAP_TYPES)


async def test_traps_trigger_repoll(sim: SnmpSim) -> None:
    raw = [sim.target("fiber-down", "fiber-t", thresholds=FAST),
           sim.target("cabin_5g-degraded", "cabin-t", thresholds=FAST),
           {"id": "elsewhere", "kind": "fiber", "address": "127.0.0.2:161",
            "snmp": {"version": "2c", "community": "far-away"}},
           {"id": "cabin-v3", "kind": "cabin_5g", "address": "127.0.0.1:1", "snmp": V3}]
    configs = targets(*raw)
    port = free_udp_port()
    queue: asyncio.Queue[tuple[str, str]] = asyncio.Queue()
    async with ProbeService(configs[:2]) as probes, \
            TrapReceiver(f"127.0.0.1:{port}", configs, lambda t, n: queue.put_nowait((t, n))) \
            as receiver:
        dest = f"127.0.0.1:{port}"
        await snmptrap("-v2c", "-c", "fiber-down", dest, "", "1.3.6.1.6.3.1.1.5.3")
        target_id, name = await asyncio.wait_for(queue.get(), 10)
        assert (target_id, name) == ("fiber-t", "linkDown")
        outcome = await probes.poll(target_id)  # what the daemon does on a trap
        assert outcome.status.state == "down"
        assert "interface GigabitEthernet0/0/1 is oper-down" in outcome.status.reasons

        await snmptrap("-v1", "-c", "cabin_5g-degraded", dest, "1.3.6.1.4.1.8072",
                       "127.0.0.1", "0", "0", "")
        assert await asyncio.wait_for(queue.get(), 10) == ("cabin-t", "coldStart")

        await snmptrap("-v3", "-e", f"0x{ENGINE_ID}", "-u", "ng", "-a", "SHA-256",
                       "-A", "ng-auth-key-1", "-x", "AES", "-X", "ng-priv-key-1",
                       "-l", "authPriv", dest, "", "1.3.6.1.2.1.33.2.1")
        assert await asyncio.wait_for(queue.get(), 10) == ("cabin-v3", "upsTrapOnBattery")

        # Right community, wrong sender address: counted, not delivered; receiver lives on.
        await snmptrap("-v2c", "-c", "far-away", dest, "", "1.3.6.1.6.3.1.1.5.4")
        await snmptrap("-v2c", "-c", "fiber-down", dest, "", "1.3.6.1.6.3.1.1.5.4")
        assert await asyncio.wait_for(queue.get(), 10) == ("fiber-t", "linkUp")
        assert receiver.unmatched == 1
        assert receiver.received == 5
        stats = receiver.stats()
        assert stats.received == {"linkDown": 1, "coldStart": 1, "upsTrapOnBattery": 1,
                                  "linkUp": 2}
        assert stats.decoded == {"linkDown": 1, "coldStart": 1, "upsTrapOnBattery": 1,
                                 "linkUp": 1}
        assert stats.rejected == {("linkUp", "unmatched"): 1}
        assert queue.empty()


async def test_port_in_use_is_a_clear_error() -> None:
    port = free_udp_port()
    async with TrapReceiver(f"127.0.0.1:{port}", [], lambda t, n: None):
        with pytest.raises(ProbeError, match=f"cannot listen on 127.0.0.1:{port}"):
            async with TrapReceiver(f"127.0.0.1:{port}", [], lambda t, n: None):
                pass
