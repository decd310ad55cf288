"""Anchors: the event log's chain heads, kept where the database account cannot reach.

The hash chain (:mod:`netguard.iot.eventlog`) shows an edited, inserted or deleted row,
but not a chain cut short at its newest rows, a chain deleted whole, or an older backup
restored: what is left still links. An *anchor* records every chain's head (sequence and
hash, and where its checkpoint stands) at a wall time, outside the database, in three
places an auditor can keep:

* one JSON line appended to an anchor file (``iot.audit_anchor.file``), fsync'd, with an
  HMAC over the line when ``iot.audit_key`` is set;
* the same line logged at INFO (``audit anchor``), so the journal holds a copy;
* the metrics ``netguard_audit_anchor_sequence{chain}`` and
  ``netguard_audit_anchor_timestamp_seconds``.

:func:`check` proves against anchors that nothing after them was truncated (each anchored
head is still there with the same hash, and the chain goes on from it) and that no
anchored chain vanished. On start-up :meth:`Anchorer.check_start` refuses to carry on from
a head older than the last anchor; an operator who restored a backup on purpose records
that with ``netguard audit accept-head``, which appends an ``accept`` line: checks start
again from the newest such line.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import hmac
import json
import logging
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

import sqlalchemy as sa
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from netguard.clock import Clock, as_utc
from netguard.errors import StoreError
from netguard.iot.eventlog import GENESIS
from netguard.iot.models import ChainCheckpoint, Event
from netguard.store import Store

log = logging.getLogger(__name__)

ANCHOR_VERSION = 1
AnchorKind = Literal["anchor", "accept"]
# Lines longer than this are not anchors (and are never read whole into memory twice).
_MAX_LINE = 1 << 20
# Row hashes fetched per query when checking many anchored sequence numbers.
_IN_BATCH = 500


class AnchorError(StoreError):
    """The event log is behind its anchors (rows deleted, an older backup restored), or
    the anchor file cannot be used."""


@dataclass(frozen=True, slots=True)
class ChainHead:
    """Where one chain stands: its newest row, and its checkpoint (``tail``).

    Attributes:
        chain: The chain name (the intake's MQTT client id).
        seq: The newest row's ``chain_seq`` (the checkpoint's when no row is left).
        hash: That row's hash.
        tail_seq: The checkpoint's ``chain_seq`` (0 without a checkpoint).
        tail_hash: The checkpoint's hash (:data:`GENESIS` without one).
        tail_bound: The checkpoint is bound to its row (written by this version or a
            later one); only read from the store, never from an anchor file.
    """

    chain: str
    seq: int
    hash: str
    tail_seq: int = 0
    tail_hash: str = GENESIS
    tail_bound: bool = True


@dataclass(frozen=True, slots=True)
class Anchor:
    """One anchor line: every chain's head at a wall time.

    Attributes:
        at: When the heads were read (UTC).
        heads: One head per chain, sorted by chain.
        kind: ``anchor`` (periodic, shutdown) or ``accept`` (an operator accepted the
            store as it is, e.g. after restoring a backup).
        note: Who accepted and why (``accept`` lines).
        line: The line number in the file it was read from (0 when not read).
        signed: The line carries an HMAC that was checked.
    """

    at: datetime
    heads: tuple[ChainHead, ...]
    kind: AnchorKind = "anchor"
    note: str = ""
    line: int = 0
    signed: bool = False

    def where(self) -> str:
        """``anchor line N, <time>`` for messages."""
        line = f"anchor line {self.line}" if self.line else "the last anchor line"
        return f"{line}, {self.at.isoformat()}"


def _body(anchor: Anchor) -> dict[str, Any]:
    body: dict[str, Any] = {
        "v": ANCHOR_VERSION, "kind": anchor.kind, "at": as_utc(anchor.at).isoformat(),
        "heads": {h.chain: {"seq": h.seq, "hash": h.hash, "tail_seq": h.tail_seq,
                            "tail_hash": h.tail_hash} for h in anchor.heads},
    }
    if anchor.note:
        body["note"] = anchor.note
    return body


def _canonical(body: dict[str, Any]) -> bytes:
    return json.dumps(body, sort_keys=True, separators=(",", ":"),
                      ensure_ascii=False).encode("utf-8")


def _mac(body: dict[str, Any], key: bytes) -> str:
    # A prefix keeps an anchor MAC from ever equalling a row or checkpoint MAC.
    return hmac.new(key, b"netguard-anchor\n" + _canonical(body), hashlib.sha256).hexdigest()


def anchor_record(anchor: Anchor, key: bytes | None) -> dict[str, Any]:
    """The anchor as the JSON object written to the file and the log (``mac`` when keyed)."""
    body = _body(anchor)
    if key is not None:
        body["mac"] = _mac(body, key)
    return body


def encode_line(anchor: Anchor, key: bytes | None) -> str:
    """One anchor file line, newline included."""
    return json.dumps(anchor_record(anchor, key), sort_keys=True, separators=(",", ":"),
                      ensure_ascii=False) + "\n"


def parse_line(text: str, key: bytes | None, line: int = 0) -> Anchor:
    """Read one anchor line, checking its HMAC when ``key`` is given.

    Raises:
        AnchorError: Not an anchor line, or (with ``key``) unsigned or signed otherwise.
    """
    try:
        data, mac, anchor = _decode(text)
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise AnchorError(f"anchor line {line}: not an anchor line ({exc})") from None
    if key is not None:
        if mac is None:
            raise AnchorError(f"anchor line {line}: carries no HMAC, but audit_key is set "
                              "(written before the key was?)")
        if not isinstance(mac, str) or not hmac.compare_digest(mac, _mac(data, key)):
            raise AnchorError(f"anchor line {line}: HMAC does not match (line edited, or "
                              "signed with another key)")
    return dataclasses.replace(anchor, line=line, signed=key is not None)


def _decode(text: str) -> tuple[dict[str, Any], object, Anchor]:
    data = json.loads(text)
    if not isinstance(data, dict) or data.get("v") != ANCHOR_VERSION:
        raise ValueError("not a version 1 anchor")
    mac = data.pop("mac", None)
    kind = data["kind"]
    if kind not in ("anchor", "accept"):
        raise ValueError(f"unknown kind {kind!r}")
    heads = tuple(ChainHead(str(chain), int(h["seq"]), str(h["hash"]), int(h["tail_seq"]),
                            str(h["tail_hash"]))
                  for chain, h in sorted(data["heads"].items()))
    anchor = Anchor(as_utc(datetime.fromisoformat(data["at"])), heads, kind,
                    str(data.get("note", "")))
    return data, mac, anchor


@dataclass(frozen=True, slots=True)
class AnchorFile:
    """What :func:`read_anchors` found in an anchor file.

    Attributes:
        anchors: The good lines from the newest ``accept`` line on (all when none).
        problems: Lines whose HMAC fails or that are unsigned although a key is set.
        skipped: Lines that are not anchor lines (e.g. one torn by a crash mid-write).
        accepted: The newest ``accept`` line, if any (its note says who and why).
    """

    anchors: tuple[Anchor, ...]
    problems: tuple[str, ...]
    skipped: tuple[str, ...]
    accepted: Anchor | None


def read_anchors(path: Path, key: bytes | None) -> AnchorFile:
    """Read an anchor file (an auditor's copy, or the daemon's own).

    Raises:
        AnchorError: The file cannot be read.
    """
    anchors: list[Anchor] = []
    problems: list[str] = []
    skipped: list[str] = []
    accepted: Anchor | None = None
    try:
        with path.open("r", encoding="utf-8", errors="replace") as handle:
            for number, text in enumerate(handle, start=1):
                if not text.strip():
                    continue
                if len(text) > _MAX_LINE:
                    skipped.append(f"anchor line {number}: longer than {_MAX_LINE} bytes")
                    continue
                try:
                    anchor = parse_line(text, key, number)
                except AnchorError as exc:
                    (skipped if "not an anchor line" in str(exc) else problems).append(str(exc))
                    continue
                if anchor.kind == "accept":
                    anchors.clear()
                    accepted = anchor
                anchors.append(anchor)
    except OSError as exc:
        raise AnchorError(f"cannot read anchor file {path}: {exc.strerror or exc}") from None
    return AnchorFile(tuple(anchors), tuple(problems), tuple(skipped), accepted)


def last_anchor(path: Path, key: bytes | None) -> Anchor | None:
    """The newest good line of the anchor file (None when there is no file or line).

    A torn last line (a crash mid-write) is passed over for the one before it.

    Raises:
        AnchorError: The file cannot be read, or its newest line fails its HMAC.
    """
    if not path.exists():
        return None
    try:
        with path.open("rb") as handle:
            size = handle.seek(0, os.SEEK_END)
            handle.seek(max(0, size - 4 * _MAX_LINE))
            tail = handle.read().decode("utf-8", errors="replace")
    except OSError as exc:
        raise AnchorError(f"cannot read anchor file {path}: {exc.strerror or exc}") from None
    lines = tail.splitlines()
    for index in range(len(lines) - 1, -1, -1):
        text = lines[index]
        if not text.strip():
            continue
        # The line number is known when the whole file was read (0: "near the end").
        number = index + 1 if size <= 4 * _MAX_LINE else 0
        try:
            return parse_line(text, key, number)
        except AnchorError as exc:
            if "not an anchor line" in str(exc):
                log.warning("anchor file: newest line is not an anchor line; using the one "
                            "before", extra={"path": str(path), "problem": str(exc)})
                continue
            raise AnchorError(f"{path}: {exc}") from None
    return None


def append_line(path: Path, line: str) -> None:
    """Append one line and fsync it (and the directory, when the file was created).

    Raises:
        OSError: The file cannot be created or written.
    """
    created = not path.exists()
    if created:
        path.parent.mkdir(mode=0o750, parents=True, exist_ok=True)
    # O_APPEND: one write() per line, so concurrent writers never interleave within a line.
    fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o640)
    try:
        data = line.encode("utf-8")
        size = os.lseek(fd, 0, os.SEEK_END)
        if size and os.pread(fd, 1, size - 1) != b"\n":
            data = b"\n" + data  # end a line torn by a crash, rather than extend it
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    if created:
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)


async def current_heads(session: AsyncSession) -> dict[str, ChainHead]:
    """Every chain's head as the store has it now (chains with rows or a checkpoint)."""
    checkpoints = {c.chain: c for c in (await session.exec(select(ChainCheckpoint))).all()}
    chains = {str(c) for c in (await session.exec(select(Event.chain).distinct())).all()}
    heads: dict[str, ChainHead] = {}
    for chain in sorted(chains | set(checkpoints)):
        cp = checkpoints.get(chain)
        last = (await session.exec(
            select(Event.chain_seq, Event.hash).where(col(Event.chain) == chain)
            .order_by(col(Event.chain_seq).desc()).limit(1))).first()
        tail = (0, GENESIS) if cp is None else (int(cp.chain_seq), cp.hash)
        seq, head = (int(last[0]), str(last[1])) if last is not None else tail
        heads[chain] = ChainHead(chain, seq, head, tail[0], tail[1],
                                 tail_bound=cp is None or cp.received_at is not None)
    return heads


