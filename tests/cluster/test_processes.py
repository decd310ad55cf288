"""Three ``netguard run`` processes against one PostgreSQL and one snmpd (issue 11).

They split the targets (each exports, and so polls, only its own), one leads; after
SIGKILL of one, the survivors take its targets over and poll them; when it comes back,
about a third of the targets move back to it. Waits are conditions with deadlines.
"""

from __future__ import annotations

import asyncio
import re
import signal
import threading
import time
from collections.abc import Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest
import yaml

from netguard.cluster.rendezvous import assign
from netguard.config import settings_from_data
from netguard.sim import Snmpd
from netguard.store.db import upgrade
from tests.daemon.runproc import http_get, run_netguard
from tests.daemon.tcpproxy import TcpProxy
from tests.support.ports import free_tcp_port
from tests.support.procs import ServerProcess
from tests.support.wait import wait_until

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.requires_tool("snmpd"),
              pytest.mark.xdist_group("heavy")]  # CPU-heavy: one at a time (docs/testing.md)

T = TypeVar("T")
NAMES = ("ng-0", "ng-1", "ng-2")
TARGETS = [f"line-{i:03d}" for i in range(60)]
INTERVAL = 2.0
LEASE = 5.0
_LAST = re.compile(r'^netguard_target_last_success_timestamp_seconds\{target="([^"]+)"[^}]*\} '
                   r'(\S+)$', re.MULTILINE)


@pytest.fixture(scope="module")
def snmpd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Snmpd]:
    """One net-snmp agent every target polls."""
    with Snmpd(tmp_path_factory.mktemp("snmpd")) as agent:
        yield agent


class Instance:
    """One ``netguard run`` process and its metrics endpoint."""

    def __init__(self, tmp_path: Path, name: str, data: dict[str, Any],
                 store_url: str | None = None) -> None:
        self.name = name
        self.port = free_tcp_port()
        config = tmp_path / f"{name}.yaml"
        store = data["store"] if store_url is None else {"url": store_url}
        data = {**data, "store": store, "metrics": {"listen": f"127.0.0.1:{self.port}"},
                "cluster": {**data["cluster"], "instance_id": name},
                "daemon": {**data["daemon"], "fault_journal": str(tmp_path / f"{name}.j")}}
        config.write_text(yaml.safe_dump(data))
        self.proc: ServerProcess = run_netguard(tmp_path, config, self.port, name)
        self.runs = 0

    def start(self) -> Instance:
        self.runs += 1
        self.proc.start(timeout=60)
        return self

    def metrics(self) -> str:
        status, body = http_get(f"http://127.0.0.1:{self.port}/metrics")
        return body.decode() if status == 200 else ""

    def polled(self) -> dict[str, float]:
        """Target -> last successful poll (Unix time), for the targets it exports."""
        return {m.group(1): float(m.group(2)) for m in _LAST.finditer(self.metrics())
                if m.group(2) != "NaN"}

    def gauge(self, name: str) -> float | None:
        found = re.search(rf"^{name} (\S+)$", self.metrics(), re.MULTILINE)
        return float(found.group(1)) if found else None


def _data(pg_url: str, snmpd: Snmpd) -> dict[str, Any]:
    return {
        "targets": [snmpd.target(t, interval_seconds=INTERVAL, timeout_seconds=2.0, retries=0)
                    for t in TARGETS],
        "store": {"url": pg_url},
        "logging": {"level": "INFO", "format": "json"},
        "daemon": {"sweep_interval_seconds": 1.0, "shutdown_timeout_seconds": 5},
        "cluster": {"enabled": True, "heartbeat_seconds": 0.5, "lease_seconds": LEASE},
    }


def _split_as_expected(instances: list[Instance], since: float) -> bool:
    """Each live instance exports exactly its rendezvous share, polled after ``since``."""
    expected = assign(TARGETS, [i.name for i in instances])
    for instance in instances:
        polled = instance.polled()
        if sorted(polled) != sorted(expected[instance.name]):
            return False
        if any(at < since for at in polled.values()):
            return False
    return True


