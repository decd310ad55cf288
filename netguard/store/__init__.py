"""Persistence: one async SQLAlchemy engine (SQLite WAL or PostgreSQL) and Alembic migrations."""

from netguard.store.db import Store, current_revision, head_revision, upgrade

__all__ = ["Store", "current_revision", "head_revision", "upgrade"]
