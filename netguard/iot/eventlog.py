"""The append-only, hash-chained event log: chaining, verification, retention purge, export.

Each row's ``digest`` is SHA-256 (or HMAC-SHA256 with ``iot.audit_key``) over its
canonical content, and its ``hash`` is SHA-256 (HMAC-SHA256 with the key) over
``prev_hash + digest + received_at``. Rows of one
chain (one intake instance, named by its MQTT client id) are numbered 1, 2, 3, ... by
``chain_seq``, so that any edited, inserted or deleted row breaks either a digest, a link
or the numbering, and :func:`verify` names the first bad row.

The retention purge first *redacts* old rows (clears their content, keeps the digest, so
the links still verify), then deletes the redacted prefix of the chain and records the
last deleted row's hash in a :class:`ChainCheckpoint` where verification resumes. The
checkpoint also keeps that row's ``prev_hash``, ``digest`` and ``received_at``: they must
hash to the checkpoint's hash, so a checkpoint can only be made from a real row, and that
row must be older than the retention period. With the key, the checkpoint carries an
HMAC as well, so nobody without the key can write one.

Stores written before the link and the checkpoint were keyed still verify: a chain's rows
may start with plain SHA-256 links, but once a row links with the key, every later row
must (so a forger cannot append plain links after keyed ones), and a checkpoint without an
HMAC may only precede plainly linked rows.

What the database alone cannot show (newest rows or a whole chain deleted, an older
backup restored) is shown against the anchors kept outside it: :mod:`netguard.iot.anchor`.
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


def link_hash(prev_hash: str, digest: str, received_at: datetime,
              key: bytes | None = None) -> str:
    """The chain link of a row (HMAC-SHA256 when ``key`` is given).

    The receive time is linked outside the digest so that a redacted row keeps it, and a
    redaction before the retention period ended shows.
    """
    data = f"{prev_hash}{digest}{_canon(received_at)}".encode("ascii")
    if key is not None:
        return hmac.new(key, data, hashlib.sha256).hexdigest()
    return hashlib.sha256(data).hexdigest()


def checkpoint_mac(checkpoint: ChainCheckpoint, key: bytes) -> str:
    """The HMAC-SHA256 of a checkpoint's fields: only the key's holder can write one."""
    data = json.dumps(["checkpoint", checkpoint.chain, checkpoint.chain_seq, checkpoint.hash,
                       checkpoint.prev_hash, checkpoint.digest,
                       None if checkpoint.received_at is None
                       else _canon(checkpoint.received_at), _canon(checkpoint.purged_at)],
                      separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    return hmac.new(key, data, hashlib.sha256).hexdigest()


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
            head = link_hash(head, digest, row["received_at"], self._key)
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


KEYED_STORE = "this store is keyed; give audit_key (iot.audit_key or iot.audit_key_file)"
WRONG_KEY = ("no chain verifies from its first row with this audit_key: wrong key "
             "(or the store is not keyed)")


@dataclass(frozen=True, slots=True)
class VerifyReport:
    """The result of :func:`verify`.

    Attributes:
        rows: Rows read.
        chains: Chains found.
        problems: The first bad row of each chain that does not verify.
        key_hint: Set instead of trusting ``problems`` when every chain fails at its first
            row in the way a missing or wrong key makes it fail (:data:`KEYED_STORE`,
            :data:`WRONG_KEY`).
        notes: What verified but deserves a word (e.g. a checkpoint only an anchor can
            vouch for).
    """

    rows: int
    chains: int
    problems: tuple[VerifyProblem, ...]
    key_hint: str | None = None
    notes: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        """True when every chain verifies."""
        return not self.problems and self.key_hint is None


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


# Rows read past a first-row failure to tell a missing or wrong key (no row's digest
# matches) from a real edit of the first row (the rows after it still match).
_KEY_PROBE_ROWS = 20
_MISMATCH_WORDS = ("digest", "hash does not match", "checkpoint HMAC")


async def verify(session: AsyncSession, key: bytes | None = None, *,
                 redacted_before: datetime | None = None) -> VerifyReport:
    """Check every chain; report the first bad row of each.

    Detects an edited row (digest mismatch), an inserted or deleted row (numbering or
    link broken), a row whose stored hash was rewritten, a forged checkpoint (HMAC, or
    fields that do not hash to it), and, given ``redacted_before`` (now minus the
    retention period), a row redacted or deleted while it should still be kept.
    Truncation and restored backups need the anchors: :func:`netguard.iot.anchor.check`.
    """
    chains = [str(c) for c in (await session.exec(select(Event.chain).distinct())).all()]
    problems: list[VerifyProblem] = []
    notes: list[str] = []
    key_like = 0
    total = 0
    for chain in sorted(chains):
        checkpoint = await session.get(ChainCheckpoint, chain)
        walk = _Walk(key, redacted_before)
        problem = walk.start(checkpoint)
        bad: VerifyProblem | None = None
        # The chain fails the way a missing or wrong key makes it fail: at its start, on
        # a digest or HMAC, and no later row matches its digest under this key either.
        suspect = False
        if problem is not None:
            bad = VerifyProblem(chain, walk.expect_seq - 1, None, f"checkpoint: {problem}")
            suspect = any(w in problem for w in _MISMATCH_WORDS)
        first = True
        probed = 0
        async for row in _stream(session, chain):
            total += 1
            if bad is None:
                problem = walk.step(row)
                if problem is not None:
                    bad = VerifyProblem(chain, row.chain_seq, row.id, problem)
                    suspect = first and any(w in problem for w in _MISMATCH_WORDS)
                    if not suspect:
                        break
            elif not suspect or probed >= _KEY_PROBE_ROWS:
                break
            elif not row.purged:
                probed += 1
                if content_digest(row, key) == row.digest:
                    suspect = False  # a later row matches: the first one was edited
                    break
            first = False
        key_like += suspect
        if bad is not None:
            problems.append(bad)
        elif walk.unbound_checkpoint:
            notes.append(f"chain {chain!r}: its checkpoint (seq {walk.expect_seq_start - 1}) "
                         "was written before checkpoints were bound to their row; only an "
                         "anchor can vouch for it")
    hint = None
    if problems and key_like == len(chains):
        hint = KEYED_STORE if key is None else WRONG_KEY
    return VerifyReport(total, len(chains), tuple(problems), hint, tuple(notes))


class _Walk:
    """The state of verifying one chain, row by row."""

    def __init__(self, key: bytes | None, redacted_before: datetime | None) -> None:
        self.key = key
        self.before = redacted_before
        self.expect_seq = self.expect_seq_start = 1
        self.prev = GENESIS
        # Once a row links with the key, a plain link after it is a forgery.
        self.keyed = False
        self.legacy_checkpoint = self.unbound_checkpoint = False

    def start(self, cp: ChainCheckpoint | None) -> str | None:
        if cp is None:
            return None
        self.expect_seq = self.expect_seq_start = cp.chain_seq + 1
        self.prev = cp.hash
        if cp.mac is not None:
            if self.key is None:
                return "checkpoint HMAC cannot be checked without audit_key"
            if not hmac.compare_digest(cp.mac, checkpoint_mac(cp, self.key)):
                return "checkpoint HMAC does not match (forged or edited checkpoint)"
        if cp.prev_hash is None or cp.digest is None or cp.received_at is None:
            if cp.mac is not None:
                return "checkpoint HMAC without its row's fields (forged checkpoint)"
            self.legacy_checkpoint = self.unbound_checkpoint = True
            return None
        if self.key is not None and link_hash(cp.prev_hash, cp.digest, cp.received_at,
                                              self.key) == cp.hash:
            if cp.mac is None:
                # Whoever linked that row with the key would have signed its checkpoint.
                return "checkpoint carries no HMAC, but its row links with the key (forged)"
            self.keyed = True
        elif link_hash(cp.prev_hash, cp.digest, cp.received_at) != cp.hash:
            return "its row's fields do not hash to it (forged checkpoint)"
        if self.before is not None and as_utc(cp.received_at) >= self.before:
            return (f"rows up to seq {cp.chain_seq} were deleted, but that row was received "
                    f"{as_utc(cp.received_at).isoformat()}, within the retention period")
        return None

    def step(self, row: Event) -> str | None:
        problem = self._check(row)
        if problem is None and self.legacy_checkpoint and self.keyed:
            # Only a purge before keyed links wrote checkpoints without an HMAC.
            return ("the checkpoint before this row carries no HMAC, but the row links with "
                    "the key (forged checkpoint: older rows deleted)")
        if (problem is None and row.purged and self.before is not None
                and as_utc(row.received_at) >= self.before):
            problem = "redacted before its retention period ended"
        if problem is None:
            self.expect_seq, self.prev = row.chain_seq + 1, row.hash
            self.legacy_checkpoint = False
        return problem

    def _check(self, row: Event) -> str | None:
        expect_seq, prev = self.expect_seq, self.prev
        if row.chain_seq != expect_seq:
            if row.chain_seq > expect_seq:
                return (f"rows {expect_seq}..{row.chain_seq - 1} are missing (deleted), "
                        f"or this row was inserted")
            return f"unexpected sequence number (expected {expect_seq})"
        if row.prev_hash != prev:
            return ("prev_hash does not match the previous row "
                    "(row inserted or deleted before it)")
        if not row.purged and content_digest(row, self.key) != row.digest:
            return "content does not match its digest (row edited)"
        if self.key is not None and hmac.compare_digest(
                link_hash(prev, row.digest, row.received_at, self.key), row.hash):
            self.keyed = True
            return None
        if self.keyed:
            return "hash does not match its keyed link (row or digest edited)"
        if link_hash(prev, row.digest, row.received_at) != row.hash:
            return "hash does not match (row or digest edited)"
        return None


async def purge(session: AsyncSession, *, cutoff: datetime, now: datetime,
                key: bytes | None = None) -> tuple[int, int]:
    """Apply retention: redact events older than ``cutoff`` of households not in an active
    quarantine (and of no household), then delete each chain's redacted prefix.

    The checkpoint that replaces the deleted rows keeps the last one's link fields, and
    an HMAC with ``key`` (``iot.audit_key``).

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
        last = (await session.exec(select(Event).where(*cond)
                                   .order_by(col(Event.chain_seq).desc()).limit(1))).first()
        if last is None:
            continue
        if first_live is None:
            # Keep the newest row so that the writer can still find the chain head.
            cond.append(col(Event.chain_seq) < last.chain_seq)
            last = (await session.exec(select(Event).where(*cond)
                                       .order_by(col(Event.chain_seq).desc()).limit(1))).first()
            if last is None:
                continue
        # Read before the delete: the row object goes with it.
        seq, head, prev, digest, received_at = (last.chain_seq, last.hash, last.prev_hash,
                                                last.digest, as_utc(last.received_at))
        result = await session.exec(sa.delete(Event).where(*cond)
                                    .execution_options(synchronize_session=False))
        deleted += int(result.rowcount or 0)
        checkpoint = await session.get(ChainCheckpoint, chain)
        if checkpoint is None:
            checkpoint = ChainCheckpoint(chain=chain, chain_seq=0, hash=GENESIS, purged_at=now)
        checkpoint.chain_seq, checkpoint.hash, checkpoint.purged_at = seq, head, now
        checkpoint.prev_hash, checkpoint.digest, checkpoint.received_at = (
            prev, digest, received_at)
        checkpoint.mac = None if key is None else checkpoint_mac(checkpoint, key)
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