def test_three_processes_split_take_over_and_hand_back(tmp_path: Path, pg_url: str,
                                                       snmpd: Snmpd) -> None:
    data = _data(pg_url, snmpd)
    asyncio.run(upgrade(settings_from_data(data).store))
    instances = [Instance(tmp_path, name, data) for name in NAMES]
    try:
        for instance in instances:
            instance.start()
        started = time.time()
        wait_until(lambda: _split_as_expected(instances, started), timeout=90,
                   interval=0.5, what="three instances to split and poll the targets")
        shares = assign(TARGETS, NAMES)
        for name, owned in shares.items():
            assert 12 <= len(owned) <= 28, (name, len(owned))  # 60 over 3, the hash's spread
        leaders = [i.gauge("netguard_cluster_leader") for i in instances]
        assert sorted(leaders) == [0.0, 0.0, 1.0]
        assert {i.gauge("netguard_cluster_members") for i in instances} == {3.0}

        # SIGKILL one (the leader, the harder case): the survivors take over its targets
        # and the leadership, and poll them, within lease + an interval (+ slack).
        victim = instances[leaders.index(1.0)]
        victim.proc.stop(signal.SIGKILL)
        killed = time.time()
        survivors = [i for i in instances if i is not victim]
        wait_until(lambda: _split_as_expected(survivors, killed), timeout=60, interval=0.5,
                   what="the survivors to take over and poll the victim's targets")
        wait_until(lambda: sorted(i.gauge("netguard_cluster_leader") or 0.0
                                  for i in survivors) == [0.0, 1.0],
                   timeout=30, interval=0.5, what="a new leader")

        # It comes back under the same id: its share moves back to it.
        victim.start()
        back = time.time()
        wait_until(lambda: _split_as_expected(instances, back), timeout=90, interval=0.5,
                   what="the returning instance to get its targets back")
    finally:
        for instance in instances:
            instance.proc.stop()


class ThreadedProxy:
    """A :class:`TcpProxy` on its own event loop in a thread, for a synchronous test."""

    def __init__(self, host: str, port: int) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()
        self.proxy = self._run(TcpProxy(host, port).start())

    def _run(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout=30)

    def cut(self) -> None:
        """Drop every connection and refuse new ones."""
        self._run(self.proxy.cut())

    def restore(self) -> None:
        """Accept connections again."""
        self._run(self.proxy.restore())

    def close(self) -> None:
        self._run(self.proxy.close())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=30)
        self._loop.close()


def test_a_process_cut_off_from_the_database_stops_polling(tmp_path: Path, pg_url: str,
                                                          snmpd: Snmpd) -> None:
    data = _data(pg_url, snmpd)
    asyncio.run(upgrade(settings_from_data(data).store))
    host_port = pg_url.split("@", 1)[1].split("/", 1)[0]
    host, port = host_port.split(":")
    proxy = ThreadedProxy(host, int(port))
    via_proxy = pg_url.replace(host_port, f"127.0.0.1:{proxy.proxy.port}")
    cut = Instance(tmp_path, "ng-cut", data, store_url=via_proxy)
    ok = Instance(tmp_path, "ng-ok", data)
    try:
        cut.start()
        ok.start()
        started = time.time()
        wait_until(lambda: _split_as_expected([cut, ok], started), timeout=90,
                   interval=0.5, what="two instances to split and poll the targets")
        proxy.cut()
        cut_at = time.time()
        # Within a lease (plus slack) it polls and exports nothing, and does not lead;
        # the other polls everything.
        wait_until(lambda: cut.gauge("netguard_cluster_owned_targets") == 0.0
                   and not cut.polled() and cut.gauge("netguard_cluster_leader") == 0.0,
                   timeout=60, interval=0.5, what="the cut-off instance to stop polling")
        wait_until(lambda: _split_as_expected([ok], cut_at), timeout=60, interval=0.5,
                   what="the other instance to poll every target")
        proxy.restore()
        back = time.time()
        wait_until(lambda: _split_as_expected([cut, ok], back), timeout=90, interval=0.5,
                   what="the instance to rejoin once the database is back")
    finally:
        cut.proc.stop()
        ok.proc.stop()
        proxy.close()
