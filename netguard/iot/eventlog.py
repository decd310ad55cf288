"""The append-only, hash-chained event log: chaining, verification, retention purge, export.

Each row's ``digest`` is SHA-256 (or HMAC-SHA256 with ``iot.audit_key``) over its
canonical content, and its ``hash`` is SHA-256 over ``prev_hash + digest``. Rows of one
chain (one intake instance, named by its MQTT client id) are numbered 1, 2, 3, ... by
``chain_seq``, so that any edited, inserted or deleted row breaks either a digest, a link
or the numbering, and :func:`verify` names the first bad row.

The retention purge first *redacts* old rows (clears their content, keeps the digest, so
the links still verify), then deletes the redacted prefix of the chain and records the
last deleted row's hash in a :class:`ChainCheckpoint` where verification resumes.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from netguard.clock import as_utc
from netguard.iot.models import ChainCheckpoint, Event, Household, QuarantinePeriod

GENESIS = "0" * 64
_CONTENT_FIELDS = ("chain", "chain_seq", "identity", "received_at", "topic", "payload",
                   "sensor_id", "household_id", "kind", "contact", "battery", "device_time",
                   "seq", "mqtt_mid", "dead_reason", "detail")


def _canon(value: Any) -> Any:
    if isinstance(value, datetime):
        return as_utc(value).isoformat(timespec="microseconds")
    if isinstance(value, bytes):
        return base64.b64encode(value).decode("ascii")
    if isinstance(value, float):
        return repr(value)
    return value


def content_digest(row: dict[str, Any] | Event, key: bytes | None = None) -> str:
    """The digest of a row's content (HMAC-SHA256 when ``key`` is given)."""
    get = row.get if isinstance(row, dict) else lambda f: getattr(row, f)
    data = json.dumps([_canon(get(f)) for f in _CONTENT_FIELDS], separators=(",", ":"),
                      ensure_ascii=False).encode("utf-8")
    if key is not None:
        return hmac.new(key, data, hashlib.sha256).hexdigest()
    return hashlib.sha256(data).hexdigest()


def link_hash(prev_hash: str, digest: str, received_at: datetime) -> str:
    """The chain link of a row. The receive time is linked outside the digest so that a
    redacted row keeps it, and a redaction before the retention period ended shows."""
    stamp = _canon(received_at)
    return hashlib.sha256(f"{prev_hash}{digest}{stamp}".encode("ascii")).hexdigest()


class ChainWriter:
    """Numbers and links new rows of one chain; the only writer of that chain.

    The head advances only through :meth:`commit`, after the transaction committed, so a
    failed transaction leaves the chain where it was.
    """

    def __init__(self, chain: str, key: bytes | None = None) -> None:
        self.chain = chain
        self._key = key
        self.seq = 0
        self.hash = GENESIS

    async def load(self, session: AsyncSession) -> None:
        """Read the chain head from the store."""
        last = (await session.exec(
            select(Event.chain_seq, Event.hash).where(col(Event.chain) == self.chain)
            .order_by(col(Event.chain_seq).desc()).limit(1))).first()
        if last is not None:
            self.seq, self.hash = int(last[0]), str(last[1])
            return
        checkpoint = await session.get(ChainCheckpoint, self.chain)
        if checkpoint is not None:
            self.seq, self.hash = int(checkpoint.chain_seq), checkpoint.hash
        else:
            self.seq, self.hash = 0, GENESIS

    def link(self, rows: Sequence[dict[str, Any]]) -> tuple[int, str]:
        """Fill ``chain``, ``chain_seq``, ``digest``, ``prev_hash`` and ``hash`` of new rows.

        Returns:
            The head after these rows; pass it to :meth:`commit` once they are stored.
        """
        seq, head = self.seq, self.hash
        for row in rows:
            seq += 1
            row["chain"] = self.chain
            row["chain_seq"] = seq
            row["purged"] = False
            digest = content_digest(row, self._key)
            row["digest"] = digest
            row["prev_hash"] = head
            head = link_hash(head, digest, row["received_at"])
            row["hash"] = head
        return seq, head

    def commit(self, head: tuple[int, str]) -> None:
        """Advance the head after the rows were committed."""
        self.seq, self.hash = head


@dataclass(frozen=True, slots=True)
class VerifyProblem:
    """The first row that does not verify."""

    chain: str
    chain_seq: int
    row_id: int | None
    problem: str

    def __str__(self) -> str:
        return (f"chain {self.chain!r} row seq {self.chain_seq} (id {self.row_id}): "
                f"{self.problem}")


@dataclass(frozen=True, slots=True)
class VerifyReport:
    """The result of :func:`verify`."""

    rows: int
    chains: int
    problems: tuple[VerifyProblem, ...]

    @property
    def ok(self) -> bool:
        """True when every chain verifies."""
        return not self.problems


async def _stream(session: AsyncSession, chain: str, batch: int = 5000
                  ) -> AsyncIterator[Event]:
    after = -1
    while True:
        rows = list((await session.exec(
            select(Event).where(col(Event.chain) == chain, col(Event.chain_seq) > after)
            .order_by(col(Event.chain_seq)).limit(batch))).all())
        if not rows:
            return
        for row in rows:
            yield row
        after = rows[-1].chain_seq
        session.expunge_all()


