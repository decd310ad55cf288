"""One writer per event-log chain: a PostgreSQL advisory lock named after the chain.

Each intake writes its own chain (named by ``iot.mqtt.client_id``) and keeps the chain
head in memory, so two processes started with the same client id would both number
rows from the same head and break the chain (and throw each other off the broker).
With a PostgreSQL store the intake therefore takes ``pg_try_advisory_lock`` on a key
derived from the chain name, on a connection of its own, before it reads the head or
connects to the broker, and holds it while it runs. Another live process holding it
makes start-up fail with :class:`ChainInUseError`, which names that process.

The lock needs no table (and so no migration) and dies with its connection: a process
that is SIGKILLed loses it as soon as the server sees the socket close. The connection
runs with ``idle_session_timeout``, and the holder queries it every ``check_seconds``,
so the lock of a process on a host that vanished (no TCP reset) is freed by the server
after that timeout; start-up waits a little longer than that for the lock before it
gives up, so an instance moved to another host (a StatefulSet pod rescheduled) starts.
A SQLite store is one file for one process: no lock is taken.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
import socket
import time
from collections.abc import Callable

from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from netguard.errors import StoreError
from netguard.store.config import StoreConfig
from netguard.store.lockconn import lock_engine

log = logging.getLogger(__name__)

CHAIN_APPLICATION_PREFIX = "netguard-chain:"
CHECK_SECONDS = 10.0
"""How often the holder queries its lock connection."""
IDLE_TIMEOUT_SECONDS = 30.0
"""The server ends a lock session idle this long (a holder that vanished)."""
START_WAIT_SECONDS = IDLE_TIMEOUT_SECONDS + 15.0
"""How long start-up retries before it refuses: past a vanished holder's idle timeout."""

_ERRORS = (SQLAlchemyError, OSError, TimeoutError)
_HOLDER = text(
    "SELECT a.application_name, host(a.client_addr) FROM pg_locks l "
    "JOIN pg_stat_activity a ON a.pid = l.pid "
    "WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1 "
    "AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database()) "
    "AND l.classid = :hi AND l.objid = :lo")


def chain_lock_key(chain: str) -> int:
    """The advisory-lock key of a chain: 63 bits (positive, so pg_locks' classid/objid
    split is plain arithmetic), distinct from the cluster leader's key."""
    digest = hashlib.blake2b(b"netguard.iot.chain\0" + chain.encode(), digest_size=8)
    return int.from_bytes(digest.digest(), "big") >> 1


class ChainInUseError(StoreError):
    """Another live process writes this chain (the same ``iot.mqtt.client_id``).

    Attributes:
        chain: The chain (client id).
        holder: Who holds it, as the server reports it (host:pid, address), or None.
    """

    def __init__(self, chain: str, holder: str | None) -> None:
        self.chain = chain
        self.holder = holder
        who = f" ({holder})" if holder else ""
        super().__init__(
            f"another netguard process{who} already writes the event-log chain {chain!r}: "
            "give each instance its own iot.mqtt.client_id (it names the broker session "
            "and the chain)")


