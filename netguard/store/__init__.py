"""Persistence: one async SQLAlchemy engine (SQLite WAL or PostgreSQL) and Alembic migrations.

The names are loaded on first use so that importing :mod:`netguard.store.config` (which
every config load does) does not pull in SQLAlchemy and Alembic: ``netguard tickets list``
must start in well under half a second.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from netguard.store.db import Store, current_revision, head_revision, upgrade

__all__ = ["Store", "current_revision", "head_revision", "upgrade"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        # Lazy on purpose (PEP 562): netguard.config imports netguard.store.config, which
        # runs this file; loading SQLAlchemy here would slow every CLI command.
        from netguard.store import db  # noqa: PLC0415

        return getattr(db, name)
    raise AttributeError(f"module 'netguard.store' has no attribute {name!r}")
