"""The leader of the single-run jobs: whoever holds one PostgreSQL advisory lock.

The lock (``pg_try_advisory_lock``) is taken on a connection of its own, held for as long
as the instance leads, and is lost with that connection: if the process dies, the
server drops the session and the lock with it. The connection is opened with
``idle_session_timeout`` set to the lease, so a leader that stops talking to the
database (paused, cut off, its loop stalled) loses the lock on the server after one
lease even if no TCP reset ever arrives; the leader checks its connection at every
heartbeat, so a live one never goes idle that long. Its ``application_name`` is
``netguard-leader:<instance_id>``, which is how ``netguard cluster status`` names the
leader (from ``pg_locks`` and ``pg_stat_activity``) without a table of its own.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging

from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from netguard.store.config import StoreConfig
from netguard.store.lockconn import lock_engine

log = logging.getLogger(__name__)

# A fixed 63-bit key (positive, so pg_locks' classid/objid split is plain arithmetic).
LEADER_LOCK_KEY = int.from_bytes(
    hashlib.blake2b(b"netguard.cluster.leader", digest_size=8).digest(), "big") >> 1
LEADER_APPLICATION_PREFIX = "netguard-leader:"

_ERRORS = (SQLAlchemyError, OSError, TimeoutError)


def leader_engine(config: StoreConfig, instance_id: str, lease_seconds: float) -> AsyncEngine:
    """An engine for the leader's own connection: no pool (closing it releases the lock),
    autocommit (an idle session, not an idle transaction), the lease as idle timeout."""
    return lock_engine(config, f"{LEADER_APPLICATION_PREFIX}{instance_id}",
                       {"idle_session_timeout": str(max(1, int(lease_seconds * 1000)))})


class LeaderLock:
    """Try for, keep and give up the leader's advisory lock.

    Args:
        engine: From :func:`leader_engine` (each acquisition opens one connection).
    """

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._conn: AsyncConnection | None = None

    @property
    def held(self) -> bool:
        """Whether this instance holds the lock (as of the last call)."""
        return self._conn is not None

    async def try_acquire(self) -> bool:
        """Take the lock if no one holds it; keep it if held and the connection lives.

        Returns:
            Whether this instance holds the lock now. A database error is logged and
            answered with False (and the connection dropped).
        """
        if self._conn is not None:
            return await self.check()
        try:
            conn = await self._engine.connect()
        except _ERRORS as exc:
            log.debug("cannot open the leader connection: %s", type(exc).__name__)
            return False
        try:
            got = (await conn.execute(text("SELECT pg_try_advisory_lock(:k)"),
                                      {"k": LEADER_LOCK_KEY})).scalar()
        except _ERRORS as exc:
            log.debug("leader lock attempt failed: %s", type(exc).__name__)
            await _discard(conn)
            return False
        if not got:
            await _discard(conn)
            return False
        self._conn = conn
        return True

    async def check(self) -> bool:
        """Whether the lock is still held: a query on its connection (which also keeps
        the session from reaching ``idle_session_timeout``)."""
        conn = self._conn
        if conn is None:
            return False
        try:
            await conn.execute(text("SELECT 1"))
        except _ERRORS as exc:
            log.warning("lost the leader connection; no longer leader",
                        extra={"error": type(exc).__name__})
            self._conn = None
            await _discard(conn)
            return False
        return True

    async def release(self) -> None:
        """Give the lock up (closing its connection, which releases it in any case)."""
        conn, self._conn = self._conn, None
        if conn is None:
            return
        # Closing the connection below releases it on the server anyway.
        with contextlib.suppress(*_ERRORS):
            await conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": LEADER_LOCK_KEY})
        await _discard(conn)

    async def close(self) -> None:
        """Release the lock and dispose of the engine."""
        await self.release()
        await self._engine.dispose()


async def _discard(conn: AsyncConnection) -> None:
    try:
        await conn.invalidate()
        await conn.close()
    except _ERRORS:
        log.debug("closing the leader connection failed", exc_info=True)