async def verify(session: AsyncSession, key: bytes | None = None, *,
                 redacted_before: datetime | None = None) -> VerifyReport:
    """Check every chain; report the first bad row of each.

    Detects an edited row (digest mismatch), an inserted or deleted row (numbering or
    link broken), a row whose stored hash was rewritten, and, given ``redacted_before``
    (now minus the retention period), a row redacted while it should still be kept.
    """
    chains = [str(c) for c in (await session.exec(select(Event.chain).distinct())).all()]
    problems: list[VerifyProblem] = []
    total = 0
    for chain in sorted(chains):
        checkpoint = await session.get(ChainCheckpoint, chain)
        expect_seq = 1 if checkpoint is None else checkpoint.chain_seq + 1
        prev = GENESIS if checkpoint is None else checkpoint.hash
        async for row in _stream(session, chain):
            total += 1
            problem = _check_row(row, expect_seq, prev, key)
            if (problem is None and row.purged and redacted_before is not None
                    and as_utc(row.received_at) >= redacted_before):
                problem = "redacted before its retention period ended"
            if problem is not None:
                problems.append(VerifyProblem(chain, row.chain_seq, row.id, problem))
                break
            expect_seq, prev = row.chain_seq + 1, row.hash
    return VerifyReport(total, len(chains), tuple(problems))


def _check_row(row: Event, expect_seq: int, prev: str, key: bytes | None) -> str | None:
    if row.chain_seq != expect_seq:
        if row.chain_seq > expect_seq:
            return (f"rows {expect_seq}..{row.chain_seq - 1} are missing (deleted), "
                    f"or this row was inserted")
        return f"unexpected sequence number (expected {expect_seq})"
    if row.prev_hash != prev:
        return "prev_hash does not match the previous row (row inserted or deleted before it)"
    if not row.purged and content_digest(row, key) != row.digest:
        return "content does not match its digest (row edited)"
    if link_hash(prev, row.digest, row.received_at) != row.hash:
        return "hash does not match (row or digest edited)"
    return None


async def purge(session: AsyncSession, *, cutoff: datetime, now: datetime) -> tuple[int, int]:
    """Apply retention: redact events older than ``cutoff`` of households not in an active
    quarantine (and of no household), then delete each chain's redacted prefix.

    Returns:
        ``(rows redacted, rows deleted)``.
    """
    active = (select(QuarantinePeriod.household_id)
              .where(sa.or_(col(QuarantinePeriod.end_at).is_(None),
                            col(QuarantinePeriod.end_at) > cutoff)))
    redacted = await session.exec(
        sa.update(Event)
        .where(col(Event.received_at) < cutoff, col(Event.purged).is_(False),
               sa.or_(col(Event.household_id).is_(None),
                      col(Event.household_id).not_in(active)))
        .values(purged=True, payload=None, topic="", detail=None, sensor_id=None,
                household_id=None,
                identity=sa.literal("purged:") + col(Event.chain) + ":"
                + sa.cast(col(Event.chain_seq), sa.String))
        .execution_options(synchronize_session=False))
    deleted = 0
    chains = [str(c) for c in (await session.exec(select(Event.chain).distinct())).all()]
    for chain in chains:
        first_live = (await session.exec(
            select(sa.func.min(Event.chain_seq))
            .where(col(Event.chain) == chain, col(Event.purged).is_(False)))).one()
        cond = [col(Event.chain) == chain, col(Event.purged).is_(True)]
        if first_live is not None:
            cond.append(col(Event.chain_seq) < first_live)
        last = (await session.exec(select(Event.chain_seq, Event.hash).where(*cond)
                                   .order_by(col(Event.chain_seq).desc()).limit(1))).first()
        if last is None:
            continue
        if first_live is None:
            # Keep the newest row so that the writer can still find the chain head.
            cond.append(col(Event.chain_seq) < last[0])
            last = (await session.exec(select(Event.chain_seq, Event.hash).where(*cond)
                                       .order_by(col(Event.chain_seq).desc()).limit(1))).first()
            if last is None:
                continue
        result = await session.exec(sa.delete(Event).where(*cond))
        deleted += int(result.rowcount or 0)
        checkpoint = await session.get(ChainCheckpoint, chain)
        if checkpoint is None:
            checkpoint = ChainCheckpoint(chain=chain, chain_seq=int(last[0]), hash=str(last[1]),
                                         purged_at=now)
        else:
            checkpoint.chain_seq, checkpoint.hash, checkpoint.purged_at = (
                int(last[0]), str(last[1]), now)
        session.add(checkpoint)
    return int(redacted.rowcount or 0), deleted


async def household_exists(session: AsyncSession, household_id: str) -> bool:
    """True when the household is registered."""
    return await session.get(Household, household_id) is not None


def event_dict(row: Event) -> dict[str, Any]:
    """A JSON-ready view of one stored event (the supervision record's row)."""
    payload = row.payload
    text: str | None = None
    if payload is not None:
        try:
            text = payload.decode("utf-8")
        except UnicodeDecodeError:
            text = "base64:" + base64.b64encode(payload).decode("ascii")
    return {
        "chain": row.chain, "chain_seq": row.chain_seq, "received_at":
            as_utc(row.received_at).isoformat(), "sensor": row.sensor_id,
        "household": row.household_id, "kind": row.kind, "contact": row.contact,
        "battery": row.battery, "device_time": None if row.device_time is None
        else as_utc(row.device_time).isoformat(), "seq": row.seq, "topic": row.topic,
        "payload": text, "dead_reason": row.dead_reason, "hash": row.hash,
    }


async def export_events(session: AsyncSession, household_id: str, start: datetime | None,
                        end: datetime | None) -> list[dict[str, Any]]:
    """The household's events in ``[start, end)``, oldest first."""
    query = select(Event).where(col(Event.household_id) == household_id)
    if start is not None:
        query = query.where(col(Event.received_at) >= start)
    if end is not None:
        query = query.where(col(Event.received_at) < end)
    rows = (await session.exec(query.order_by(col(Event.received_at), col(Event.id)))).all()
    return [event_dict(r) for r in rows]
