"""`netguard demo --mqtt-url` uses a real broker (Mosquitto) instead of the embedded one."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.demo.procs import descendants, kill_all, running
from tests.support.ports import free_tcp_port
from tests.support.servers import Broker
from tests.support.wait import wait_until

pytestmark = [pytest.mark.integration, pytest.mark.slow,
              pytest.mark.xdist_group("heavy")]  # CPU-heavy: one at a time (docs/testing.md)

NETGUARD = Path(sys.executable).parent / "netguard"


def test_demo_against_mosquitto(broker: Broker, tmp_path: Path) -> None:
    directory = tmp_path / "demo"
    sink = directory / "alerts.jsonl"
    log = tmp_path / "demo.out"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [str(NETGUARD), "demo", "--duration", "60", "--dir", str(directory),
             "--metrics-port", str(free_tcp_port()),
             "--mqtt-url", f"mqtt://{broker.host}:{broker.port}"],
            stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    started: set[int] = set()
    try:
        def door_alert() -> bool:
            if proc.poll() is not None:
                raise AssertionError(log.read_text(errors="replace"))
            started.update(descendants(proc.pid))
            return sink.exists() and "door-riverside-02" in sink.read_text()

        wait_until(door_alert, timeout=45, interval=0.5, what="the door-open alert")
        config = (directory / "netguard.yaml").read_text()
        assert f"port: {broker.port}" in config
        assert "protocol: '5'" in config  # a real broker gets MQTT 5
        proc.send_signal(signal.SIGINT)
        assert proc.wait(30) == 0, log.read_text(errors="replace")
        assert started
        assert not [p for p in started if running(p)]
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)
        kill_all(started)
    alerts = [json.loads(line)["body"] for line in sink.read_text().splitlines()]
    assert any("door_open" in json.dumps(a) for a in alerts)
    assert "embedded" not in log.read_text(errors="replace")
