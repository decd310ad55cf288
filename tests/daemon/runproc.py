"""Helpers for tests that run ``netguard run`` as a subprocess and read its endpoints."""

from __future__ import annotations

import json
import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from tests.support.procs import ServerProcess

NETGUARD = [str(Path(sys.executable).parent / "netguard")]


def http_get(url: str, timeout: float = 5.0) -> tuple[int, bytes]:
    """(status, body); status 0 when nothing answers."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()
    except OSError:
        return 0, b""


def metric(base: str, name: str, labels: str = "") -> float | None:
    """One sample's value from ``base``/metrics (labels exactly as rendered), or None."""
    status, body = http_get(f"{base}/metrics")
    if status != 200:
        return None
    prefix = f"{name}{{{labels}}} " if labels else f"{name} "
    for line in body.decode().splitlines():
        if line.startswith(prefix):
            return float(line.rsplit(" ", 1)[1])
    return None


def run_netguard(tmp_path: Path, config: Path, port: int, name: str) -> ServerProcess:
    """``netguard run --config config``, ready once ``/healthz`` on ``port`` answers."""
    return ServerProcess([*NETGUARD, "run", "--config", str(config)], tmp_path / f"{name}.log",
                         ready=lambda: http_get(f"http://127.0.0.1:{port}/healthz")[0] == 200,
                         cwd=tmp_path)


def json_log(proc: ServerProcess) -> list[dict[str, Any]]:
    """The JSON log records the process wrote so far."""
    return [json.loads(line) for line in proc.log.read_text().splitlines()
            if line.startswith("{")]
