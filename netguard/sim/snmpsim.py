"""Run ``snmpsim-command-responder`` with simulated agents and change values at runtime."""

from __future__ import annotations

import asyncio
import concurrent.futures
import shutil
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

from pysnmp.hlapi.v3arch import asyncio as hl
from pysnmp.proto import rfc1902

from netguard.sim.agents import Scenario, SimAgent
from netguard.sim.process import AgentServer, ChildProcess, answers_snmp


@dataclass(frozen=True, slots=True)
class V3User:
    """An SNMPv3 USM user for snmpsim (``auth_proto``/``priv_proto`` as snmpsim spells them).

    The v3 context name selects the agent (its data file name).
    """

    user: str = "ng"
    auth_key: str = "ng-auth-key-1"
    auth_proto: str = "SHA256"
    priv_key: str = "ng-priv-key-1"
    priv_proto: str = "AES128"


def _responder() -> str:
    found = shutil.which("snmpsim-command-responder")
    if found:
        return found
    candidate = Path(sys.executable).parent / "snmpsim-command-responder"
    return str(candidate)


class SnmpSim(AgentServer):
    """One snmpsim process serving several agents on one loopback UDP port.

    Each agent is a data file; v1/v2c select it by community (= the agent's name), v3 by
    context name. Runtime changes go through SNMP SET to ``writecache`` records; each
    agent gets its own writecache alias so SETs never leak between agents. Stopping the
    process kills every agent in it: give an agent its own ``SnmpSim`` to kill it alone.

    Args:
        agents: The agents to serve.
        directory: Working directory (data, cache, log).
        port: UDP port on 127.0.0.1 (a free one by default).
        v3: Also accept this SNMPv3 user.
    """

    def __init__(self, agents: Iterable[SimAgent], directory: Path, *, port: int | None = None,
                 v3: V3User | None = None) -> None:
        super().__init__(port)
        self.agents = {a.name: a for a in agents}
        if not self.agents:
            raise ValueError("SnmpSim needs at least one agent")
        self.directory = directory
        self.v3 = v3
        self._aliases = {name: f"wc{i}" for i, name in enumerate(self.agents)}
        self._pool = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="snmpsim-set")

    def target(self, agent: str, target_id: str | None = None, **extra: Any) -> dict[str, Any]:
        """A netguard target mapping that polls ``agent`` here (v2c, or v3 with ``v3=True``).

        Pass ``v3=True`` to use this simulator's v3 user (authPriv) instead of v2c.
        """
        use_v3 = bool(extra.pop("v3", False))
        data = self.agents[agent].target(target_id, address=self.address, **extra)
        if use_v3:
            if self.v3 is None:
                raise ValueError("this simulator has no v3 user")
            data["snmp"] = {"version": "3", "user": self.v3.user,
                            "auth_protocol": self.v3.auth_proto.lower(),
                            "auth_key": self.v3.auth_key,
                            "priv_protocol": self.v3.priv_proto.lower(),
                            "priv_key": self.v3.priv_key, "context_name": agent}
        return data

    def _write(self) -> None:
        data = self.directory / "data"
        data.mkdir(parents=True, exist_ok=True)
        (self.directory / "cache").mkdir(exist_ok=True)
        for name, agent in self.agents.items():
            agent.write(data, self._aliases[name])

    def _argv(self) -> list[str]:
        argv = [_responder(), "--data-dir", str(self.directory / "data"),
                "--cache-dir", str(self.directory / "cache"),
                "--logging-method", "null"]
        for alias in self._aliases.values():
            argv += ["--variation-module-options", f"writecache={alias}:"]
        if self.v3 is not None:
            argv += ["--v3-user", self.v3.user, "--v3-auth-key", self.v3.auth_key,
                     "--v3-auth-proto", self.v3.auth_proto, "--v3-priv-key", self.v3.priv_key,
                     "--v3-priv-proto", self.v3.priv_proto]
        argv += ["--agent-udpv4-endpoint", self.address]
        return argv

    def start(self, timeout: float = 60.0) -> SnmpSim:
        """Write the data files and start the simulator; returns once it answers."""
        self._write()
        first = next(iter(self.agents))
        self._process = ChildProcess(
            self._argv(), self.directory / "snmpsim.log",
            ready=lambda: answers_snmp(self.host, self.port, first),
            env={"SNMPSIM_ALLOW_ROOT": "true"})
        self._process.start(timeout)
        return self

    def restart(self) -> None:
        """Stop and start again on the same port: a reboot (sysUpTime and counters restart,
        runtime SETs are forgotten)."""
        super().restart()

    def close(self) -> None:
        """Stop the simulator and the SET worker thread."""
        self.stop()
        self._pool.shutdown(wait=True)

    def set_knob(self, agent: str, knob: str, value: float) -> None:
        """Set a named value of an agent (e.g. ``rx_dbm``, ``output_source``,
        ``onus_online:0``) in engineering units. Blocks until the simulator accepted it.

        Raises:
            KeyError: Unknown agent or knob.
            RuntimeError: The simulator refused or did not answer.
        """
        self.set_raw(agent, self.agents[agent].knob_values(knob, value))

    def apply_scenario(self, agent: str, scenario: Scenario) -> None:
        """Set every knob of ``agent`` to the values of ``scenario``.

        Counter rates are fixed when the data is written (e.g. a private line's
        error rate), so those parts of a scenario need the agent built with it.
        """
        sets: list[tuple[str, int, int]] = []
        spec = self.agents[agent]
        for knob, value in spec.scenarios[scenario].items():
            sets.extend(spec.knob_values(knob, value))
        self.set_raw(agent, sets)

    def set_raw(self, agent: str, sets: Sequence[tuple[str, int, int]]) -> None:
        """SNMP SET ``(oid, tag, raw value)`` triples on ``agent`` (writecache records)."""
        if agent not in self.agents:
            raise KeyError(f"unknown agent {agent!r}")
        if sets:
            self._pool.submit(asyncio.run, _snmp_set(self.host, self.port, agent,
                                                     list(sets))).result()

    async def aset_knob(self, agent: str, knob: str, value: float) -> None:
        """:meth:`set_knob` for async code (runs in a worker thread)."""
        await asyncio.to_thread(self.set_knob, agent, knob, value)