class ChainLock:
    """Take, keep and release the advisory lock of one chain.

    Args:
        config: The PostgreSQL store.
        chain: The chain name (``iot.mqtt.client_id``).
        check_seconds: How often :meth:`run` queries the lock connection.
        idle_timeout: The connection's ``idle_session_timeout``.
        start_wait: How long :meth:`acquire` retries while another process holds it.
        monotonic: Clock for the retry deadline (tests).
    """

    def __init__(self, config: StoreConfig, chain: str, *,
                 check_seconds: float = CHECK_SECONDS,
                 idle_timeout: float = IDLE_TIMEOUT_SECONDS,
                 start_wait: float = START_WAIT_SECONDS,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self.chain = chain
        self._key = chain_lock_key(chain)
        self._check_seconds = check_seconds
        self._start_wait = start_wait
        self._monotonic = monotonic
        me = f"{CHAIN_APPLICATION_PREFIX}{socket.gethostname()}:{os.getpid()}"
        self._engine: AsyncEngine = lock_engine(config, me)
        self._idle_ms = max(1, int(idle_timeout * 1000))
        self._conn: AsyncConnection | None = None

    @property
    def held(self) -> bool:
        """Whether this process holds the lock (as of the last attempt or check)."""
        return self._conn is not None

    async def acquire(self) -> None:
        """Take the lock, retrying for up to ``start_wait`` while another process holds it.

        Raises:
            ChainInUseError: Another process still holds it.
            StoreError: The database cannot be reached.
        """
        deadline = self._monotonic() + self._start_wait
        waited = False
        while True:
            try:
                if await self._try():
                    return
            except _ERRORS as exc:
                raise StoreError(f"cannot take the event-log chain lock: {exc}") from exc
            holder = await self.holder()
            if self._monotonic() >= deadline:
                raise ChainInUseError(self.chain, holder)
            if not waited:
                waited = True
                log.warning("another process holds the event-log chain; waiting for it "
                            "to go (a restarted instance's old session) before refusing",
                            extra={"chain": self.chain, "holder": holder,
                                   "wait_seconds": self._start_wait})
            await asyncio.sleep(1.0)

    async def _try(self) -> bool:
        conn = await self._engine.connect()
        try:
            # Set after connecting, not as a startup parameter: PostgreSQL 13 and older
            # do not know it and would refuse the connection; there the lock of a
            # vanished holder lasts until the server's TCP keepalive gives up.
            with contextlib.suppress(SQLAlchemyError):
                await conn.execute(text(f"SET idle_session_timeout = {self._idle_ms}"))
            got = bool((await conn.execute(text("SELECT pg_try_advisory_lock(:k)"),
                                           {"k": self._key})).scalar())
        except BaseException:
            await _discard(conn)
            raise
        if not got:
            await _discard(conn)
            return False
        self._conn = conn
        return True

    async def holder(self) -> str | None:
        """Who holds the lock now (``host:pid`` of that process, and its address)."""
        try:
            async with self._engine.connect() as conn:
                row = (await conn.execute(_HOLDER, {"hi": self._key >> 32,
                                                    "lo": self._key & 0xFFFFFFFF})).first()
        except _ERRORS:
            return None
        if row is None:
            return None
        name = str(row[0] or "").removeprefix(CHAIN_APPLICATION_PREFIX) or "unknown"
        return f"{name} from {row[1]}" if row[1] else name

    async def check(self) -> bool:
        """Whether the lock is still held; if its connection was lost, take it again
        when it is free. Logs an error when another process took it meanwhile."""
        conn = self._conn
        if conn is not None:
            try:
                await conn.execute(text("SELECT 1"))
            except _ERRORS as exc:
                log.warning("lost the event-log chain lock connection; taking it again",
                            extra={"chain": self.chain, "error": type(exc).__name__})
                self._conn = None
                await _discard(conn)
            else:
                return True
        try:
            if await self._try():
                return True
        except _ERRORS:
            return False  # the database is away; the intake's own writes say so
        log.error("another process took the event-log chain lock: two processes write "
                  "one chain; give each instance its own iot.mqtt.client_id",
                  extra={"chain": self.chain, "holder": await self.holder()})
        return False

    async def run(self) -> None:
        """Keep the lock: query its connection every ``check_seconds`` (which also keeps
        it from the idle timeout), forever."""
        while True:
            await asyncio.sleep(self._check_seconds)
            try:
                await self.check()
            except Exception:
                # A bug here must not take the intake down with the task group.
                log.exception("checking the event-log chain lock failed")

    async def close(self) -> None:
        """Release the lock (closing its connection) and dispose of the engine."""
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(*_ERRORS):
                await conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": self._key})
            await _discard(conn)
        await self._engine.dispose()


async def _discard(conn: AsyncConnection) -> None:
    try:
        await conn.invalidate()
        await conn.close()
    except _ERRORS:
        log.debug("closing the chain lock connection failed", exc_info=True)
