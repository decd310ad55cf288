"""The demo's simulated SNMP agents, built on :mod:`netguard.sim`.

Every fleet target becomes a :func:`netguard.sim.build_agent` agent with the vendor preset
matching its probe profile. Agents that a scripted step takes down get an snmpsim process
of their own (killing a process is how an agent dies); the rest share one. Scripted
steps turn into the simulator's scenarios and knobs: moving counters keep moving on
their own.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from types import TracebackType

from netguard.demo.config import AgentAddress
from netguard.demo.fleet import FleetTarget
from netguard.demo.timeline import Step
from netguard.errors import DemoError
from netguard.sim import VENDORS, SimAgent, SnmpSim, answers_snmp, build_agent

log = logging.getLogger(__name__)

# The simulator's vendor preset for each (kind, fleet vendor); else the kind's first.
SIM_VENDORS: Mapping[tuple[str, str], str] = {
    ("fiber", "huawei"): "huawei",
    ("fiber", "cisco"): "standard",
    ("wireless", "ubiquiti"): "ubiquiti",
    ("wireless", "cambium"): "cambium",
    ("pon", "huawei"): "huawei",
}
RX_LOW_DBM = -28.5
WARM_UP_SECONDS = 30.0


def sim_vendor(target: FleetTarget) -> str:
    """The :data:`netguard.sim.VENDORS` preset that simulates ``target``."""
    presets = VENDORS[target.kind]
    return SIM_VENDORS.get((target.kind, target.vendor), next(iter(presets)))


def _agent(target: FleetTarget) -> SimAgent:
    # One optic per fiber: the rx knob sets every optic, and one fault per step reads best.
    interfaces = 1 if target.kind == "fiber" else 2
    return build_agent(target.id, target.kind, vendor=sim_vendor(target),
                       interfaces=interfaces)


def profile_of(target: FleetTarget) -> str:
    """The probe profile matching ``target``'s simulated data."""
    return VENDORS[target.kind][sim_vendor(target)]


class SimulatedAgents:
    """snmpsim processes for the fleet, as an async context manager; applies SNMP steps.

    Args:
        fleet: The targets to simulate.
        directory: Where each simulator keeps its data, cache and log.
        isolate: Targets that get a process of their own, so a step can kill them alone.
    """

    def __init__(self, fleet: Sequence[FleetTarget], directory: Path, *,
                 isolate: Iterable[str] = ()) -> None:
        self._fleet = {t.id: t for t in fleet}
        alone = [t for t in fleet if t.id in set(isolate)]
        shared = [t for t in fleet if t.id not in set(isolate)]
        groups = [[t] for t in alone] + ([shared] if shared else [])
        self._sims: list[SnmpSim] = []
        self._sim_of: dict[str, SnmpSim] = {}
        for i, group in enumerate(groups):
            sim = SnmpSim([_agent(t) for t in group], directory / f"sim{i}")
            self._sims.append(sim)
            self._sim_of.update({t.id: sim for t in group})
        self._running: list[SnmpSim] = []

    @property
    def pids(self) -> list[int]:
        """Process ids of the running simulators."""
        return [sim.pid for sim in self._sims if sim.pid is not None]

    @property
    def addresses(self) -> dict[str, AgentAddress]:
        """Where each target's agent answers (community = target id)."""
        return {tid: AgentAddress(self._sim_of[tid].address, tid) for tid in self._fleet}

    @property
    def profiles(self) -> dict[str, str]:
        """The probe profile matching each target's simulated data."""
        return {tid: profile_of(t) for tid, t in self._fleet.items()}

    async def __aenter__(self) -> SimulatedAgents:
        try:
            for sim in self._sims:
                await asyncio.to_thread(sim.start)
                self._running.append(sim)
            await asyncio.to_thread(self._warm_up)
        except BaseException as exc:
            await self._stop()
            if isinstance(exc, RuntimeError | OSError):
                raise DemoError(f"the simulated SNMP agents did not start: {exc}") from exc
            raise
        log.info("simulated agents answering", extra={"pids": self.pids})
        return self

    def _warm_up(self) -> None:
        # snmpsim indexes a data file on its first request, which would otherwise make
        # netguard's first polls time out.
        for tid, sim in self._sim_of.items():
            for _ in range(int(WARM_UP_SECONDS / 0.3)):
                if answers_snmp(sim.host, sim.port, tid):
                    break
            else:
                raise DemoError(f"simulated agent {tid} did not answer on {sim.address}")

    async def _stop(self) -> None:
        running, self._running = self._running, []
        for sim in running:
            await asyncio.to_thread(sim.__exit__, None, None, None)

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        await self._stop()

    async def apply(self, step: Step) -> None:
        """Apply a scripted SNMP step to its subject.

        Raises:
            KeyError: The step is not an SNMP action or names no simulated target.
            DemoError: ``agent_down`` for an agent that shares its process.
        """
        sim = self._sim_of[step.subject]
        agent = step.subject
        action = step.action
        if action == "rx_power_low":
            await sim.aset_knob(agent, "rx_dbm", RX_LOW_DBM)
        elif action in ("on_battery", "onus_lost", "radio_degraded"):
            await asyncio.to_thread(sim.apply_scenario, agent, "degraded")
        elif action in ("rx_power_normal", "on_mains", "onus_restored", "radio_normal"):
            await asyncio.to_thread(sim.apply_scenario, agent, "normal")
        elif action in ("agent_down", "agent_up"):
            if len(sim.agents) > 1:
                raise DemoError(f"{agent} shares its simulator; isolate it to take it down")
            await asyncio.to_thread(sim.kill if action == "agent_down" else sim.start)
        else:
            raise KeyError(action)