class SimFleet:
    """Several :class:`SnmpSim` processes started and stopped together (for load)."""

    def __init__(self, sims: Sequence[SnmpSim]) -> None:
        self.sims = list(sims)

    def __enter__(self) -> SimFleet:
        started: list[SnmpSim] = []
        try:
            for sim in self.sims:
                started.append(sim.start())
        except BaseException:
            for sim in started:
                sim.stop()
            raise
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        for sim in self.sims:
            sim.close()


async def _snmp_set(host: str, port: int, community: str,
                    sets: list[tuple[str, int, int]]) -> None:
    types = {2: rfc1902.Integer32, 65: rfc1902.Counter32, 66: rfc1902.Gauge32,
             67: rfc1902.TimeTicks, 70: rfc1902.Counter64}
    engine = hl.SnmpEngine()
    try:
        target = await hl.UdpTransportTarget.create((host, port), timeout=2, retries=2)
        # A few OIDs per PDU keeps responses small for snmpsim.
        for start in range(0, len(sets), 20):
            chunk = sets[start:start + 20]
            err, status, _, _ = await hl.set_cmd(
                engine, hl.CommunityData(community), target, hl.ContextData(),
                *(hl.ObjectType(hl.ObjectIdentity(oid), types[tag](value))
                  for oid, tag, value in chunk), lookupMib=False)
            if err or int(status):
                raise RuntimeError(f"snmpsim SET on {community} failed: "
                                   f"{err or status.prettyPrint()}")
    finally:
        engine.close_dispatcher()
