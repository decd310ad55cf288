"""The ticket tables: transactions, guarded writes and row reads. No rules live here.

Opening is idempotent *by the database*: a partial unique index allows one active ticket
per fault key, and tickets are inserted with ``INSERT ... ON CONFLICT DO NOTHING``.

Each write transaction (:meth:`TicketRepository.transaction`) reads the rows the rules
need, then applies their decision with statements guarded by those rows (``WHERE id = ..
AND state = ..``). A guard that matches nothing, or an insert that loses to the unique
index, raises :class:`StaleReadError`, and the transaction starts again from a fresh
read. Locks make that rare:

- SQLite: the first statement takes the write lock (a write matching no row), so the
  reads see what the writes apply to and a writer waits on the busy timeout.
- PostgreSQL: the rows of the event's fault key are read ``FOR NO KEY UPDATE``, child
  links before tickets, the order the fault-event writers use; a deadlock with an
  operator's resolve (ticket, then its children) is retried, as before.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import fields
from datetime import datetime
from typing import Any, TypeVar, cast

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError
from sqlalchemy.ext.asyncio import AsyncConnection

from netguard.clock import as_utc
from netguard.errors import StoreError, StoreUnavailableError
from netguard.faults import Severity
from netguard.store.db import Store
from netguard.tickets.domain import (
    ACTIVE_SQL,
    ACTIVE_STATES,
    ChildFault,
    StoredFault,
    TicketAction,
    TicketEvent,
    TicketFilter,
    TicketState,
)
from netguard.tickets.models import (
    CHILD,
    CHILD_ACTIVE,
    CHILD_ACTIVE_PREDICATE,
    EVENT,
    SYSTEM_ACTOR,
    TICKET,
)
from netguard.tickets.policy import (
    BumpTicket,
    ChildFacts,
    ClearTicket,
    FaultFacts,
    ReopenTicket,
    SuppressChild,
    TicketFacts,
    Transition,
)
from netguard.tickets.queries import (
    COUNTS_SQL,
    SELECT_TICKETS,
    child_from_row,
    event_from_row,
    list_query,
    parse_time,
    sqlite_param,
)

log = logging.getLogger("netguard.tickets")
T = TypeVar("T")

ATTEMPTS = 8
_ACTIVE = tuple(s.value for s in ACTIVE_STATES)
# PostgreSQL: serialization_failure, deadlock_detected. Retried like a lost insert race.
_RETRY_SQLSTATES = {"40001", "40P01"}
# The rules' records name the columns they are read from.
_TICKET_FACTS = tuple(TICKET.c[f.name] for f in fields(TicketFacts))
_CHILD_FACTS = tuple(CHILD.c[f.name] for f in fields(ChildFacts))
# What opening a ticket for a child needs from its link.
CHILD_FIELDS = (CHILD.c.id, CHILD.c.fault_key, CHILD.c.category, CHILD.c.site,
                CHILD.c.severity, CHILD.c.summary, CHILD.c.reasons, CHILD.c.first_seen)


class StaleReadError(Exception):
    """A guarded write found its row changed since it was read (internal: the
    transaction starts again, see :meth:`TicketRepository.transaction`)."""


def _sqlstate(exc: DBAPIError) -> str | None:
    orig = exc.orig
    return cast(str | None, getattr(orig, "sqlstate", None) or getattr(orig, "pgcode", None))


def _utc(values: dict[str, Any]) -> dict[str, Any]:
    """Column values with every timestamp in UTC (SQLite keeps the wall time only)."""
    return {k: as_utc(v) if isinstance(v, datetime) else v for k, v in values.items()}


def _reasons(value: Any) -> tuple[str, ...]:
    return tuple(str(r) for r in value) if isinstance(value, list) else ()


def _opt(value: Any) -> datetime | None:
    return None if value is None else parse_time(value)


def ticket_facts(row: Any) -> TicketFacts:
    """A row selected with ``_TICKET_FACTS`` as the rules' record."""
    return TicketFacts(
        id=int(row.id), state=TicketState(row.state), severity=Severity(row.severity),
        target=row.target, first_seen=parse_time(row.first_seen),
        opened_at=parse_time(row.opened_at), sla_due=parse_time(row.sla_due),
        cleared_at=_opt(row.cleared_at), resolved_at=_opt(row.resolved_at),
        acknowledged_at=_opt(row.acknowledged_at), assignee=row.assignee)


