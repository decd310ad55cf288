"""Helpers for the door-sensor integration tests: config files, intake process, publisher."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import aiomqtt
import yaml

from tests.conftest import REPO
from tests.support.procs import ServerProcess

SHIPPED_MOSQUITTO_CONF = REPO / "config" / "mosquitto.conf"


def shipped_broker_section(directory: Path) -> Path:
    """The "delivery guarantees" part of config/mosquitto.conf, as its own file."""
    text = SHIPPED_MOSQUITTO_CONF.read_text()
    start = text.index("# ===== delivery guarantees")
    end = text.index("# ===== site specific")
    part = directory / "netguard-broker.conf"
    part.write_text(text[start:end])
    return part


def write_config(path: Path, data: dict[str, Any]) -> Path:
    """Write a netguard YAML config."""
    path.write_text(yaml.safe_dump(data))
    return path


NETGUARD = str(Path(sys.executable).parent / "netguard")


def intake_process(config: Path, log: Path) -> ServerProcess:
    """``netguard run --only intake``: the intake as its own process; ready once it logged
    its MQTT connection."""

    def ready() -> bool:
        try:
            return log.read_text(errors="replace").count('"MQTT connected"') > \
                ready.starts  # type: ignore[attr-defined]
        except OSError:
            return False

    ready.starts = 0  # type: ignore[attr-defined]
    proc = ServerProcess([NETGUARD, "run", "--only", "intake", "--config", str(config)], log,
                         ready=ready, cwd=REPO)
    original_start = proc.start

    def start(timeout: float = 30.0) -> ServerProcess:
        try:
            ready.starts = log.read_text(  # type: ignore[attr-defined]
                errors="replace").count('"MQTT connected"')
        except OSError:
            ready.starts = 0  # type: ignore[attr-defined]
        return original_start(timeout)

    proc.start = start  # type: ignore[method-assign]
    return proc


def count_rows(db: Path, where: str = "1=1") -> int:
    """Count iot_event rows in a SQLite store (read-only, WAL-safe)."""
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30) as conn:
        return int(conn.execute(f"SELECT count(*) FROM iot_event WHERE {where}").fetchone()[0])


def native(sensor: str, seq: int, event: str = "heartbeat") -> tuple[str, bytes]:
    """A native message."""
    return (f"netguard/sensors/{sensor}/event",
            json.dumps({"v": 1, "sensor": sensor, "event": event, "seq": seq,
                        "battery": 90}).encode())


async def publish_all(host: str, port: int, messages: Sequence[tuple[str, bytes]],
                      progress: list[int], *, window: int = 50,
                      client_id: str = "test-publisher") -> None:
    """Publish with QoS 1, ``window`` at a time; reconnect and resend on broker loss.

    ``progress[0]`` counts messages PUBACKed so far.
    """
    i = 0
    while i < len(messages):
        try:
            async with aiomqtt.Client(host, port, identifier=client_id,
                                      max_inflight_messages=window) as client:
                client.pending_calls_threshold = 10 * window
                while i < len(messages):
                    chunk = messages[i:i + window]
                    await asyncio.gather(*(client.publish(t, p, qos=1) for t, p in chunk))
                    i += len(chunk)
                    progress[0] = i
        except aiomqtt.MqttError:
            await asyncio.sleep(0.2)