async def _hashes(session: AsyncSession, chain: str, seqs: Iterable[int]) -> dict[int, str]:
    wanted = sorted(set(seqs))
    found: dict[int, str] = {}
    for i in range(0, len(wanted), _IN_BATCH):
        rows = (await session.exec(
            select(Event.chain_seq, Event.hash).where(
                col(Event.chain) == chain,
                col(Event.chain_seq).in_(wanted[i:i + _IN_BATCH])))).all()
        found.update((int(s), str(h)) for s, h in rows)
    return found


async def check(session: AsyncSession, anchors: Sequence[Anchor]) -> list[str]:
    """What the store lost or changed since these anchors; empty when nothing.

    For each chain an anchor names: the chain still exists; its head is not older than
    the newest anchored head (else rows were truncated, or an older backup restored);
    each anchored row still there has the anchored hash, so the current chain extends
    it (:func:`netguard.iot.eventlog.verify` checks the links in between); an anchored
    row no longer there lies behind the checkpoint; and a checkpoint that moved since the
    newest anchor is bound to its row (older checkpoints cannot be told from forged ones).
    """
    current = await current_heads(session)
    anchored: dict[str, dict[int, tuple[str, Anchor]]] = {}
    newest: dict[str, tuple[ChainHead, Anchor]] = {}
    problems: list[str] = []
    for anchor in anchors:
        for head in anchor.heads:
            seen = anchored.setdefault(head.chain, {})
            earlier = seen.get(head.seq)
            if earlier is not None and earlier[0] != head.hash:
                problems.append(f"chain {head.chain!r}: seq {head.seq} has two hashes in the "
                                f"anchors ({earlier[1].where()}; {anchor.where()})")
            seen.setdefault(head.seq, (head.hash, anchor))
            top = newest.get(head.chain)
            if top is None or head.seq >= top[0].seq:
                newest[head.chain] = (head, anchor)
    for chain in sorted(anchored):
        top_head, top_anchor = newest[chain]
        cur = current.get(chain)
        if cur is None:
            problems.append(f"chain {chain!r} is gone: anchored at seq {top_head.seq} "
                            f"({top_anchor.where()}), it has no rows and no checkpoint now "
                            "(deleted whole)")
            continue
        if cur.seq < top_head.seq:
            problems.append(f"chain {chain!r} ends at seq {cur.seq}, but was anchored at seq "
                            f"{top_head.seq} ({top_anchor.where()}): rows "
                            f"{cur.seq + 1}..{top_head.seq} were deleted, or an older backup "
                            "was restored")
        stored = await _hashes(session, chain, (s for s in anchored[chain] if s > cur.tail_seq))
        for seq in sorted(anchored[chain]):
            want, anchor = anchored[chain][seq]
            if seq < cur.tail_seq or seq > cur.seq:
                continue  # behind the checkpoint (verify checks it), or reported above
            got = cur.tail_hash if seq == cur.tail_seq else stored.get(seq)
            if got is None:
                problems.append(f"chain {chain!r}: row seq {seq}, anchored "
                                f"({anchor.where()}), is missing")
                break
            if got != want:
                problems.append(f"chain {chain!r}: row seq {seq} does not have its anchored "
                                f"hash ({anchor.where()}): the chain was rewritten from "
                                "there, or replaced by another copy")
                break
        if cur.tail_seq < top_head.tail_seq:
            problems.append(f"chain {chain!r}: checkpoint at seq {cur.tail_seq} is behind the "
                            f"anchored checkpoint at seq {top_head.tail_seq} "
                            f"({top_anchor.where()}): an older backup was restored")
        elif ((cur.tail_seq, cur.tail_hash) != (top_head.tail_seq, top_head.tail_hash)
              and not cur.tail_bound):
            problems.append(f"chain {chain!r}: checkpoint moved from seq {top_head.tail_seq} "
                            f"({top_anchor.where()}) to seq {cur.tail_seq}, and is not bound "
                            "to its row: a forged checkpoint hides deleted rows")
    return problems


