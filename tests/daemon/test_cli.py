"""``netguard run`` exit codes, and scoped signal handling."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import subprocess
import sys
from pathlib import Path
from types import FrameType

import pytest
import yaml

from netguard.daemon.signals import stop_on_signals
from tests.support.ports import free_tcp_port
from tests.support.wait import async_wait_until

NETGUARD = str(Path(sys.executable).parent / "netguard")


def _run(tmp_path: Path, config: dict[str, object]) -> subprocess.CompletedProcess[str]:
    path = tmp_path / "netguard.yaml"
    path.write_text(yaml.safe_dump(config))
    return subprocess.run([NETGUARD, "run", "--config", str(path)], capture_output=True,
                          text=True, timeout=60, check=False, cwd=tmp_path)


def test_outdated_schema_exits_5_with_advice(tmp_path: Path) -> None:
    result = _run(tmp_path, {"store": {"path": str(tmp_path / "empty.db")},
                             "metrics": {"listen": f"127.0.0.1:{free_tcp_port()}"}})
    assert result.returncode == 5, result.stderr
    assert "netguard db upgrade" in result.stderr


def test_bad_config_exits_2_naming_the_option(tmp_path: Path) -> None:
    result = _run(tmp_path, {"daemon": {"shutdown_timeout_seconds": -1}})
    assert result.returncode == 2
    assert "daemon.shutdown_timeout_seconds" in result.stderr


def test_an_unknown_part_exits_2_naming_the_choices(tmp_path: Path) -> None:
    path = tmp_path / "netguard.yaml"
    path.write_text(yaml.safe_dump({"store": {"path": str(tmp_path / "netguard.db")}}))
    result = subprocess.run([NETGUARD, "run", "--only", "probes", "--config", str(path)],
                            capture_output=True, text=True, timeout=60, check=False,
                            cwd=tmp_path)
    assert result.returncode == 2
    assert "'probes' is not one of 'intake'" in result.stderr


def _stop_records(caplog: pytest.LogCaptureFixture, message: str) -> list[logging.LogRecord]:
    return [r for r in caplog.records
            if r.name == "netguard.daemon.signals" and r.getMessage() == message]


async def test_signals_set_stop_and_previous_handlers_come_back(
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="netguard.daemon.signals")
    calls: list[int] = []

    def previous(signum: int, _frame: FrameType | None) -> None:
        calls.append(signum)

    old = signal.signal(signal.SIGTERM, previous)
    try:
        stop = asyncio.Event()
        with stop_on_signals(stop):
            os.kill(os.getpid(), signal.SIGTERM)
            await asyncio.wait_for(stop.wait(), 5)
            os.kill(os.getpid(), signal.SIGTERM)  # a second one while stopping: ignored

            async def second_handled() -> bool:
                return bool(_stop_records(caplog, "already stopping"))

            await async_wait_until(second_handled, timeout=5,
                                   what="the second SIGTERM logged as already stopping")
        assert signal.getsignal(signal.SIGTERM) is previous
        assert calls == []
        assert len(_stop_records(caplog, "stop requested")) == 1
        assert [getattr(r, "signal", None)
                for r in _stop_records(caplog, "already stopping")] == ["SIGTERM"]
    finally:
        signal.signal(signal.SIGTERM, old)
