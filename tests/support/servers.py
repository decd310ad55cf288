"""Real servers for integration tests: Mosquitto and a throwaway PostgreSQL database."""

from __future__ import annotations

import asyncio
import os
import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import asyncpg  # type: ignore[import-untyped]

from tests.support.ports import free_tcp_port, tcp_accepts
from tests.support.procs import ServerProcess

MOSQUITTO = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
PG_ADMIN_URL = os.environ.get("NETGUARD_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")


@dataclass
class Broker:
    """A private Mosquitto on a free loopback port."""

    host: str
    port: int
    process: ServerProcess
    conf: Path

    def restart(self) -> None:
        """Stop with SIGTERM (persisting its queue) and start again on the same port."""
        self.process.stop()
        self.process.start()


def write_mosquitto_conf(directory: Path, port: int, extra: str = "",
                         base: Path | None = None) -> Path:
    """A Mosquitto config for a private broker in ``directory``.

    Args:
        base: A config file whose settings are included (e.g. netguard's
            ``config/mosquitto.conf`` without its listeners).
    """
    persist = directory / "persist"
    persist.mkdir(exist_ok=True)
    os.chmod(persist, 0o777)  # root-started mosquitto drops to the mosquitto user
    conf = directory / "mosquitto.conf"
    lines = [
        f"listener {port} 127.0.0.1",
        "allow_anonymous true",
        "persistence true",
        f"persistence_location {persist}/",
        "log_dest stdout",
        "log_type error",
        "log_type warning",
        "user root" if os.geteuid() == 0 else "",
    ]
    if base is not None:
        lines.append(base.read_text())
    lines.append(extra)
    conf.write_text("\n".join(lines) + "\n")
    return conf


@contextmanager
def mosquitto(directory: Path, extra: str = "", base: Path | None = None) -> Iterator[Broker]:
    """Run a private Mosquitto for the duration of the block."""
    directory.mkdir(parents=True, exist_ok=True)
    port = free_tcp_port()
    conf = write_mosquitto_conf(directory, port, extra, base)
    proc = ServerProcess([MOSQUITTO, "-c", str(conf)], directory / "mosquitto.log",
                         ready=lambda: tcp_accepts(port))
    proc.start()
    try:
        yield Broker("127.0.0.1", port, proc, conf)
    finally:
        proc.stop()


def _pg_admin_execute(sql: str) -> None:
    async def run() -> None:
        conn = await asyncpg.connect(PG_ADMIN_URL)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    asyncio.run(run())


@contextmanager
def pg_database() -> Iterator[str]:
    """A throwaway PostgreSQL database; yields its ``postgresql://`` URL.

    Uses the server at ``NETGUARD_TEST_PG`` (default 127.0.0.1:5432, trust auth), which
    ``scripts/test.sh`` makes sure is running.
    """
    name = f"ng_test_{uuid.uuid4().hex[:12]}"
    _pg_admin_execute(f'CREATE DATABASE "{name}"')
    base = PG_ADMIN_URL.rsplit("/", 1)[0]
    try:
        yield f"{base}/{name}"
    finally:
        _pg_admin_execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
