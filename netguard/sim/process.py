"""Child processes for simulated agents: free loopback ports, readiness, stop by pid."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from types import TracebackType
from typing import Self


def free_udp_port(host: str = "127.0.0.1") -> int:
    """A UDP port on ``host`` that nothing is bound to right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def _ber_len(n: int) -> bytes:
    return bytes([n]) if n < 0x80 else bytes([0x81, n]) if n < 0x100 else bytes([0x82, n >> 8,
                                                                               n & 0xFF])


def _tlv(tag: int, body: bytes) -> bytes:
    return bytes([tag]) + _ber_len(len(body)) + body


def v2c_get_packet(community: str, request_id: int = 1) -> bytes:
    """A minimal SNMPv2c GET of sysUpTime.0, encoded by hand (no SNMP library needed)."""
    oid = bytes([0x2B, 6, 1, 2, 1, 1, 3, 0])  # 1.3.6.1.2.1.1.3.0
    varbind = _tlv(0x30, _tlv(0x06, oid) + b"\x05\x00")
    pdu = _tlv(0xA0, _tlv(0x02, request_id.to_bytes(2, "big")) + b"\x02\x01\x00\x02\x01\x00"
               + _tlv(0x30, varbind))
    return _tlv(0x30, b"\x02\x01\x01" + _tlv(0x04, community.encode()) + pdu)


def answers_snmp(host: str, port: int, community: str, timeout: float = 0.3) -> bool:
    """True when an SNMP agent on ``host:port`` answers a v2c GET with ``community``."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(timeout)
        try:
            sock.sendto(v2c_get_packet(community), (host, port))
            data, _ = sock.recvfrom(65535)
        except OSError:
            return False
    return data[:1] == b"\x30"


class ChildProcess:
    """A child server whose output goes to a log file; stopped by its own pid.

    Args:
        argv: The command line.
        log: Where stdout and stderr go.
        ready: A predicate that is true once the server serves.
        env: Extra environment variables.
    """

    def __init__(self, argv: Sequence[str], log: Path, ready: Callable[[], bool],
                 env: dict[str, str] | None = None) -> None:
        self.argv = list(argv)
        self.log = log
        self._ready = ready
        self._env = {**os.environ, **(env or {})}
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def running(self) -> bool:
        """True while the process lives."""
        return self.proc is not None and self.proc.poll() is None

    @property
    def pid(self) -> int | None:
        """The process id while running."""
        return self.proc.pid if self.proc is not None else None

    def start(self, timeout: float = 30.0) -> None:
        """Start and wait until ready.

        Raises:
            RuntimeError: It exited or did not become ready in time (log tail included).
        """
        with self.log.open("ab") as handle:
            # argv comes from our own code (snmpsim/snmpd paths), never from input.
            self.proc = subprocess.Popen(self.argv, stdout=handle, stderr=subprocess.STDOUT,  # noqa: S603
                                         env=self._env, start_new_session=True)
        deadline = time.monotonic() + timeout
        while not self._ready():
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.argv[0]} exited with {self.proc.returncode}:\n"
                                   f"{self.tail()}")
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"{self.argv[0]} not ready after {timeout:g} s:\n"
                                   f"{self.tail()}")
            time.sleep(0.05)

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM, then SIGKILL after ``timeout``; waits for the exit."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout)
        self.proc = None

    def kill(self) -> None:
        """SIGKILL at once (an agent dying without warning)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.proc = None

    def tail(self, lines: int = 30) -> str:
        """The last lines of the log."""
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "<no log>"


class AgentServer:
    """Base of the simulated-agent servers: a child process on ``127.0.0.1:port``.

    Subclasses implement :meth:`start`; a context manager starts on enter and stops on
    exit.
    """

    host = "127.0.0.1"

    def __init__(self, port: int | None) -> None:
        self.port = port or free_udp_port()
        self._process: ChildProcess | None = None

    @property
    def address(self) -> str:
        """``127.0.0.1:PORT``."""
        return f"{self.host}:{self.port}"

    @property
    def pid(self) -> int | None:
        """The server's process id while it runs."""
        return self._process.pid if self._process else None

    @property
    def running(self) -> bool:
        """True while the server process lives."""
        return self._process is not None and self._process.running

    def start(self, timeout: float = 60.0) -> Self:
        """Start and return once the agent answers."""
        raise NotImplementedError

    def stop(self) -> None:
        """Stop the server (SIGTERM, then SIGKILL)."""
        if self._process is not None:
            self._process.stop()
            self._process = None

    def kill(self) -> None:
        """Kill the server at once: its agents stop answering (a dead agent)."""
        if self._process is not None:
            self._process.kill()
            self._process = None

    def restart(self) -> None:
        """Stop and start again on the same port: a reboot (sysUpTime restarts)."""
        self.stop()
        self.start()

    def close(self) -> None:
        """Stop and release everything (what leaving the ``with`` block does)."""
        self.stop()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()
