"""The database handle shared by the daemon and the CLI.

SQLite runs in WAL mode with ``synchronous=NORMAL`` (durable across a process crash, which
is what "an event is durable before it is acknowledged" needs; only an OS crash can lose
the last commits) and a busy timeout so that the CLI and the daemon can write side by side.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

from sqlalchemy import event, inspect, make_url, text
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError, OperationalError, SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine
from sqlmodel.ext.asyncio.session import AsyncSession

from netguard.errors import SchemaOutdatedError, StoreError, StoreUnavailableError
from netguard.store.config import StoreConfig
from netguard.store.health import StoreHealth, bounded, probe_writable
from netguard.store.revisions import head_revision

if TYPE_CHECKING:
    from alembic.config import Config as AlembicConfig

__all__ = ["MIGRATIONS_DIR", "Store", "alembic_config", "alembic_head_revision",
           "create_engine", "current_revision", "downgrade", "head_revision", "upgrade"]

MIGRATIONS_DIR = Path(__file__).parent / "migrations"


def alembic_config(url: str) -> AlembicConfig:
    """An Alembic config pointing at netguard's migrations and the given database URL."""
    # Alembic loads only to migrate: it costs ~0.2 s, and every CLI command opens a Store
    # (an up-to-date schema is recognised by netguard.store.revisions, without Alembic).
    from alembic.config import Config as AlembicConfig  # noqa: PLC0415

    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    # Alembic's ini interpolation treats % specially; URL-encoded passwords contain it.
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def alembic_head_revision() -> str:
    """The head revision as Alembic computes it (slow to import; tests compare it with
    :func:`netguard.store.revisions.head_revision`, which every start-up uses)."""
    from alembic.script import ScriptDirectory  # noqa: PLC0415  only to migrate (above)

    script = ScriptDirectory.from_config(alembic_config("sqlite://"))
    head = script.get_current_head()
    assert head is not None
    return head


