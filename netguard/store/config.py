"""Configuration of the database."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

from netguard.errors import DatabaseMissingError

_SCHEMES = ("postgresql", "postgresql+asyncpg", "sqlite", "sqlite+aiosqlite")


class StoreConfig(BaseModel):
    """Where tickets, events and alerts are kept.

    SQLite (WAL) at ``path`` by default; set ``url`` (e.g.
    ``postgresql+asyncpg://user:pw@host/db``) for PostgreSQL.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    path: Path = Path("netguard.db")
    url: SecretStr | None = None
    auto_upgrade: bool = False
    pool_size: int = Field(default=5, ge=1)
    # A database that accepts connections and never answers must cost seconds, not the
    # drivers' 60 s (asyncpg connect) or forever (a statement on a hung server): every
    # call is bounded, so a sick database means "not ready" quickly and nothing stalls.
    connect_timeout_seconds: float = Field(default=5.0, gt=0, le=300)
    """Connecting (TCP, TLS, authentication), and waiting for a pooled connection."""
    statement_timeout_seconds: float = Field(default=10.0, gt=0, le=3600)
    """One statement: asyncpg ``command_timeout`` plus the server's ``statement_timeout``;
    SQLite's busy timeout (how long a writer waits for the lock)."""
    operation_timeout_seconds: float = Field(default=30.0, gt=0, le=3600)
    """One store operation of the daemon (a fault event, a sweep step, a readiness check),
    several statements; enforced with ``asyncio.timeout`` where the driver cannot."""

    @field_validator("url")
    @classmethod
    def _supported_url(cls, value: SecretStr | None) -> SecretStr | None:
        # Checked at load time so that check-config refuses it, not the first query;
        # the message never repeats the URL: it carries the password.
        if value is None:
            return None
        expected = ("expected postgresql://user:password@host[:port]/database "
                    "or sqlite:///path")
        try:
            parts = urlsplit(value.get_secret_value())
            port = parts.port
        except ValueError:
            raise ValueError(f"not a valid URL; {expected}") from None
        if parts.scheme not in _SCHEMES:
            raise ValueError(f"unsupported database URL; {expected}")
        if parts.scheme.startswith("postgresql") and not parts.hostname and port is None \
                and not parts.path.strip("/"):
            raise ValueError(f"no host or database; {expected}")
        return value

    def sqlite_file(self) -> Path | None:
        """The SQLite database file, or ``None`` for PostgreSQL or an in-memory database."""
        url = self.sqlalchemy_url()
        if not url.startswith("sqlite"):
            return None
        path = url.split(":///", 1)[1] if ":///" in url else ""
        return Path(path) if path and path != ":memory:" else None

    def require_sqlite_file(self, head: str) -> None:
        """Raise if the SQLite file is missing, so that opening it cannot create it empty.

        Raises:
            DatabaseMissingError: The configured SQLite file does not exist.
        """
        path = self.sqlite_file()
        if path is not None and not path.exists():
            raise DatabaseMissingError(str(path), head)

    def sqlalchemy_url(self) -> str:
        """The async SQLAlchemy URL (contains the password: never log it)."""
        if self.url is not None:
            url = self.url.get_secret_value()
            if url.startswith("postgresql://"):
                url = "postgresql+asyncpg://" + url.removeprefix("postgresql://")
            elif url.startswith("sqlite:///"):
                url = "sqlite+aiosqlite:///" + url.removeprefix("sqlite:///")
            return url
        return f"sqlite+aiosqlite:///{self.path}"
