"""A read-only ticket listing straight over the database driver, for the CLI.

``netguard tickets list`` must print its first page within half a second *including*
interpreter start-up; importing SQLAlchemy and Alembic alone takes most of that. This
reader runs the very same SQL as :meth:`TicketService.iter` (from
:mod:`netguard.tickets.queries`) through ``sqlite3`` or ``asyncpg`` directly, and checks
the schema revision without Alembic. Writes always go through the service.
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime
from types import TracebackType
from typing import Any

from netguard.errors import SchemaOutdatedError, StoreUnavailableError
from netguard.store.config import StoreConfig
from netguard.store.revisions import head_revision
from netguard.tickets.domain import Ticket, TicketFilter
from netguard.tickets.queries import export_record, list_query, sqlite_param, ticket_from_row

_PARAM = re.compile(r":([A-Za-z_][A-Za-z0-9_]*)")


def _to_positional(sql: str, params: dict[str, Any]) -> tuple[str, list[Any]]:
    """``:name`` placeholders to asyncpg's ``$n``."""
    order: list[str] = []

    def number(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in order:
            order.append(name)
        return f"${order.index(name) + 1}"

    return _PARAM.sub(number, sql), [params[name] for name in order]


class TicketReader:
    """Lists tickets from the configured store without SQLAlchemy.

    Args:
        config: The store configuration (SQLite path or PostgreSQL URL).
        prefix: The human id prefix (``NG``).
        now: The time that decides "overdue".

    Raises on entry:
        SchemaOutdatedError: The schema is not at the code's head revision (the caller
            may upgrade through :class:`~netguard.store.Store` and retry).
        StoreUnavailableError: The database cannot be opened.
    """

    def __init__(self, config: StoreConfig, *, prefix: str, now: datetime) -> None:
        self._config = config
        self._prefix = prefix
        self._now = now
        self._sqlite: sqlite3.Connection | None = None
        self._pg: Any = None

    async def __aenter__(self) -> TicketReader:
        url = self._config.sqlalchemy_url()
        head = head_revision()
        if url.startswith("sqlite"):
            self._config.require_sqlite_file(head)  # never create an empty one by listing
            current = self._open_sqlite(url)
        else:
            # Only a PostgreSQL store needs the driver (~60 ms of a listing's start-up).
            import asyncpg  # type: ignore[import-untyped]  # noqa: PLC0415

            dsn = "postgresql://" + url.split("://", 1)[1]
            try:
                self._pg = await asyncpg.connect(dsn)
            except (OSError, asyncpg.PostgresError) as exc:
                raise StoreUnavailableError(f"cannot reach the database: {exc}") from exc
            current = await self._pg_revision()
        if current != head:
            await self.__aexit__(None, None, None)
            raise SchemaOutdatedError(current, head)
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        if self._sqlite is not None:
            self._sqlite.close()
            self._sqlite = None
        if self._pg is not None:
            await self._pg.close()
            self._pg = None

    def _open_sqlite(self, url: str) -> str | None:
        path = url.split(":///", 1)[1] if ":///" in url else ""
        try:
            self._sqlite = sqlite3.connect(path, timeout=30)
            self._sqlite.execute("PRAGMA busy_timeout=30000")
        except sqlite3.Error as exc:
            raise StoreUnavailableError(f"cannot open {path}: {exc}") from exc
        return self._sqlite_revision()

    def _sqlite_revision(self) -> str | None:
        assert self._sqlite is not None
        try:
            row = self._sqlite.execute("SELECT version_num FROM alembic_version").fetchone()
        except sqlite3.OperationalError as exc:
            if "no such table" in str(exc):
                return None
            raise StoreUnavailableError(f"cannot read the database: {exc}") from exc
        return None if row is None else str(row[0])

    async def _pg_revision(self) -> str | None:
        import asyncpg  # noqa: PLC0415  only with PostgreSQL, as in __aenter__

        try:
            value = await self._pg.fetchval("SELECT version_num FROM alembic_version")
        except asyncpg.UndefinedTableError:
            return None
        return None if value is None else str(value)

    async def rows(self, flt: TicketFilter) -> AsyncIterator[tuple[Any, ...]]:
        """Stream the raw rows (:data:`~netguard.tickets.queries.TICKET_COLUMNS`)."""
        sql, params = list_query(flt, self._now)
        if self._sqlite is not None:
            cursor = self._sqlite.execute(sql, {k: sqlite_param(v) for k, v in params.items()})
            while rows := cursor.fetchmany(1000):
                for row in rows:
                    yield row
            return
        text, args = _to_positional(sql, params)
        async with self._pg.transaction():
            async for record in self._pg.cursor(text, *args, prefetch=1000):
                yield tuple(record)

    async def tickets(self, flt: TicketFilter) -> AsyncIterator[Ticket]:
        """Stream the tickets ``flt`` selects, most urgent first."""
        async for row in self.rows(flt):
            yield ticket_from_row(row, prefix=self._prefix, now=self._now)

    async def records(self, flt: TicketFilter) -> AsyncIterator[list[Any]]:
        """Stream export values (``TICKET_FIELDS`` order) without building tickets."""
        async for row in self.rows(flt):
            yield export_record(row, prefix=self._prefix, now=self._now)


@asynccontextmanager
async def open_reader(config: StoreConfig, *, prefix: str, now: datetime
                      ) -> AsyncIterator[TicketReader]:
    """A :class:`TicketReader`, upgrading the schema first when ``auto_upgrade`` is set.

    Raises:
        SchemaOutdatedError: The schema is outdated and ``auto_upgrade`` is off.
    """
    try:
        reader = await TicketReader(config, prefix=prefix, now=now).__aenter__()
    except SchemaOutdatedError:
        if not config.auto_upgrade:
            raise
        # Only to upgrade: Store loads SQLAlchemy and Alembic, which this reader avoids.
        from netguard.store.db import Store  # noqa: PLC0415

        async with Store(config):  # upgrades on entry
            pass
        reader = await TicketReader(config, prefix=prefix, now=now).__aenter__()
    try:
        yield reader
    finally:
        await reader.__aexit__(None, None, None)
