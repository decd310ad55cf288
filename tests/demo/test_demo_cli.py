"""`netguard demo` stops cleanly on a closed terminal and refuses bad arguments clearly."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from tests.demo.procs import descendants, kill_all, running
from tests.support.ports import free_tcp_port
from tests.support.wait import wait_until

NETGUARD = Path(sys.executable).parent / "netguard"


def _metrics(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=1) as resp:
            return resp.status == 200
    except OSError:
        return False


@pytest.mark.integration
def test_sighup_stops_the_demo_and_its_children(tmp_path: Path) -> None:
    port = free_tcp_port()
    log = tmp_path / "demo.out"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [str(NETGUARD), "demo", "--duration", "120", "--dir", str(tmp_path / "demo"),
             "--metrics-port", str(port)],
            stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    started: set[int] = set()
    try:
        def serving() -> bool:
            if proc.poll() is not None:
                raise AssertionError(log.read_text(errors="replace"))
            started.update(descendants(proc.pid))
            return _metrics(port)

        wait_until(serving, timeout=60, interval=0.2, what="the demo's /metrics")
        started.update(descendants(proc.pid))
        assert started
        proc.send_signal(signal.SIGHUP)
        assert proc.wait(30) == 0, log.read_text(errors="replace")
        assert not [p for p in started if running(p)]
        assert "demo stopped" in log.read_text(errors="replace")
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)
        kill_all(started)


def test_bad_mqtt_url_is_a_usage_error(tmp_path: Path) -> None:
    result = subprocess.run(
        [str(NETGUARD), "demo", "--duration", "5", "--dir", str(tmp_path / "d"),
         "--mqtt-url", "http://example.net"],
        capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 2
    assert "expected mqtt://" in result.stderr


def test_unusable_directory_is_a_clear_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    result = subprocess.run(
        [str(NETGUARD), "demo", "--duration", "5", "--dir", str(blocker / "demo")],
        capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 2
    assert "cannot use" in result.stderr
    assert "Traceback" not in result.stderr
