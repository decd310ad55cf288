"""The demo's simulated SNMP agents: one snmpsim process serving every fleet target.

Each target gets a ``.snmprec`` data file (its community is the target id) with moving
counters (snmpsim's ``numeric`` variation: octets and sysUpTime grow with time) and
vendor-flavoured readings. A scripted step rewrites the file; snmpsim notices the new
modification time and re-indexes it on the next request, while the counters, which are
computed from the simulator's start time, carry on without a jump. An agent "goes down"
by its data file being moved away, so it stops answering and polls time out, as they
would for a dead device or behind a dead uplink.

Record building is pure (:func:`agent_records`); :class:`SimulatedAgents` owns the
process and stops it by pid.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
import shutil
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from netguard.demo.config import AgentAddress
from netguard.demo.fleet import FleetTarget
from netguard.demo.timeline import Step
from netguard.errors import DemoError

log = logging.getLogger(__name__)

# Probe profile per (kind, vendor); everything else takes the kind's default profile.
PROFILES: Mapping[tuple[str, str], str] = {
    ("fiber", "huawei"): "fiber-huawei",
    ("fiber", "cisco"): "fiber-standard",
    ("wireless", "ubiquiti"): "wireless-ubiquiti",
    ("wireless", "cambium"): "wireless-cambium",
    ("private_line", "cisco"): "private-line",
    ("private_line", "juniper"): "private-line",
    ("private_line", "generic"): "private-line",
    ("cabin_5g", "generic"): "cabin-ups",
    ("pon", "huawei"): "pon-huawei",
}

SYS_DESCR: Mapping[str, str] = {
    "cisco": "Cisco IOS XR Software (NCS-540), Version 7.9.2",
    "huawei": "Huawei Versatile Routing Platform Software, VRP (R) software, Version 8.210",
    "ubiquiti": "Linux 4.14.0 #1 Ubiquiti airOS XC.ar934x.v8.7.11",
    "cambium": "Cambium Networks ePMP 3000 4.7.1",
    "juniper": "Juniper Networks, Inc. mx204 internet router, kernel JUNOS 22.4R2",
    "generic": "Linux cabin-controller 6.1.0-18-amd64 x86_64",
}

PON_PORTS = (4194312192, 4194312448)  # Huawei ponIfIndex of GPON 0/1/0 and 0/1/1
ONUS_PER_PORT = 8
HUAWEI_OPTIC = 16850954
NO_READING = 2147483647


@dataclass(frozen=True, slots=True)
class AgentCondition:
    """What a simulated agent currently reports."""

    rx_low: bool = False
    on_battery: bool = False
    onus_lost: bool = False
    radio_degraded: bool = False
    down: bool = False


# Which condition flag each scripted SNMP action sets (True) or clears (False).
ACTION_FLAGS: Mapping[str, tuple[str, bool]] = {
    "rx_power_low": ("rx_low", True), "rx_power_normal": ("rx_low", False),
    "on_battery": ("on_battery", True), "on_mains": ("on_battery", False),
    "onus_lost": ("onus_lost", True), "onus_restored": ("onus_lost", False),
    "radio_degraded": ("radio_degraded", True), "radio_normal": ("radio_degraded", False),
    "agent_down": ("down", True), "agent_up": ("down", False),
}


def _oid_key(oid: str) -> tuple[int, ...]:
    return tuple(int(part) for part in oid.split("."))


def _interfaces(target: FleetTarget, seed: int) -> list[tuple[int, str, int]]:
    """(ifIndex, name, speed in bit/s) of a target's interfaces."""
    if target.kind == "pon":
        return [(1, "XGigabitEthernet0/9/0", 10_000_000_000),
                (PON_PORTS[0], "GPON 0/1/0", 2_500_000_000),
                (PON_PORTS[1], "GPON 0/1/1", 2_500_000_000)]
    names = {
        "fiber": ("GigabitEthernet0/0/1", "GigabitEthernet0/0/2"),
        "wireless": ("ath0", "eth0"),
        "private_line": ("Serial0/1/0", "GigabitEthernet0/0/0"),
        "cabin_5g": ("eth0", "eth1"),
    }[target.kind]
    speed = 100_000_000 if target.kind in ("wireless", "private_line") else 1_000_000_000
    del seed
    return [(1, names[0], speed), (2, names[1], speed)]


