"""The systemd notify protocol, against a socket the test holds.

The last test runs a real ``netguard run`` with ``NOTIFY_SOCKET`` and ``WATCHDOG_USEC`` set,
as systemd would, and reads READY=1, WATCHDOG=1 and STOPPING=1 from the socket.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import yaml

from netguard.daemon.sdnotify import SystemdNotifier, watchdog_seconds
from tests.daemon.runproc import http_get
from tests.support.ports import free_tcp_port

NETGUARD = str(Path(sys.executable).parent / "netguard")


class NotifySocket:
    """The receiving end systemd would hold: a bound AF_UNIX datagram socket."""

    def __init__(self, address: str) -> None:
        self.address = address  # as NOTIFY_SOCKET spells it
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind("\0" + address[1:] if address.startswith("@") else address)
        self.messages: list[dict[str, str]] = []

    def receive_until(self, done: Callable[[list[dict[str, str]]], bool], *,
                      timeout: float, what: str) -> list[dict[str, str]]:
        """Collect messages until ``done(messages)``; fail after ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while not done(self.messages):
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"timed out waiting for {what}; got {self.messages}")
            self.sock.settimeout(left)
            try:
                data = self.sock.recv(4096)
            except TimeoutError:
                continue
            self.messages.append(dict(line.split("=", 1)
                                      for line in data.decode().splitlines()))
        return self.messages

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def abstract_socket() -> Iterator[NotifySocket]:
    sock = NotifySocket(f"@netguard-test-{uuid.uuid4().hex}")
    yield sock
    sock.close()


@pytest.fixture
def path_socket() -> Iterator[NotifySocket]:
    # AF_UNIX paths are limited to 108 bytes; pytest's tmp_path can be longer.
    with tempfile.TemporaryDirectory(prefix="ng-") as directory:
        sock = NotifySocket(os.path.join(directory, "notify"))
        yield sock
        sock.close()


def count(key: str) -> Callable[[list[dict[str, str]]], int]:
    return lambda messages: sum(1 for m in messages if key in m)


# --------------------------------------------------------------------------- the client


def test_watchdog_seconds_from_the_environment() -> None:
    assert watchdog_seconds({"WATCHDOG_USEC": "30000000"}, 42) == 30.0
    assert watchdog_seconds({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "42"}, 42) == 30.0
    # Meant for another process (we inherited it): no pings from us.
    assert watchdog_seconds({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "7"}, 42) is None
    for bad in ({}, {"WATCHDOG_USEC": ""}, {"WATCHDOG_USEC": "0"},
                {"WATCHDOG_USEC": "-5"}, {"WATCHDOG_USEC": "soon"}):
        assert watchdog_seconds(bad, 42) is None, bad


@pytest.mark.parametrize("which", ["abstract_socket", "path_socket"])
def test_messages_reach_the_socket(request: pytest.FixtureRequest, which: str) -> None:
    receiver: NotifySocket = request.getfixturevalue(which)
    notifier = SystemdNotifier.from_env({"NOTIFY_SOCKET": receiver.address})
    assert notifier.enabled
    assert notifier.ready("serving: 3 targets\nand more")
    assert notifier.status("x" * 500)
    assert notifier.stopping()
    notifier.close()
    messages = receiver.receive_until(lambda m: len(m) == 3, timeout=10,
                                      what="three messages")
    assert messages[0] == {"READY": "1", "STATUS": "serving: 3 targets and more"}
    assert len(messages[1]["STATUS"]) == 200
    assert messages[2] == {"STOPPING": "1", "STATUS": "shutting down"}


def test_without_notify_socket_nothing_is_sent() -> None:
    notifier = SystemdNotifier.from_env({"WATCHDOG_USEC": "1000000"})
    assert not notifier.enabled
    assert notifier.watchdog is None
    assert not notifier.ready("serving")
    assert notifier.sent == 0


