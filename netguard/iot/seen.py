"""What the event log already holds, read for deduplication (see :mod:`netguard.iot.dedup`)."""

from __future__ import annotations

from collections.abc import Collection

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from netguard.iot.dedup import NATIVE_PREFIX, DedupeKey, payload_digest
from netguard.iot.models import Event


async def native_identities(session: AsyncSession, limit: int) -> list[str]:
    """The last ``limit`` native identities stored (by any instance), oldest first."""
    rows = (await session.exec(
        select(Event.identity).where(col(Event.identity).startswith(NATIVE_PREFIX))
        .order_by(col(Event.id).desc()).limit(limit))).all()
    return [str(i) for i in reversed(rows)]


async def recent_keys(session: AsyncSession, chain: str, limit: int
                      ) -> list[tuple[DedupeKey, str]]:
    """(redelivery key, identity) of the last ``limit`` messages with a packet id stored
    on ``chain``, oldest first."""
    rows = (await session.exec(
        select(Event)
        .where(col(Event.chain) == chain, col(Event.mqtt_mid).is_not(None))
        .order_by(col(Event.chain_seq).desc()).limit(limit))).all()
    # The stored payload may be cut to raw_keep_bytes: use the full one's hash (rows from
    # before revision 0004 kept the whole payload).
    return [((int(row.mqtt_mid), row.topic, row.payload_sha256 or payload_digest(row.payload)),
             row.identity)
            for row in reversed(rows) if row.payload is not None and row.mqtt_mid is not None]


async def stored_identities(session: AsyncSession, identities: Collection[str]) -> set[str]:
    """Those of ``identities`` the event log holds."""
    if not identities:
        return set()
    found = await session.exec(select(Event.identity).where(
        col(Event.identity).in_(identities)))
    return set(found.all())


__all__ = ["native_identities", "recent_keys", "stored_identities"]
