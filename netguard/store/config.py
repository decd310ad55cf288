"""Configuration of the database."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, SecretStr


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
