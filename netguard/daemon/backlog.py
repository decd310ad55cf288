"""Fault events waiting for the ticket store: in order, bounded in memory, spilled to disk.

A poll hands its ``FaultOpened``/``FaultCleared`` events over here and goes on; one writer
delivers them to the ticket service in the order they were raised. While the database
refuses writes (read-only after a failover, disk full, unreachable, hung) they wait:
the first ``memory_limit`` in memory, the rest appended to a journal file (JSON lines,
one event a line) under the state directory, read back in order once memory has room.
At shutdown whatever is still waiting is written to the journal too, and the next start
replays it first, so neither an outage nor a restart during one loses a fault event.

Only when the journal itself holds ``journal_limit`` events (a database gone for days)
are new events dropped, counted and logged; a restart then recovers them the usual way
(the probes re-raise a fault still present; see :mod:`netguard.daemon.continuity`).

In a cluster each event waits with the :class:`~netguard.cluster.members.Epoch` it was
raised under (its writes are fenced by it). The journal keeps it with this process's run
token: an event a previous process left there comes back under incarnation 0, which no
registration has, so it is refused as stale (that process's registration has ended).
"""

from __future__ import annotations

import json
import logging
import os
import secrets
from collections import deque
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from netguard.cluster.members import Epoch
from netguard.faults import FaultCleared, FaultEvent, FaultKey, FaultOpened

if TYPE_CHECKING:
    from netguard.config import Settings

log = logging.getLogger(__name__)

__all__ = ["FaultBacklog", "decode_event", "encode_event", "fault_journal_path"]

Waiting = tuple[FaultEvent, Epoch | None]


def fault_journal_path(settings: Settings) -> Path:
    """Where fault events wait when the backlog in memory is full (and at shutdown)."""
    if settings.daemon.fault_journal is not None:
        return settings.daemon.fault_journal
    sqlite = settings.store.sqlite_file()
    directory = sqlite.parent if sqlite is not None else Path()
    return directory / "fault-events.journal"


def encode_event(event: FaultEvent, epoch: Epoch | None = None, run: str = "") -> str:
    """One journal line (no newline) for ``event`` (with its epoch and the writing
    process's ``run`` token in a cluster; without one, the line is as it always was)."""
    data: dict[str, Any]
    if isinstance(event, FaultOpened):
        data = {"type": "opened", "key": str(event.key), "category": event.category,
                "site": event.site, "severity": event.severity, "summary": event.summary,
                "reasons": list(event.reasons), "at": event.at.isoformat(),
                "suppressed_by": event.suppressed_by, "flaps": event.flaps}
    else:
        data = {"type": "cleared", "key": str(event.key), "at": event.at.isoformat(),
                "reasons": list(event.reasons)}
    if epoch is not None:
        data["epoch"] = [epoch.instance_id, epoch.incarnation, run]
    return json.dumps(data, ensure_ascii=False, separators=(",", ":"))


def decode_event(line: str) -> FaultEvent:
    """The event of one journal line.

    Raises:
        ValueError: The line is not an event this module wrote.
    """
    try:
        data = json.loads(line)
        key = FaultKey.parse(str(data["key"]))
        at = datetime.fromisoformat(str(data["at"]))
        reasons = tuple(str(r) for r in data.get("reasons", ()))
        if data["type"] == "opened":
            return FaultOpened(key=key, category=str(data["category"]),
                               site=None if data["site"] is None else str(data["site"]),
                               severity=data["severity"], summary=str(data["summary"]),
                               reasons=reasons, at=at,
                               suppressed_by=(None if data["suppressed_by"] is None
                                              else str(data["suppressed_by"])),
                               flaps=int(data.get("flaps", 0)))
        if data["type"] == "cleared":
            return FaultCleared(key=key, at=at, reasons=reasons)
    except (KeyError, TypeError, AttributeError, json.JSONDecodeError) as exc:
        raise ValueError(f"not a fault event: {exc}") from None
    raise ValueError(f"unknown event type {data['type']!r}")