def agent_records(  # noqa: PLR0915 -- one flat table of simulated OIDs reads best
        target: FleetTarget, condition: AgentCondition, seed: int) -> list[str]:
    """The ``.snmprec`` lines (sorted by OID) of one simulated agent.

    Args:
        target: The fleet entry.
        condition: What the agent reports now.
        seed: Varies uptimes and rates between agents.
    """
    recs: dict[str, str] = {}

    def put(oid: str, tag: str, value: object) -> None:
        recs[oid] = f"{oid}|{tag}|{value}"

    put("1.3.6.1.2.1.1.1.0", "4", SYS_DESCR.get(target.vendor, SYS_DESCR["generic"]))
    put("1.3.6.1.2.1.1.3.0", "67:numeric", f"rate=100,initial={(seed + 1) * 8_640_000}")
    put("1.3.6.1.2.1.1.5.0", "4", target.id)
    put("1.3.6.1.6.3.10.2.1.2.0", "2", 1 + seed % 3)
    for index, name, speed in _interfaces(target, seed):
        # A few hundred kbit/s to a few Mbit/s per interface: visibly moving, never near
        # the utilisation threshold.
        rate = 40_000 + 9_000 * ((seed * 7 + index) % 37)
        put(f"1.3.6.1.2.1.2.2.1.2.{index}", "4", name)
        put(f"1.3.6.1.2.1.2.2.1.5.{index}", "66", min(speed, 4_294_967_295))
        put(f"1.3.6.1.2.1.2.2.1.7.{index}", "2", 1)
        put(f"1.3.6.1.2.1.2.2.1.8.{index}", "2", 1)
        put(f"1.3.6.1.2.1.2.2.1.10.{index}", "65:numeric", f"rate={rate},wrap=1")
        put(f"1.3.6.1.2.1.2.2.1.13.{index}", "65", 0)
        put(f"1.3.6.1.2.1.2.2.1.14.{index}", "65", 0)
        put(f"1.3.6.1.2.1.2.2.1.16.{index}", "65:numeric", f"rate={rate // 3},wrap=1")
        put(f"1.3.6.1.2.1.2.2.1.19.{index}", "65", 0)
        put(f"1.3.6.1.2.1.2.2.1.20.{index}", "65", 0)
        put(f"1.3.6.1.2.1.31.1.1.1.1.{index}", "4", name)
        put(f"1.3.6.1.2.1.31.1.1.1.6.{index}", "70:numeric",
            f"rate={rate},initial={seed * 10**9}")
        put(f"1.3.6.1.2.1.31.1.1.1.10.{index}", "70:numeric",
            f"rate={rate // 3},initial={seed * 10**8}")
        put(f"1.3.6.1.2.1.31.1.1.1.15.{index}", "66", speed // 1_000_000)
        put(f"1.3.6.1.2.1.31.1.1.1.18.{index}", "4", target.label if index == 1 else "")
        put(f"1.3.6.1.2.1.31.1.1.1.19.{index}", "67", 0)
    profile = PROFILES.get((target.kind, target.vendor), "")
    if profile == "fiber-huawei":
        put(f"1.3.6.1.2.1.47.1.1.1.1.7.{HUAWEI_OPTIC}", "4", "GigabitEthernet0/0/1")
        put(f"1.3.6.1.4.1.2011.5.25.31.1.1.3.1.8.{HUAWEI_OPTIC}", "2",
            -2850 if condition.rx_low else -512 - seed * 17)
        put(f"1.3.6.1.4.1.2011.5.25.31.1.1.3.1.9.{HUAWEI_OPTIC}", "2", -215)
    elif profile == "fiber-standard":
        for index, what, value in ((1001, "Receive", -28.5 if condition.rx_low else -4.8),
                                   (1002, "Transmit", -2.1)):
            put(f"1.3.6.1.2.1.47.1.1.1.1.7.{index}", "4", f"Te0/0/0/1 {what} Power Sensor")
            put(f"1.3.6.1.2.1.99.1.1.1.1.{index}", "2", 14)  # dBm
            put(f"1.3.6.1.2.1.99.1.1.1.2.{index}", "2", 9)  # units
            put(f"1.3.6.1.2.1.99.1.1.1.3.{index}", "2", 1)  # one decimal
            put(f"1.3.6.1.2.1.99.1.1.1.4.{index}", "2", round(value * 10))
    elif profile == "wireless-ubiquiti":
        put("1.3.6.1.4.1.41112.1.4.5.1.5.1", "2", -82 if condition.radio_degraded else -57)
        put("1.3.6.1.4.1.41112.1.4.5.1.8.1", "2", -94)
    elif profile == "wireless-cambium":
        put("1.3.6.1.4.1.17713.21.1.2.3.0", "2", -83 if condition.radio_degraded else -54)
        put("1.3.6.1.4.1.17713.21.1.2.18.0", "2", 9 if condition.radio_degraded else 33)
    elif profile == "private-line":
        put("1.3.6.1.2.1.10.18.6.1.10.1", "2", 1)  # dsx1NoAlarm
    elif profile == "cabin-ups":
        on_battery = condition.on_battery
        put("1.3.6.1.2.1.33.1.2.1.0", "2", 2)  # batteryNormal
        put("1.3.6.1.2.1.33.1.2.2.0", "2:numeric" if on_battery else "2",
            "rate=1" if on_battery else 0)
        put("1.3.6.1.2.1.33.1.2.3.0", "2", 55 if on_battery else 240)
        put("1.3.6.1.2.1.33.1.2.4.0", "2", 88 if on_battery else 100)
        put("1.3.6.1.2.1.33.1.2.7.0", "2", 31)
        put("1.3.6.1.2.1.33.1.3.3.1.3.1", "2", 0 if on_battery else 229)
        put("1.3.6.1.2.1.33.1.4.1.0", "2", 5 if on_battery else 3)  # battery / normal
        put("1.3.6.1.2.1.33.1.6.1.0", "66", 1 if on_battery else 0)
    elif profile == "pon-huawei":
        for p, port in enumerate(PON_PORTS):
            for ont in range(ONUS_PER_PORT):
                lost = condition.onus_lost and p == 0 and ont < 5
                put(f"1.3.6.1.4.1.2011.6.128.1.1.2.46.1.15.{port}.{ont}", "2", 2 if lost else 1)
                put(f"1.3.6.1.4.1.2011.6.128.1.1.2.51.1.4.{port}.{ont}", "2",
                    NO_READING if lost else -1830 - 41 * ((ont + seed) % 9))
    return [recs[oid] for oid in sorted(recs, key=_oid_key)]


def _snmpsim_command() -> str:
    """The snmpsim responder next to this interpreter, else on PATH."""
    here = Path(sys.executable).parent / "snmpsim-command-responder"
    if here.exists():
        return str(here)
    found = shutil.which("snmpsim-command-responder")
    if found is None:
        raise DemoError("the demo needs snmpsim: pip install 'netguard[demo]'")
    return found


class SimulatedAgents:
    """Runs snmpsim for the fleet, as an async context manager, and applies SNMP steps.

    Args:
        fleet: The targets to simulate.
        directory: Where data, index cache and the simulator's log go.
        host: Loopback address to answer on.
        port: UDP port; ``None`` picks a free one.
    """

    def __init__(self, fleet: Sequence[FleetTarget], directory: Path, *,
                 host: str = "127.0.0.1", port: int | None = None) -> None:
        self._fleet = {t.id: t for t in fleet}
        self._seeds = {t.id: i for i, t in enumerate(fleet)}
        self._conditions = {t.id: AgentCondition() for t in fleet}
        self.directory = directory
        self.data_dir = directory / "data"
        self.host = host
        self.port = port if port is not None else _free_udp_port(host)
        self._proc: asyncio.subprocess.Process | None = None
        self._mtime = int(time.time())

    @property
    def pids(self) -> list[int]:
        """Process ids of the running simulators."""
        return [self._proc.pid] if self._proc is not None and self._proc.returncode is None \
            else []

    @property
    def addresses(self) -> dict[str, AgentAddress]:
        """Where each target's agent answers."""
        return {tid: AgentAddress(f"{self.host}:{self.port}", tid) for tid in self._fleet}

    @property
    def profiles(self) -> dict[str, str]:
        """The probe profile matching each target's simulated data."""
        return {tid: PROFILES[(t.kind, t.vendor)] for tid, t in self._fleet.items()
                if (t.kind, t.vendor) in PROFILES}

    def condition(self, target_id: str) -> AgentCondition:
        """What a target's agent currently reports."""
        return self._conditions[target_id]

    def _data_file(self, target_id: str) -> Path:
        return self.data_dir / f"{target_id}.snmprec"

    def _write(self, target_id: str) -> None:
        path = self._data_file(target_id)
        parked = path.with_suffix(".down")
        condition = self._conditions[target_id]
        if condition.down:
            if path.exists():
                os.replace(path, parked)
            return
        lines = agent_records(self._fleet[target_id], condition, self._seeds[target_id])
        tmp = path.with_suffix(".tmp")
        tmp.write_text("\n".join(lines) + "\n", encoding="utf-8")
        # snmpsim notices changes by whole-second mtime; make every rewrite a new second.
        self._mtime = max(self._mtime + 1, int(time.time()))
        os.utime(tmp, (self._mtime, self._mtime))
        os.replace(tmp, path)
        parked.unlink(missing_ok=True)

    def set_condition(self, target_id: str, **changes: bool) -> None:
        """Change what an agent reports (takes effect on its next request)."""
        self._conditions[target_id] = dataclasses.replace(self._conditions[target_id],
                                                          **changes)
        self._write(target_id)

    async def apply(self, step: Step) -> None:
        """Apply a scripted SNMP step to its subject.

        Raises:
            KeyError: The step is not an SNMP action or names no simulated target.
        """
        flag, value = ACTION_FLAGS[step.action]
        if step.subject not in self._fleet:
            raise KeyError(step.subject)
        self.set_condition(step.subject, **{flag: value})

    async def __aenter__(self) -> SimulatedAgents:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        for stale in self.data_dir.iterdir():
            stale.unlink()
        for target_id in self._fleet:
            self._write(target_id)
        cache = self.directory / "cache"
        cache.mkdir(exist_ok=True)
        log_file = (self.directory / "snmpsim.log").open("ab")
        try:
            self._proc = await asyncio.create_subprocess_exec(
                _snmpsim_command(), f"--data-dir={self.data_dir}", f"--cache-dir={cache}",
                f"--agent-udpv4-endpoint={self.host}:{self.port}",
                stdout=log_file, stderr=asyncio.subprocess.STDOUT,
                # snmpsim refuses to run as root without this (containers, CI).
                env={**os.environ, "SNMPSIM_ALLOW_ROOT": "true"},
                # Its own session: a terminal's Ctrl-C reaches only the demo, which then
                # stops the simulator in order.
                start_new_session=True)
        finally:
            log_file.close()
        try:
            await self._wait_ready(within=30.0)
        except BaseException:
            await self._stop()
            raise
        log.info("simulated agents answering on udp %s:%d (pid %d)", self.host, self.port,
                 self._proc.pid)
        return self

    async def _wait_ready(self, within: float) -> None:
        # Ask every agent once: snmpsim indexes a data file on its first request, which
        # would otherwise make netguard's first polls time out.
        waiting = list(self._fleet)
        deadline = time.monotonic() + within
        while waiting:
            assert self._proc is not None
            if self._proc.returncode is not None:
                raise DemoError(f"snmpsim exited with {self._proc.returncode}; see "
                                f"{self.directory / 'snmpsim.log'}")
            if time.monotonic() > deadline:
                raise DemoError(f"snmpsim did not answer within {within:.0f}s; see "
                                f"{self.directory / 'snmpsim.log'}")
            if await _answers(self.host, self.port, waiting[0]):
                waiting.pop(0)
            else:
                await asyncio.sleep(0.2)

    async def _stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None or proc.returncode is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            proc.terminate()
        try:
            await asyncio.wait_for(proc.wait(), 5.0)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        await self._stop()


def _free_udp_port(host: str) -> int:
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


# A minimal SNMPv2c GET of sysUpTime.0, so readiness needs no SNMP engine.
def _get_request(community: str) -> bytes:
    def tlv(tag: int, body: bytes) -> bytes:
        if len(body) < 128:
            return bytes([tag, len(body)]) + body
        size = len(body).to_bytes((len(body).bit_length() + 7) // 8, "big")
        return bytes([tag, 0x80 | len(size)]) + size + body

    oid = bytes([0x2B, 6, 1, 2, 1, 1, 3, 0])  # 1.3.6.1.2.1.1.3.0
    varbind = tlv(0x30, tlv(0x06, oid) + b"\x05\x00")
    pdu = tlv(0xA0, tlv(0x02, b"\x01") + tlv(0x02, b"\x00") + tlv(0x02, b"\x00")
              + tlv(0x30, varbind))
    return tlv(0x30, tlv(0x02, b"\x01") + tlv(0x04, community.encode()) + pdu)


async def _answers(host: str, port: int, community: str) -> bool:
    loop = asyncio.get_running_loop()
    got: asyncio.Future[bytes] = loop.create_future()

    class _Protocol(asyncio.DatagramProtocol):
        def datagram_received(self, data: bytes, addr: tuple[str | object, int]) -> None:
            if not got.done():
                got.set_result(data)

    transport, _ = await loop.create_datagram_endpoint(_Protocol, remote_addr=(host, port))
    try:
        transport.sendto(_get_request(community))
        try:
            await asyncio.wait_for(got, 0.5)
        except TimeoutError:
            return False
        return True
    finally:
        transport.close()