def child_facts(row: Any) -> ChildFacts:
    """A row selected with ``_CHILD_FACTS`` as the rules' record."""
    return ChildFacts(id=int(row.id), ticket_id=row.ticket_id, fault_key=row.fault_key,
                      target=row.target, upstream_target=row.upstream_target,
                      first_seen=parse_time(row.first_seen))


class TicketRepository:
    """The ticket tables of one store.

    Args:
        store: An open :class:`~netguard.store.Store`.
    """

    def __init__(self, store: Store) -> None:
        self._store = store

    def text_params(self, params: dict[str, Any]) -> dict[str, Any]:
        """Parameters for plain-SQL queries: untyped, so SQLite needs its storage form."""
        if self._store.dialect != "sqlite":
            return params
        return {k: sqlite_param(v) for k, v in params.items()}

    async def transaction(self, work: Callable[[TicketTx], Awaitable[T]], *, now: datetime,
                          on_conflict: Callable[[], Exception] | None = None) -> T:
        """Run ``work`` in one write transaction, starting again on a lost race.

        Args:
            work: Reads, decides and writes; called again from scratch on a retry.
            now: The wall time stamped as ``updated_at``.
            on_conflict: Build the error to raise on a unique violation instead of
                retrying (for operator actions, where a conflict is the answer).

        Raises:
            StoreUnavailableError: The database could not be reached.
            StoreError: The database failed, or the race kept being lost.
        """
        for attempt in range(1, ATTEMPTS + 1):
            try:
                async with self._store.engine.begin() as conn:
                    return await self._attempts(TicketTx(conn, self._store.dialect, now), work)
            except StaleReadError:
                log.debug("ticket rows changed under a decision (attempt %d), retrying",
                          attempt)
            except IntegrityError as exc:
                if on_conflict is not None:
                    raise on_conflict() from exc
                log.debug("ticket write lost a race (attempt %d), retrying", attempt)
            except OperationalError as exc:
                if _sqlstate(exc) in _RETRY_SQLSTATES and attempt < ATTEMPTS:
                    continue
                raise StoreUnavailableError(f"database failed: {exc.orig}") from exc
            except DBAPIError as exc:
                if _sqlstate(exc) in _RETRY_SQLSTATES and attempt < ATTEMPTS:
                    continue
                raise StoreError(f"database failed: {exc.orig}") from exc
        raise StoreError(f"ticket write kept conflicting after {ATTEMPTS} attempts")

    @staticmethod
    async def _attempts(tx: TicketTx, work: Callable[[TicketTx], Awaitable[T]]) -> T:
        """Run ``work``; a stale read before any write is retried in the same
        transaction (each statement reads committed data afresh), keeping the connection
        instead of queueing for another one."""
        await tx.lock()
        for _ in range(ATTEMPTS - 1):
            try:
                return await work(tx)
            except StaleReadError:
                if tx.wrote:
                    raise
        return await work(tx)

    # ------------------------------------------------------------------ plain reads

    async def ticket_row(self, ticket_id: int) -> tuple[Any, ...] | None:
        """One ticket in :data:`~netguard.tickets.queries.TICKET_COLUMNS` order."""
        async with self._store.engine.connect() as conn:
            row = await TicketTx(conn, self._store.dialect, None).ticket_row(ticket_id)
        return None if row is None else tuple(row)

    async def detail_rows(self, ticket_id: int, ref: Callable[[int], str]
                          ) -> tuple[tuple[Any, ...] | None, list[ChildFault],
                                     list[TicketEvent]]:
        """A ticket's row, its child links and its history, in one connection (``ref``
        formats the ids of the tickets children were promoted to)."""
        async with self._store.engine.connect() as conn:
            row = await TicketTx(conn, self._store.dialect, None).ticket_row(ticket_id)
            child_rows = (await conn.execute(
                sa.select(CHILD).where(CHILD.c.ticket_id == ticket_id)
                .order_by(CHILD.c.id))).all()
            event_rows = (await conn.execute(
                sa.select(EVENT).where(EVENT.c.ticket_id == ticket_id)
                # Observed times may precede recorded actions (a late backlog): time order.
                .order_by(EVENT.c.at, EVENT.c.id))).all()
        return ((None if row is None else tuple(row)),
                [child_from_row(r, ref) for r in child_rows],
                [event_from_row(r) for r in event_rows])

    async def list_rows(self, flt: TicketFilter, now: datetime) -> AsyncIterator[tuple[Any, ...]]:
        """Stream the rows a filter selects (the SQL of :func:`.queries.list_query`)."""
        sql, params = list_query(flt, now)
        async with self._store.engine.connect() as conn:
            async for row in await conn.stream(sa.text(sql), self.text_params(params)):
                yield tuple(row)

    async def count_rows(self, now: datetime) -> list[tuple[str, str, int, int]]:
        """``(category, severity, active, overdue)`` of active tickets: one GROUP BY."""
        async with self._store.engine.connect() as conn:
            rows = (await conn.execute(sa.text(COUNTS_SQL),
                                       self.text_params({"now": now}))).all()
        return [(c, s, int(n), int(late or 0)) for c, s, n, late in rows]

    async def hold_expired(self, cutoff: datetime) -> list[tuple[int, str | None]]:
        """``(id, fault key)`` of active tickets cleared at or before ``cutoff``."""
        async with self._store.engine.connect() as conn:
            rows = (await conn.execute(
                sa.select(TICKET.c.id, TICKET.c.fault_key)
                .where(TICKET.c.state.in_(_ACTIVE), TICKET.c.cleared_at.is_not(None),
                       TICKET.c.cleared_at <= as_utc(cutoff))
                .order_by(TICKET.c.id))).all()
        return [(int(r.id), r.fault_key) for r in rows]

    async def active_faults(self) -> list[StoredFault]:
        """The faults the store still holds active, for the probes after a restart.

        Active means a fault ticket that is open or acknowledged and not in its resolve
        hold (that one already got its clear), or an active child link (with the upstream
        it is suppressed by). Child links come first, so a caller keying on the fault key
        lets the ticket win.
        """
        tickets = (sa.select(TICKET.c.fault_key, TICKET.c.reasons, TICKET.c.summary,
                             TICKET.c.severity)
                   .where(TICKET.c.source == "fault", TICKET.c.fault_key.is_not(None),
                          TICKET.c.state.in_(_ACTIVE), TICKET.c.cleared_at.is_(None)))
        children = (sa.select(CHILD.c.fault_key, CHILD.c.upstream_target, CHILD.c.reasons,
                              CHILD.c.summary, CHILD.c.severity)
                    .where(CHILD.c.state == CHILD_ACTIVE))
        async with self._store.engine.connect() as conn:
            links = (await conn.execute(children)).all()
            own = (await conn.execute(tickets)).all()
        found = [StoredFault(r.fault_key, r.upstream_target, _reasons(r.reasons), r.summary,
                             r.severity) for r in links]
        found += [StoredFault(r.fault_key, None, _reasons(r.reasons), r.summary, r.severity)
                  for r in own]
        return found