class Anchorer:
    """Takes anchors for the daemon: at start (after checking the last one), every
    ``interval`` seconds while something changed, and at shutdown.

    Args:
        store: The store whose chains are anchored.
        path: The anchor file (None: the log line and the metrics only).
        key: ``iot.audit_key`` (signs each line), or None.
        clock: Wall time for the stamp.
        interval: Seconds between anchors.
    """

    def __init__(self, store: Store, path: Path | None, key: bytes | None, clock: Clock,
                 interval: float) -> None:
        self.store = store
        self.path = path
        self.key = key
        self.clock = clock
        self.interval = interval
        self.last: Anchor | None = None
        self.last_at: datetime | None = None
        self.failures = 0

    async def check_start(self) -> None:
        """Refuse to carry on from heads older than the last anchor in the file.

        Raises:
            AnchorError: One line naming the chain, what is missing, and what to do.
        """
        if self.path is None:
            return
        last = await asyncio.to_thread(last_anchor, self.path, self.key)
        if last is None:
            return
        async with self.store.session() as session:
            problems = await check(session, [last])
        if problems:
            raise AnchorError(
                f"the event log is behind its last anchor in {self.path}: {problems[0]}. "
                "Run `netguard audit verify --anchor FILE`; if you restored a backup on "
                "purpose, record that with `netguard audit accept-head --reason TEXT` "
                "and start again")
        self.last = last

    async def anchor(self, *, kind: AnchorKind = "anchor", note: str = "",
                     force: bool = False) -> Anchor | None:
        """Read the heads and anchor them, unless nothing changed since the last anchor.

        Returns:
            The anchor written, or None when the heads were unchanged (the file's last
            line still anchors them).

        Raises:
            StoreError, OSError: The heads could not be read or the line not written.
        """
        async with self.store.session() as session:
            heads = tuple((await current_heads(session)).values())
        now = self.clock.now()
        if (not force and kind == "anchor" and self.last is not None
                and _same(self.last.heads, heads)):
            self.last_at = now
            return None
        anchor = Anchor(now, heads, kind, note)
        record = anchor_record(anchor, self.key)
        if self.path is not None:
            await asyncio.to_thread(append_line, self.path, encode_line(anchor, self.key))
        # The journal's copy: the same record, its HMAC included.
        log.info("audit anchor", extra={"audit_anchor": record})
        self.last, self.last_at = anchor, now
        return anchor

    async def run(self) -> None:
        """Anchor now and then every ``interval`` seconds until cancelled; a failure is
        logged and counted, and the next interval tries again."""
        while True:
            await self.try_anchor()
            await asyncio.sleep(self.interval)

    async def try_anchor(self, *, force: bool = False) -> Anchor | None:
        """:meth:`anchor`, logging and counting a failure instead of raising it."""
        try:
            return await self.anchor(force=force)
        except (StoreError, OSError, sa.exc.SQLAlchemyError) as exc:
            self.failures += 1
            log.warning("audit anchor failed", extra={"error": str(exc) or type(exc).__name__,
                                                      "failures": self.failures})
            return None

    def sequences(self) -> dict[str, int]:
        """The anchored sequence number per chain (for metrics)."""
        return {} if self.last is None else {h.chain: h.seq for h in self.last.heads}


def _same(a: Sequence[ChainHead], b: Sequence[ChainHead]) -> bool:
    def key(heads: Sequence[ChainHead]) -> list[tuple[str, int, str, int, str]]:
        return [(h.chain, h.seq, h.hash, h.tail_seq, h.tail_hash) for h in heads]
    return key(a) == key(b)
