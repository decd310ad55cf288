"""Is the database able to take writes, and is a failed write the database's fault?

Two questions the daemon asks of a database that may be sick in ways ``SELECT 1`` does
not see (PostgreSQL read-only or a standby after a failover, a full disk, a server that
accepts connections and never answers):

- :func:`store_wide_reason` sorts a failed write into *store-wide* (the database refuses
  every write for now: read-only, unreachable, disk full, timed out, locked; retry the
  same thing later, drop nothing) or *specific to what was written* (a value out of
  range, a constraint: retrying will never help). Only the latter may ever be set aside.
- :func:`probe_writable` runs a write that is rolled back, for ``/readyz``.

Pure classification plus one short probe; no SQLAlchemy import at module level beyond
what :mod:`netguard.store.db` already needs.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from collections.abc import Awaitable
from dataclasses import dataclass
from typing import Any, TypeVar

from sqlalchemy import exc as sa_exc
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from netguard.errors import TransientError

__all__ = ["StoreHealth", "bounded", "describe_error", "probe_writable", "store_wide_reason"]

log = logging.getLogger(__name__)
T = TypeVar("T")
# Operations given up on by bounded(): kept referenced until they end (RUF006).
_ABANDONED: set[asyncio.Task[Any]] = set()


def _forget(task: asyncio.Task[Any]) -> None:
    _ABANDONED.discard(task)
    if not task.cancelled() and task.exception() is not None:
        log.debug("an abandoned store operation ended with %r", task.exception())


async def bounded(operation: Awaitable[T], within: float) -> T:
    """Await ``operation``, but give up after ``within`` seconds, whatever it does.

    ``asyncio.timeout`` alone is not a bound on a database call: it cancels, and the
    cleanup that cancellation runs (a rollback, returning the connection to the pool)
    talks to the same hung server. Here the operation runs as its own task; on timeout
    it is cancelled and left to finish its cleanup in the background, and the caller
    gets ``TimeoutError`` at once.

    Raises:
        TimeoutError: The operation did not finish in time.
    """
    task = asyncio.ensure_future(operation)
    try:
        done, _ = await asyncio.wait({task}, timeout=within)
    except asyncio.CancelledError:
        task.cancel()
        _ABANDONED.add(task)
        task.add_done_callback(_forget)
        raise
    if done:
        return task.result()
    task.cancel()
    _ABANDONED.add(task)
    task.add_done_callback(_forget)
    raise TimeoutError(f"store operation did not finish within {within:g}s")

# PostgreSQL SQLSTATE classes and codes that say "the database", not "this row".
# 08 connection, 53 insufficient resources (53100 disk full), 57 operator intervention
# (admin shutdown, cannot connect now, 57014 statement timeout), 58 system/I/O error,
# 28 bad credentials, 3D no such database, XX internal error.
_PG_CLASSES = {"08": "unreachable", "53": "disk full or out of resources",
               "57": "shut down, restarting or timed out", "58": "I/O error",
               "28": "refused the credentials", "3D": "no such database",
               "XX": "internal error"}
_PG_CODES = {"25006": "read-only", "53100": "disk full", "57014": "statement timed out",
             "40001": "serialization failure", "40P01": "deadlock",
             "55P03": "lock not available", "25P03": "idle transaction timed out"}
# SQLite result codes (primary names; extended names start with them).
_SQLITE = (("SQLITE_READONLY", "read-only"), ("SQLITE_FULL", "disk full"),
           ("SQLITE_BUSY", "locked by another writer"), ("SQLITE_LOCKED", "locked"),
           ("SQLITE_IOERR", "I/O error"), ("SQLITE_CANTOPEN", "cannot open the file"),
           ("SQLITE_NOMEM", "out of memory"), ("SQLITE_PROTOCOL", "locking protocol"),
           ("SQLITE_INTERRUPT", "interrupted"), ("SQLITE_NOTADB", "not a database"),
           ("SQLITE_CORRUPT", "corrupt"), ("SQLITE_NOLFS", "file too large"))
# Older SQLite builds without result-code names: match the message.
_SQLITE_MESSAGES = (("readonly database", "read-only"), ("disk is full", "disk full"),
                    ("database is locked", "locked by another writer"),
                    ("disk i/o error", "I/O error"),
                    ("unable to open database", "cannot open the file"))


def _chain(exc: BaseException) -> list[BaseException]:
    seen: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in seen and len(seen) < 16:
        seen.append(current)
        orig = getattr(current, "orig", None)
        if isinstance(orig, BaseException) and orig not in seen:
            seen.append(orig)
        current = current.__cause__ or current.__context__
    return seen


def store_wide_reason(exc: BaseException) -> str | None:
    """Why ``exc`` means the whole database refuses writes now, or ``None`` if it is
    specific to the statement (bad data, a constraint, a bug in one query).

    Looks through the ``raise ... from`` chain, so wrapped errors (``StoreError`` from a
    DBAPI error) are judged by what the driver said.
    """
    for item in _chain(exc):
        code = getattr(item, "sqlstate", None) or getattr(item, "pgcode", None)
        if isinstance(code, str) and len(code) == 5:
            if code in _PG_CODES:
                return _PG_CODES[code]
            if code[:2] in _PG_CLASSES:
                return _PG_CLASSES[code[:2]]
            return None  # the server answered with a row-level error
        if isinstance(item, sqlite3.Error):
            name = str(getattr(item, "sqlite_errorname", "") or "")
            for prefix, reason in _SQLITE:
                if name.startswith(prefix):
                    return reason
            message = str(item).lower()
            for needle, reason in _SQLITE_MESSAGES:
                if needle in message:
                    return reason
            return None
    for item in _chain(exc):
        if isinstance(item, TimeoutError | sa_exc.TimeoutError):
            return "timed out"
        if isinstance(item, ConnectionError | OSError):
            return "unreachable"
        if isinstance(item, sa_exc.InterfaceError | sa_exc.DisconnectionError):
            return "connection lost"
        if isinstance(item, TransientError):
            return "unavailable"
        if type(item).__name__ in {"InterfaceError", "ConnectionDoesNotExistError",
                                   "InternalClientError"}:
            return "connection lost"  # asyncpg's own client-side errors
    return None


def describe_error(exc: BaseException) -> str:
    """One line about a database error, for logs and ``/readyz`` (no URL: no password)."""
    reason = store_wide_reason(exc)
    inner = _chain(exc)[-1]
    detail = str(inner).strip().splitlines()[0][:200] if str(inner).strip() else ""
    kind = type(inner).__name__
    text_ = f"{kind}: {detail}" if detail else kind
    return f"{reason} ({text_})" if reason else text_


@dataclass(frozen=True, slots=True)
class StoreHealth:
    """The outcome of :func:`probe_writable`.

    Attributes:
        writable: The probe's write went through (and was rolled back).
        reason: Why not, in one line (``""`` when writable).
    """

    writable: bool
    reason: str = ""


async def probe_writable(engine: AsyncEngine, within: float) -> StoreHealth:
    """Try a write in a transaction that is rolled back, within ``within`` seconds.

    On PostgreSQL the server's ``transaction_read_only`` is read first (a standby or
    ``default_transaction_read_only=on`` says so without trying); then, on both
    databases, the one row of ``alembic_version`` is updated to itself and rolled back,
    which needs the same write permission, lock and free space a ticket write needs
    (except that a rollback never grows the file: a full disk is also reported by the
    daemon's last failed write).
    """
    async def probe() -> StoreHealth:
        async with engine.connect() as conn:
            trans = await conn.begin()
            try:
                if engine.dialect.name == "postgresql":
                    flag = (await conn.execute(text("SHOW transaction_read_only"))).scalar()
                    if str(flag).lower() == "on":
                        return StoreHealth(False, "read-only (transaction_read_only=on)")
                await conn.execute(text("UPDATE alembic_version SET version_num = version_num"))
            finally:
                await trans.rollback()
        return StoreHealth(True)

    try:
        return await bounded(probe(), within)
    except TimeoutError:
        return StoreHealth(False, f"timed out after {within:g}s")
    except (sa_exc.SQLAlchemyError, OSError) as exc:
        return StoreHealth(False, describe_error(exc))