class TicketTx:
    """The statements of one transaction (or one read-only connection).

    Args:
        conn: The connection, inside ``begin()`` for writes.
        dialect: ``sqlite`` or ``postgresql``.
        now: The wall time stamped as ``updated_at`` (``None`` for read-only use).
    """

    def __init__(self, conn: AsyncConnection, dialect: str, now: datetime | None) -> None:
        self.conn = conn
        self.dialect = dialect
        self._now = now
        self.wrote = False  # a row changed: a stale read now needs a rollback
        self.writer: str | None = None  # a fenced write's cluster epoch, on its audit rows

    @property
    def now(self) -> datetime:
        """The transaction's wall time (none for read-only use)."""
        assert self._now is not None
        return self._now

    async def lock(self) -> None:
        """SQLite: take the write lock now (a write matching no row), so that the reads
        that follow are inside the transaction the writes commit."""
        if self.dialect == "sqlite":
            await self.conn.execute(sa.update(TICKET).where(TICKET.c.id == -1)
                                    .values(overdue=TICKET.c.overdue))

    async def log(self, rows: Sequence[dict[str, Any]]) -> None:
        """Append audit records (see :func:`event_row`)."""
        if rows:
            self.wrote = True
            await self.conn.execute(sa.insert(EVENT), [{**r, "writer": self.writer} for r in rows]
                                    if self.writer else list(rows))

    async def _first(self, stmt: Any, params: dict[str, Any] | None = None) -> Any:
        return (await self.conn.execute(stmt, params)).first()

    async def _write(self, stmt: Any) -> Any:
        """A write ``... RETURNING``: its first row, or ``None`` when it changed nothing."""
        row = (await self.conn.execute(stmt)).first()
        self.wrote = self.wrote or row is not None
        return row

    async def ticket_row(self, ticket_id: int) -> Any:
        """One ticket in listing column order, or ``None``."""
        return await self._first(sa.text(f"{SELECT_TICKETS} WHERE id = :id"), {"id": ticket_id})

    # ------------------------------------------------------------------ fact reads

    def _for_update(self, stmt: Any) -> Any:
        # FOR NO KEY UPDATE: the lock an UPDATE takes; it leaves foreign-key checks of
        # audit rows inserted by others (KEY SHARE) unblocked.
        if self.dialect != "postgresql":
            return stmt
        return stmt.with_for_update(key_share=True)

    async def ticket(self, ticket_id: int) -> TicketFacts | None:
        """One ticket's facts, locked for this transaction."""
        row = await self._first(self._for_update(
            sa.select(*_TICKET_FACTS).where(TICKET.c.id == ticket_id)))
        return None if row is None else ticket_facts(row)

    async def fault(self, key: str, *, upstream: str | None = None) -> FaultFacts:
        """What the store holds about one fault key, its rows locked (children first).

        Args:
            key: The fault key.
            upstream: For a suppressed report: also find the upstream's root ticket and
                whether a human touched the key's own ticket.
        """
        child = await self._first(self._for_update(sa.select(*_CHILD_FACTS).where(
            CHILD.c.fault_key == key, CHILD.c.state == CHILD_ACTIVE)))
        active = await self._first(self._for_update(sa.select(*_TICKET_FACTS).where(
            TICKET.c.fault_key == key, TICKET.c.state.in_(_ACTIVE))))
        resolved = None
        if active is None:
            resolved = await self._first(
                sa.select(*_TICKET_FACTS)
                .where(TICKET.c.fault_key == key, TICKET.c.resolved_at.is_not(None),
                       TICKET.c.state == TicketState.RESOLVED.value)
                .order_by(TICKET.c.resolved_at.desc()).limit(1))
        root, touched = None, False
        if upstream is not None:
            root = await self.root_of(upstream)
            touched = active is not None and await self.touched(int(active.id))
        return FaultFacts(active=None if active is None else ticket_facts(active),
                          resolved=None if resolved is None else ticket_facts(resolved),
                          child=None if child is None else child_facts(child),
                          root=root, touched=touched)

    async def root_of(self, upstream: str) -> int | None:
        """The upstream's active root ticket (most severe, oldest), following chains."""
        row = await self._first(
            sa.select(TICKET.c.id)
            .where(TICKET.c.target == upstream, TICKET.c.state.in_(_ACTIVE),
                   TICKET.c.source == "fault")
            .order_by(TICKET.c.severity_rank, TICKET.c.opened_at, TICKET.c.id).limit(1))
        if row is not None:
            return int(row.id)
        # The upstream is itself suppressed: attach to its root instead.
        row = await self._first(
            sa.select(CHILD.c.ticket_id)
            .where(CHILD.c.target == upstream, CHILD.c.state == CHILD_ACTIVE,
                   CHILD.c.ticket_id.is_not(None)).order_by(CHILD.c.id).limit(1))
        return None if row is None else int(row.ticket_id)

    async def waiting(self, target: str) -> bool:
        """``target`` is itself a suppressed child waiting for its upstream's ticket."""
        return await self._first(sa.select(CHILD.c.id).where(
            CHILD.c.target == target, CHILD.c.state == CHILD_ACTIVE,
            CHILD.c.ticket_id.is_(None)).limit(1)) is not None

    async def touched(self, ticket_id: int) -> bool:
        """A human acted on the ticket: some event in its history is not automatic."""
        return await self._first(sa.select(EVENT.c.id).where(
            EVENT.c.ticket_id == ticket_id, EVENT.c.actor != SYSTEM_ACTOR).limit(1)) is not None

    async def children_of(self, ticket_id: int) -> list[Any]:
        """The active child links under a ticket (:data:`CHILD_FIELDS`), locked."""
        return list((await self.conn.execute(self._for_update(
            sa.select(*CHILD_FIELDS).where(CHILD.c.ticket_id == ticket_id,
                                           CHILD.c.state == CHILD_ACTIVE)
            .order_by(CHILD.c.id)))).all())

    async def orphans(self, cutoff: datetime) -> list[ChildFacts]:
        """Child links waiting for an upstream ticket since at or before ``cutoff``."""
        rows = (await self.conn.execute(self._for_update(
            sa.select(*_CHILD_FACTS)
            .where(CHILD.c.state == CHILD_ACTIVE, CHILD.c.ticket_id.is_(None),
                   CHILD.c.first_seen <= as_utc(cutoff))
            .order_by(CHILD.c.id)))).all()
        return [child_facts(r) for r in rows]

    async def child_fields(self, child_id: int) -> Any:
        """One child link's :data:`CHILD_FIELDS`."""
        return (await self.conn.execute(
            sa.select(*CHILD_FIELDS).where(CHILD.c.id == child_id))).one()

    # --------------------------------------------------------------- ticket writes

    async def insert_ticket(self, values: dict[str, Any]) -> int:
        """Insert a fault ticket unless the key has an active one (the unique index;
        :class:`StaleReadError` when another transaction opened one first)."""
        row = await self._write(self._insert_unless_active(
            TICKET, _utc(values), ACTIVE_SQL).returning(TICKET.c.id))
        if row is None:
            raise StaleReadError
        return int(row.id)

    async def insert_manual(self, values: dict[str, Any]) -> int:
        """Insert a manual ticket (no fault key, so never a conflict)."""
        row = await self._write(sa.insert(TICKET).values(_utc(values)).returning(TICKET.c.id))
        return int(row.id)

    async def _update_ticket(self, ticket_id: int, guard: Sequence[Any],
                             values: dict[str, Any], *returning: Any) -> Any:
        """``UPDATE ticket SET values WHERE id AND guard RETURNING id, ...`` (no match:
        :class:`StaleReadError`, the row changed since it was read)."""
        row = await self._write(
            sa.update(TICKET).where(TICKET.c.id == ticket_id, *guard)
            .values(_utc({"updated_at": self.now, **values}))
            .returning(TICKET.c.id, *returning))
        if row is None:
            raise StaleReadError
        return row

    async def bump(self, bump: BumpTicket, *, at: datetime, summary: str,
                   reasons: Sequence[str]) -> tuple[int, int]:
        """Count a repeat report; returns the ticket's ``(occurrences, flaps)`` after it."""
        at = as_utc(at)
        last_seen = sa.case((TICKET.c.last_seen < at, at), else_=TICKET.c.last_seen)
        values: dict[str, Any] = {"occurrences": TICKET.c.occurrences + 1,
                                  "last_seen": last_seen, "summary": summary,
                                  "reasons": list(reasons)}
        if bump.flap:
            values.update(cleared_at=None, flaps=TICKET.c.flaps + 1)
        if bump.raise_to is not None:
            values.update(severity=bump.raise_to.value, severity_rank=bump.raise_to.rank,
                          sla_due=bump.sla_due)
        hold = TICKET.c.cleared_at.is_not(None) if bump.flap else TICKET.c.cleared_at.is_(None)
        row = await self._update_ticket(bump.ticket_id,
                                        [TICKET.c.state == bump.state.value, hold], values,
                                        TICKET.c.occurrences, TICKET.c.flaps)
        return int(row.occurrences), int(row.flaps)

    async def reopen(self, reopen: ReopenTicket, *, at: datetime, summary: str,
                     reasons: Sequence[str]) -> str | None:
        """Reopen a resolved ticket for a recurrence; returns its target."""
        row = await self._update_ticket(
            reopen.ticket_id, [TICKET.c.state == TicketState.RESOLVED.value],
            {"state": TicketState.OPEN.value, "reopens": TICKET.c.reopens + 1,
             "occurrences": TICKET.c.occurrences + 1, "last_seen": at, "cleared_at": None,
             "resolved_at": None, "overdue": False, "severity": reopen.severity.value,
             "severity_rank": reopen.severity.rank, "sla_due": reopen.sla_due,
             "summary": summary, "reasons": list(reasons)},
            TICKET.c.target)
        return cast(str | None, row.target)

    async def group(self, ticket_id: int, at: datetime) -> None:
        """Resolve a young, untouched ticket as grouped (guarded to be still so)."""
        await self._update_ticket(
            ticket_id, [TICKET.c.state == TicketState.OPEN.value,
                        TICKET.c.acknowledged_at.is_(None), TICKET.c.assignee.is_(None)],
            {"state": TicketState.RESOLVED.value, "resolved_at": at})

    async def clear(self, clear: ClearTicket, at: datetime) -> None:
        """Start the resolve hold of an active ticket."""
        await self._update_ticket(clear.ticket_id, [TICKET.c.state == clear.state.value,
                                                    TICKET.c.cleared_at.is_(None)],
                                  {"cleared_at": at})

    async def transition(self, ticket_id: int, move: Transition,
                         values: dict[str, Any] | None = None, *,
                         cleared_before: datetime | None = None) -> None:
        """Apply an operator action (or the automatic resolve) guarded by the old state;
        ``values`` sets other columns (the assignee), ``cleared_before`` guards the
        automatic resolve (still cleared, at or before that time)."""
        update: dict[str, Any] = dict(values or {})
        if move.new is not move.old:
            update["state"] = move.new.value
        if move.stamp is not None:
            update[move.stamp] = self.now
        if move.action is TicketAction.REOPEN:
            update.update(resolved_at=None, closed_at=None, cleared_at=None, overdue=False,
                          reopens=TICKET.c.reopens + 1, sla_due=move.sla_due)
        guard = [TICKET.c.state == move.old.value]
        if cleared_before is not None:
            guard += [TICKET.c.cleared_at.is_not(None),
                      TICKET.c.cleared_at <= as_utc(cleared_before)]
        await self._update_ticket(ticket_id, guard, update)

    async def mark_overdue(self, now: datetime) -> list[Any]:
        """Flag active tickets past their SLA due time (once each): ``(id, state,
        severity)`` of those flagged now."""
        rows = list((await self.conn.execute(
            sa.update(TICKET).where(TICKET.c.state.in_(_ACTIVE), TICKET.c.overdue.is_(False),
                                    TICKET.c.sla_due <= as_utc(now))
            .values(overdue=True)
            .returning(TICKET.c.id, TICKET.c.state, TICKET.c.severity))).all())
        self.wrote = self.wrote or bool(rows)
        return rows

    # ---------------------------------------------------------------- child writes

    async def _update_child(self, child_id: int, values: dict[str, Any], *,
                            active: bool = True) -> None:
        guard = [CHILD.c.state == CHILD_ACTIVE] if active else []
        if await self._write(sa.update(CHILD).where(CHILD.c.id == child_id, *guard)
                             .values(_utc(values)).returning(CHILD.c.id)) is None:
            raise StaleReadError

    async def end_child(self, child_id: int, state: str, at: datetime, *,
                        seen: bool) -> None:
        """End an active child link as ``promoted`` or ``cleared`` (``seen``: the event
        at ``at`` was a sighting of the fault, so it is its last one too)."""
        values: dict[str, Any] = {"state": state, "ended_at": at}
        if seen:
            values["last_seen"] = at
        await self._update_child(child_id, values)

    async def set_promoted(self, child_id: int, ticket_id: int) -> None:
        """Name the ticket a promoted child is tracked on now."""
        await self._update_child(child_id, {"promoted_ticket_id": ticket_id}, active=False)

    async def link_child(self, child_id: int, root: int) -> None:
        """Link a waiting child to its upstream's root ticket."""
        await self._update_child(child_id, {"ticket_id": root})

    async def suppress(self, child: SuppressChild, *, key: str, target: str, category: str,
                       site: str | None, summary: str, reasons: Sequence[str],
                       at: datetime) -> None:
        """Record a suppressed report: count it on the key's active link, or insert one
        (:class:`StaleReadError` when the link ended or another was inserted first)."""
        values: dict[str, Any] = {"last_seen": at, "upstream_target": child.upstream,
                                  "ticket_id": child.root, "severity": child.severity.value,
                                  "summary": summary, "reasons": list(reasons)}
        if child.child_id is not None:
            values["occurrences"] = CHILD.c.occurrences + 1
            await self._update_child(child.child_id, values)
            return
        values.update(fault_key=key, target=target, state=CHILD_ACTIVE, category=category,
                      site=site, first_seen=child.first_seen, occurrences=1)
        if await self._write(self._insert_unless_active(
                CHILD, _utc(values), CHILD_ACTIVE_PREDICATE).returning(CHILD.c.id)) is None:
            raise StaleReadError

    async def adopt(self, ticket_id: int, target: str | None) -> list[str]:
        """Attach the children waiting for ``target``'s ticket to ``ticket_id``; returns
        their fault keys. Waiting children of the children just adopted come too (a chain
        whose middle was grouped before the root had a ticket); bounded, as chains are
        short."""
        if target is None:
            return []
        up = CHILD.alias("up")
        linked = sa.select(up.c.target).where(up.c.ticket_id == ticket_id,
                                              up.c.state == CHILD_ACTIVE)
        adopted: list[str] = []
        for depth in range(ATTEMPTS):
            upstreams = (CHILD.c.upstream_target == target if depth == 0
                         else CHILD.c.upstream_target.in_(linked.scalar_subquery()))
            rows = (await self.conn.execute(
                sa.update(CHILD).where(upstreams, CHILD.c.state == CHILD_ACTIVE,
                                       CHILD.c.ticket_id.is_(None))
                .values(ticket_id=ticket_id).returning(CHILD.c.fault_key))).all()
            adopted += [r.fault_key for r in rows]
            self.wrote = self.wrote or bool(rows)
            if not rows:
                break
        return adopted

    async def move_children(self, from_ticket: int, to_ticket: int | None) -> list[str]:
        """Move the active child links of one ticket under another; their fault keys."""
        rows = (await self.conn.execute(
            sa.update(CHILD).where(CHILD.c.ticket_id == from_ticket,
                                   CHILD.c.state == CHILD_ACTIVE)
            .values(ticket_id=to_ticket).returning(CHILD.c.fault_key))).all()
        self.wrote = self.wrote or bool(rows)
        return [r.fault_key for r in rows]

    def _insert_unless_active(self, table: sa.Table, values: dict[str, Any],
                              predicate: str) -> Any:
        """``INSERT ... ON CONFLICT (fault_key) WHERE <predicate> DO NOTHING``.

        ``predicate`` must be the text of the partial unique index's WHERE clause, so that
        both databases match the conflict target to that index.
        """
        insert = pg_insert if self.dialect == "postgresql" else sqlite_insert
        return insert(table).values(values).on_conflict_do_nothing(
            index_elements=["fault_key"], index_where=sa.text(predicate))