def test_an_unreachable_socket_is_logged_once_and_never_raises(
        caplog: pytest.LogCaptureFixture, tmp_path: Path) -> None:
    caplog.set_level(logging.WARNING, logger="netguard.daemon.sdnotify")
    notifier = SystemdNotifier("/nonexistent/netguard/notify")
    assert not notifier.ready("serving")
    assert not notifier.notify("WATCHDOG=1")
    notifier.close()
    warnings = [r for r in caplog.records if r.getMessage() == "cannot notify systemd"]
    assert len(warnings) == 1
    assert notifier.sent == 0


async def test_watchdog_pings_come_from_the_event_loop(abstract_socket: NotifySocket
                                                       ) -> None:
    notifier = SystemdNotifier(abstract_socket.address, watchdog=0.2)
    assert notifier.sent == 0  # nothing before the context is entered
    async with notifier:
        # The pings are a task on this loop (every 0.1 s), so the loop must stay free
        # while the socket is read: read it from a thread.
        await asyncio.to_thread(abstract_socket.receive_until,
                                lambda m: count("WATCHDOG")(m) >= 3, timeout=30,
                                what="three WATCHDOG=1 pings")
    assert all(m == {"WATCHDOG": "1"} for m in abstract_socket.messages)
    assert notifier.sent >= 3


# --------------------------------------------------------------------------- netguard run


def test_netguard_run_notifies_ready_watchdog_and_stopping(
        tmp_path: Path, abstract_socket: NotifySocket) -> None:
    port = free_tcp_port()
    config = tmp_path / "netguard.yaml"
    config.write_text(yaml.safe_dump({
        "store": {"path": str(tmp_path / "netguard.db"), "auto_upgrade": True},
        "metrics": {"listen": f"127.0.0.1:{port}"},
        "logging": {"format": "json"},
    }))
    log = tmp_path / "stderr.log"
    env = {k: v for k, v in os.environ.items() if k not in ("NETGUARD_CONFIG", "WATCHDOG_PID")}
    env.update(NOTIFY_SOCKET=abstract_socket.address, WATCHDOG_USEC="500000")
    with log.open("wb") as err:
        st = os.fstat(err.fileno())
        env["JOURNAL_STREAM"] = f"{st.st_dev}:{st.st_ino}"  # as systemd sets it
        proc = subprocess.Popen([NETGUARD, "run", "--config", str(config)], env=env,
                                stdout=subprocess.DEVNULL, stderr=err, cwd=tmp_path,
                                start_new_session=True)
    try:
        messages = abstract_socket.receive_until(
            count("READY"), timeout=60, what="READY=1")
        # READY means serving: the endpoint answers at once, no waiting.
        assert http_get(f"http://127.0.0.1:{port}/healthz")[0] == 200
        ready = next(m for m in messages if "READY" in m)
        assert ready["STATUS"].startswith("serving: 0 targets, metrics http://127.0.0.1:")
        assert messages[0] == {"STATUS": "starting: opening the store and services"}
        abstract_socket.receive_until(lambda m: count("WATCHDOG")(m) >= 2, timeout=30,
                                      what="two WATCHDOG=1 pings")
        proc.send_signal(signal.SIGTERM)
        abstract_socket.receive_until(count("STOPPING"), timeout=30, what="STOPPING=1")
        assert proc.wait(timeout=30) == 0, log.read_text()
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
    abstract_socket.receive_until(lambda m: m[-1] == {"STATUS": "stopped"}, timeout=10,
                                  what="the final status")
    kinds = [next(iter(m)) for m in abstract_socket.messages if "WATCHDOG" not in m]
    assert kinds == ["STATUS", "READY", "STOPPING", "STATUS"]

    # The log went to "the journal": every line carries its priority, and start-up logged
    # which config it used and none of Alembic's per-connection chatter.
    lines = log.read_text().splitlines()
    assert lines, "netguard logged nothing"
    assert all(line.startswith(("<6>", "<4>", "<3>", "<7>")) for line in lines), lines
    records = [json.loads(line[3:]) for line in lines]
    loaded = [r for r in records if r["msg"] == "configuration loaded"]
    assert loaded
    assert loaded[0]["config"] == str(config)
    assert loaded[0]["found_by"] == "--config"
    assert not [r for r in records if r["logger"].startswith("alembic")
                and not r["msg"].startswith("Running upgrade")], records
    assert any(r["msg"] == "netguard started" for r in records)