def decode_waiting(line: str, run: str) -> Waiting:
    """The event of one journal line and its epoch: incarnation 0 (never registered) when
    a process other than ``run`` wrote it.

    Raises:
        ValueError: The line is not an event this module wrote.
    """
    event = decode_event(line)
    stamp = json.loads(line).get("epoch")
    if stamp is None:
        return event, None
    try:
        instance_id, incarnation, writer = str(stamp[0]), int(stamp[1]), str(stamp[2])
    except (IndexError, TypeError, ValueError) as exc:
        raise ValueError(f"not a fault event: bad epoch {stamp!r}: {exc}") from None
    return event, Epoch(instance_id, incarnation if writer == run else 0)


class FaultBacklog:
    """An ordered queue of fault events: memory first, then the journal file.

    Args:
        journal: The spill file (created on first spill, removed once empty).
        memory_limit: Events kept in memory before new ones go to the journal.
        journal_limit: Events the journal may hold; beyond, new events are dropped.
    """

    def __init__(self, journal: Path, *, memory_limit: int = 10_000,
                 journal_limit: int = 1_000_000) -> None:
        self.journal = journal
        self.memory_limit = memory_limit
        self.journal_limit = journal_limit
        self._memory: deque[Waiting] = deque()
        # Marks the epochs this process journals: only its own are still its epochs.
        self.run = secrets.token_hex(8)
        self._spilled = 0
        self.spilled_total = 0
        self.dropped = 0
        self.unreadable = 0
        self.journal_errors = 0
        if journal.exists():
            self._spilled = self._count_lines()
            if self._spilled:
                log.warning("fault events from the previous run are waiting in the journal; "
                            "they are delivered first", extra={
                                "journal": str(journal), "events": self._spilled})

    def __len__(self) -> int:
        return len(self._memory) + self._spilled

    @property
    def spilled(self) -> int:
        """Events in the journal file now."""
        return self._spilled

    def _count_lines(self) -> int:
        try:
            with self.journal.open("rb") as fh:
                return sum(1 for line in fh if line.strip())
        except OSError as exc:
            self.journal_errors += 1
            log.error("cannot read the fault-event journal", extra={  # noqa: TRY400 - one line: the reason is the message
                "journal": str(self.journal), "error": exc.strerror or str(exc)})
            return 0

    def append(self, event: FaultEvent, epoch: Epoch | None = None) -> bool:
        """Queue ``event`` (raised under ``epoch`` in a cluster) behind everything waiting.

        Returns:
            False if it was dropped (journal full or unwritable; counted in ``dropped``).
        """
        # Once anything is in the journal, newer events go behind it there: order is
        # what keeps a FaultCleared from overtaking its FaultOpened.
        if not self._spilled and len(self._memory) < self.memory_limit:
            self._memory.append((event, epoch))
            return True
        if self._spilled >= self.journal_limit:
            return self._drop(event, "the fault-event journal is full")
        if not self._write([(event, epoch)], append=True):
            return self._drop(event, "the fault-event journal cannot be written")
        self._spilled += 1
        self.spilled_total += 1
        if self._spilled == 1:
            log.warning("fault events wait in the journal: the backlog in memory is full",
                        extra={"journal": str(self.journal),
                               "memory_limit": self.memory_limit})
        return True

    def _drop(self, event: FaultEvent, why: str) -> bool:
        self.dropped += 1
        if self.dropped == 1 or self.dropped % 1000 == 0:
            log.error("%s; dropping new fault events", why, extra={
                "fault": str(event.key), "dropped_total": self.dropped,
                "journal": str(self.journal)})
        return False

    def head(self) -> FaultEvent | None:
        """The oldest waiting event (read from the journal if memory is empty)."""
        if not self._memory and self._spilled:
            self._load()
        return self._memory[0][0] if self._memory else None

    def head_epoch(self) -> Epoch | None:
        """The epoch the event :meth:`head` returned was raised under (``None`` outside a
        cluster)."""
        return None if self.head() is None else self._memory[0][1]

    def pop(self) -> FaultEvent:
        """Remove the oldest event (after :meth:`head` returned it)."""
        return self._memory.popleft()[0]

    def _load(self) -> None:
        """Move the journal's oldest ``memory_limit`` events into memory."""
        try:
            lines = [line for line in self.journal.read_text(encoding="utf-8").splitlines()
                     if line.strip()]
        except OSError as exc:
            self.journal_errors += 1
            log.error("cannot read the fault-event journal; its events stay there", extra={  # noqa: TRY400 - one line: the reason is the message
                "journal": str(self.journal), "error": exc.strerror or str(exc)})
            return
        take, rest = lines[:self.memory_limit], lines[self.memory_limit:]
        for line in take:
            try:
                self._memory.append(decode_waiting(line, self.run))
            except ValueError as exc:
                self.unreadable += 1
                log.error("skipping an unreadable line of the fault-event journal", extra={  # noqa: TRY400 - one line: the reason is the message
                    "journal": str(self.journal), "error": str(exc)})
        if rest:
            self._write_lines(rest)
        else:
            self._remove()
        self._spilled = len(rest)

    def persist(self) -> int:
        """Write the events in memory to the journal, ahead of those already there
        (at shutdown, so that the next start delivers them).

        Returns:
            How many events the journal holds now.
        """
        if not self._memory:
            return self._spilled
        lines = [encode_event(e, epoch, self.run) for e, epoch in self._memory]
        if self._spilled:
            try:
                lines += [line for line in
                          self.journal.read_text(encoding="utf-8").splitlines() if line.strip()]
            except OSError as exc:
                # Rewriting it without its events would lose them: leave it as it is.
                self.journal_errors += 1
                log.error("cannot read the fault-event journal; the events in memory are "  # noqa: TRY400 - one line: the reason is the message
                          "not added to it", extra={"journal": str(self.journal),
                                                    "error": exc.strerror or str(exc)})
                return self._spilled
        if self._write_lines(lines):
            self._memory.clear()
            self._spilled = len(lines)
        return self._spilled

    def discard_memory(self) -> int:
        """Drop the events in memory, counted in ``dropped`` (at shutdown, when the journal
        could not take them).

        Returns:
            How many were dropped.
        """
        lost = len(self._memory)
        self.dropped += lost
        self._memory.clear()
        return lost

    def _write(self, events: list[Waiting], *, append: bool) -> bool:
        text = "".join(encode_event(e, epoch, self.run) + "\n" for e, epoch in events)
        try:
            self.journal.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.journal, os.O_WRONLY | os.O_CREAT
                         | (os.O_APPEND if append else os.O_TRUNC), 0o640)
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                fh.write(text)
        except OSError as exc:
            self.journal_errors += 1
            log.error("cannot write the fault-event journal", extra={  # noqa: TRY400 - one line: the reason is the message
                "journal": str(self.journal), "error": exc.strerror or str(exc)})
            return False
        return True

    def _write_lines(self, lines: list[str]) -> bool:
        """Replace the journal with ``lines`` atomically (write a sibling, rename)."""
        tmp = self.journal.with_name(self.journal.name + ".tmp")
        try:
            self.journal.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o640)
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                fh.write("".join(line + "\n" for line in lines))
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, self.journal)
        except OSError as exc:
            self.journal_errors += 1
            log.error("cannot write the fault-event journal", extra={  # noqa: TRY400 - one line: the reason is the message
                "journal": str(self.journal), "error": exc.strerror or str(exc)})
            return False
        return True

    def _remove(self) -> None:
        try:
            self.journal.unlink(missing_ok=True)
        except OSError as exc:
            self.journal_errors += 1
            log.error("cannot remove the emptied fault-event journal", extra={  # noqa: TRY400 - one line: the reason is the message
                "journal": str(self.journal), "error": exc.strerror or str(exc)})