def _sqlite_pragmas(busy_ms: int) -> Callable[[Any, Any], None]:
    def on_connect(dbapi_conn: Any, _record: Any) -> None:
        cursor = dbapi_conn.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute(f"PRAGMA busy_timeout={busy_ms:d}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()
    return on_connect


def create_engine(config: StoreConfig) -> AsyncEngine:
    """Create the async engine for ``config`` with netguard's connection settings."""
    url = config.sqlalchemy_url()
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            parent = Path(parsed.database).parent
            try:
                parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise StoreUnavailableError(
                    f"cannot create the database directory {parent}: "
                    f"{exc.strerror or exc}") from exc
        # The busy timeout is how long a write waits for another writer's lock (the CLI
        # and the daemon write side by side): the statement timeout.
        engine = create_async_engine(url, connect_args={
            "timeout": config.statement_timeout_seconds})
        event.listen(engine.sync_engine, "connect",
                     _sqlite_pragmas(int(config.statement_timeout_seconds * 1000)))
        return engine
    # asyncpg waits 60 s to connect and forever for an answer by default; a hung server
    # must cost seconds. command_timeout bounds each statement on the client (it also
    # covers pool_pre_ping), statement_timeout on the server (a slow query is cancelled
    # there too), pool_timeout the wait for a free pooled connection.
    statement_ms = int(config.statement_timeout_seconds * 1000)
    return create_async_engine(
        url, pool_size=config.pool_size, pool_pre_ping=True,
        pool_timeout=config.connect_timeout_seconds,
        connect_args={"timeout": config.connect_timeout_seconds,
                      "command_timeout": config.statement_timeout_seconds,
                      "server_settings": {"statement_timeout": str(statement_ms)}})


async def current_revision(engine: AsyncEngine) -> str | None:
    """The Alembic revision the database is at, or ``None`` for an empty database.

    Reads Alembic's version table directly (no Alembic import: CLI start-up).

    Raises:
        StoreUnavailableError: The database cannot be reached.
    """

    def read(conn: Connection) -> str | None:
        if not inspect(conn).has_table("alembic_version"):
            return None
        rows = conn.execute(text("SELECT version_num FROM alembic_version")).all()
        if len(rows) > 1:
            raise StoreError(f"database has several schema heads: {[r[0] for r in rows]}")
        return str(rows[0][0]) if rows else None

    try:
        async with engine.connect() as conn:
            return await conn.run_sync(read)
    except (OperationalError, DBAPIError, OSError) as exc:
        raise StoreUnavailableError(f"cannot reach the database: {exc}") from exc


async def _run_alembic(config: StoreConfig, name: str, revision: str) -> None:
    """Run one Alembic command, mapping its failures to netguard errors."""
    from alembic import command  # noqa: PLC0415  only to migrate (see alembic_config)
    from alembic.util import CommandError  # noqa: PLC0415

    cfg = alembic_config(config.sqlalchemy_url())
    try:
        await asyncio.to_thread(getattr(command, name), cfg, revision)
    except CommandError as exc:
        # An unknown or ambiguous revision: bad input, not a failure of the database.
        raise StoreError(f"{name} to {revision!r}: {exc}") from exc
    except (OperationalError, DBAPIError, OSError) as exc:
        raise StoreUnavailableError(f"cannot reach the database: {exc}") from exc


async def upgrade(config: StoreConfig, revision: str = "head") -> None:
    """Run migrations up to ``revision`` (Alembic runs them in a worker thread).

    Raises:
        StoreError: ``revision`` is unknown.
        StoreUnavailableError: The database cannot be reached or created.
    """
    await _run_alembic(config, "upgrade", revision)


async def downgrade(config: StoreConfig, revision: str) -> None:
    """Run migrations down to ``revision``.

    Raises:
        StoreError: ``revision`` is unknown.
        StoreUnavailableError: The database cannot be reached.
    """
    await _run_alembic(config, "downgrade", revision)


class Store:
    """The database: an async context manager owning the engine.

    Args:
        config: Where the database is.
        check_schema: Refuse to open an outdated schema (``auto_upgrade`` upgrades instead).

    Example::

        async with Store(settings.store) as store:
            async with store.session() as session:
                ...
    """

    def __init__(self, config: StoreConfig, *, check_schema: bool = True) -> None:
        self.config = config
        self._check_schema = check_schema
        self._engine: AsyncEngine | None = None
        self._sessions: async_sessionmaker[AsyncSession] | None = None

    @property
    def engine(self) -> AsyncEngine:
        """The engine; only valid inside ``async with``."""
        if self._engine is None:
            raise RuntimeError("Store used outside `async with`")
        return self._engine

    @property
    def dialect(self) -> str:
        """``sqlite`` or ``postgresql``."""
        return self.engine.dialect.name

    async def __aenter__(self) -> Store:
        if self._check_schema and not self.config.auto_upgrade:
            # SQLite would create an empty file on connect, only to refuse it.
            self.config.require_sqlite_file(head_revision())
        self._engine = create_engine(self.config)
        try:
            if self._check_schema:
                await self._ensure_schema()
        except BaseException:
            await self._engine.dispose()
            self._engine = None
            raise
        self._sessions = async_sessionmaker(self._engine, class_=AsyncSession,
                                            expire_on_commit=False)
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        if self._engine is not None:
            await self._engine.dispose()
        self._engine = None
        self._sessions = None

    async def _ensure_schema(self) -> None:
        head = head_revision()
        current = await current_revision(self.engine)
        if current == head:
            return
        if self.config.auto_upgrade:
            await upgrade(self.config)
            return
        raise SchemaOutdatedError(current, head)

    @asynccontextmanager
    async def session(self) -> AsyncIterator[AsyncSession]:
        """A new session; commit explicitly, it rolls back on error."""
        if self._sessions is None:
            raise RuntimeError("Store used outside `async with`")
        async with self._sessions() as session:
            yield session

    async def ping(self, within: float | None = None) -> bool:
        """True when a trivial query succeeds within ``within`` seconds (default: the
        operation timeout)."""

        async def select_one() -> None:
            async with self.engine.connect() as conn:
                await conn.execute(text("SELECT 1"))

        try:
            await bounded(select_one(), within or self.config.operation_timeout_seconds)
        except (SQLAlchemyError, OSError, TimeoutError):
            return False
        return True

    async def writable(self, within: float | None = None) -> StoreHealth:
        """Whether the database takes writes now: a rolled-back write probe (for
        ``/readyz``; a store that answers ``SELECT 1`` may still refuse every write).

        See :func:`netguard.store.health.probe_writable`.
        """
        return await probe_writable(self.engine,
                                    within or self.config.operation_timeout_seconds)
