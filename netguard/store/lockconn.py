"""The engine of a connection that holds a PostgreSQL advisory lock.

An advisory lock lives as long as the session that took it, so its holder needs a
connection of its own: no pool (closing the connection must end the session, and with
it the lock) and autocommit (the session idles between checks, never inside an open
transaction). Used by the cluster leader (``netguard/cluster/leader.py``) and the
event-log chain's writer lock (``netguard/iot/chainlock.py``).
"""

from __future__ import annotations

from collections.abc import Mapping

from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import NullPool

from netguard.store.config import StoreConfig


def lock_engine(config: StoreConfig, application_name: str,
                server_settings: Mapping[str, str] | None = None) -> AsyncEngine:
    """An unpooled, autocommit engine for one lock-holding connection at a time.

    Args:
        config: The PostgreSQL store (its connect and statement timeouts apply).
        application_name: How ``pg_stat_activity`` names the holder (PostgreSQL keeps
            63 bytes of it).
        server_settings: More session settings sent at connect time.
    """
    statement_ms = int(config.statement_timeout_seconds * 1000)
    return create_async_engine(
        config.sqlalchemy_url(), poolclass=NullPool, isolation_level="AUTOCOMMIT",
        connect_args={"timeout": config.connect_timeout_seconds,
                      "command_timeout": config.statement_timeout_seconds,
                      "server_settings": {"statement_timeout": str(statement_ms),
                                          **(server_settings or {}),
                                          "application_name": application_name[:63]}})
