"""The ticket service: fault events in, tickets out, every change audited.

Opening is idempotent *by the database*: a partial unique index allows one open or
acknowledged ticket per fault key, the service inserts with ``ON CONFLICT DO NOTHING``
and, when it loses the race, updates the winner's counters atomically
(``occurrences = occurrences + 1``). Nothing here checks first and inserts later.

Each operation is one short transaction whose first statement writes, so SQLite takes
its write lock up front (waiting on the busy timeout instead of failing on a stale read
snapshot) and PostgreSQL serialises on the row lock.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from datetime import datetime, timedelta
from typing import Any, TypeVar, cast

import sqlalchemy as sa
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError
from sqlalchemy.ext.asyncio import AsyncConnection

from netguard.clock import Clock, SystemClock, as_utc
from netguard.errors import (
    InvalidTransitionError,
    NotFoundError,
    StoreError,
    StoreUnavailableError,
    TicketConflictError,
)
from netguard.faults import FaultCleared, FaultEvent, FaultOpened, FaultSeverity
from netguard.store.db import Store
from netguard.tickets.config import TicketsConfig
from netguard.tickets.domain import (
    ChildFault,
    SweepResult,
    Ticket,
    TicketAction,
    TicketCounts,
    TicketDetail,
    TicketEvent,
    TicketFilter,
    TicketState,
    allowed_actions,
    format_ref,
    parse_ref,
    raise_severity,
    severity_rank,
    states_allowing,
)
from netguard.tickets.models import ChildFaultRow, TicketEventRow, TicketRow
from netguard.tickets.queries import (
    ACTIVE_SQL,
    COUNTS_SQL,
    SELECT_TICKETS,
    list_query,
    parse_time,
    sqlite_param,
    ticket_from_row,
)

log = logging.getLogger("netguard.tickets")

T = TypeVar("T")

SYSTEM_ACTOR = "netguard"
"""The actor recorded for automatic changes."""

TICKET = cast(sa.Table, TicketRow.__table__)  # type: ignore[attr-defined]
EVENT = cast(sa.Table, TicketEventRow.__table__)  # type: ignore[attr-defined]
CHILD = cast(sa.Table, ChildFaultRow.__table__)  # type: ignore[attr-defined]

ACTIVE = (TicketState.OPEN.value, TicketState.ACKNOWLEDGED.value)


def _check_lengths(table: sa.Table, **values: str | None) -> None:
    """Refuse operator input longer than its column, the same on every database.

    SQLite stores an over-long string as it is; PostgreSQL refuses the whole statement,
    which would surface as "database failed". The limits come from the table itself.

    Raises:
        ValueError: ``name is N characters; at most LIMIT``.
    """
    for name, value in values.items():
        limit = getattr(table.c[name].type, "length", None)
        if value is not None and limit is not None and len(value) > limit:
            raise ValueError(f"{name} is {len(value)} characters; at most {limit}")
_ATTEMPTS = 8
# PostgreSQL: serialization_failure, deadlock_detected. Retried like a lost insert race.
_RETRY_SQLSTATES = {"40001", "40P01"}


def _sqlstate(exc: DBAPIError) -> str | None:
    orig = exc.orig
    return cast(str | None, getattr(orig, "sqlstate", None) or getattr(orig, "pgcode", None))


class TicketService:
    """Turns fault events into tickets and carries out operator actions.

    Args:
        store: An open :class:`~netguard.store.Store`.
        config: Lifecycle timings, SLAs and site criticality.
        clock: The time source (a :class:`~netguard.clock.ManualClock` in tests).
    """

    def __init__(self, store: Store, config: TicketsConfig, *, clock: Clock | None = None
                 ) -> None:
        self._store = store
        self._config = config
        self._clock: Clock = clock or SystemClock()
        self._criticality = {site.id: site.criticality for site in config.sites}
        self._held: set[int] = set()  # cleared tickets the sweep keeps open (logged once)

    # ----------------------------------------------------------------- policy helpers

    def ref(self, ticket_id: int) -> str:
        """The human id of a ticket's primary key."""
        return format_ref(ticket_id, self._config.id_prefix)

    def severity_for(self, severity: FaultSeverity, site: str | None) -> FaultSeverity:
        """The ticket severity: the condition's, raised by the site's criticality."""
        if site is None or site not in self._criticality:
            return severity
        steps = self._config.criticality_raise.get(self._criticality[site], 0)
        return raise_severity(severity, steps)

    def sla_due(self, severity: str, start: datetime) -> datetime:
        """When a ticket of ``severity`` opened at ``start`` must be handled by."""
        minutes = self._config.sla_minutes.get(severity, 1440.0)  # type: ignore[call-overload]
        return start + timedelta(minutes=float(minutes))

    @staticmethod
    def _t(value: datetime) -> datetime:
        """A timestamp for a typed column: always UTC (SQLite drops the offset)."""
        return as_utc(value)

    def _text_params(self, params: dict[str, Any]) -> dict[str, Any]:
        """Parameters for plain-SQL queries: untyped, so SQLite needs its storage form."""
        if self._store.dialect != "sqlite":
            return params
        return {k: sqlite_param(v) for k, v in params.items()}

    # ---------------------------------------------------------------- transactions

    async def _transaction(self, work: Callable[[AsyncConnection], Awaitable[T]], *,
                           on_conflict: Callable[[], Exception] | None = None) -> T:
        """Run ``work`` in one transaction, retrying lost races (unique violations).

        Args:
            work: The statements; called again from scratch on a retry.
            on_conflict: Build the error to raise on a unique violation instead of
                retrying (for operator actions, where a conflict is the answer).
        """
        for attempt in range(1, _ATTEMPTS + 1):
            try:
                async with self._store.engine.begin() as conn:
                    return await work(conn)
            except IntegrityError as exc:
                if on_conflict is not None:
                    raise on_conflict() from exc
                if attempt == _ATTEMPTS:
                    raise StoreError(f"ticket write kept conflicting: {exc.orig}") from exc
                log.debug("ticket write lost a race (attempt %d), retrying", attempt)
            except OperationalError as exc:
                if _sqlstate(exc) in _RETRY_SQLSTATES and attempt < _ATTEMPTS:
                    continue
                raise StoreUnavailableError(f"database failed: {exc.orig}") from exc
            except DBAPIError as exc:
                if _sqlstate(exc) in _RETRY_SQLSTATES and attempt < _ATTEMPTS:
                    continue
                raise StoreError(f"database failed: {exc.orig}") from exc
        raise AssertionError("unreachable")  # pragma: no cover

    def _insert_unless_active(self, table: sa.Table, values: dict[str, Any],
                              predicate: str) -> Any:
        """``INSERT ... ON CONFLICT (fault_key) WHERE <predicate> DO NOTHING``.

        ``predicate`` must be the text of the partial unique index's WHERE clause, so that
        both databases match the conflict target to that index.
        """
        if self._store.dialect == "postgresql":
            from sqlalchemy.dialects.postgresql import insert as pg_insert

            return pg_insert(table).values(values).on_conflict_do_nothing(
                index_elements=["fault_key"], index_where=sa.text(predicate))
        from sqlalchemy.dialects.sqlite import insert as sqlite_insert

        return sqlite_insert(table).values(values).on_conflict_do_nothing(
            index_elements=["fault_key"], index_where=sa.text(predicate))

    async def _log(self, conn: AsyncConnection, rows: Sequence[dict[str, Any]]) -> None:
        if rows:
            await conn.execute(sa.insert(EVENT), list(rows))

    def _event(self, ticket_id: int, at: datetime, action: str, message: str, *,
               actor: str = SYSTEM_ACTOR, old: str | None = None, new: str | None = None
               ) -> dict[str, Any]:
        return {"ticket_id": ticket_id, "at": as_utc(at), "actor": actor, "action": action,
                "old_state": old, "new_state": new, "message": message}

    # ---------------------------------------------------------------- fault events

    async def handle(self, event: FaultEvent) -> Ticket | None:
        """Apply one fault event from the probes.

        ``FaultOpened`` is an idempotent upsert: the first report opens a ticket (or
        reopens one resolved within the reopen window), later reports count occurrences
        (and a flap when the fault was clearing). A fault with ``suppressed_by`` set
        attaches to the upstream's ticket as a child instead of opening its own; if it
        already has a young, untouched ticket of its own (it failed before its upstream
        was seen down), that ticket is resolved as grouped under the upstream's.
        ``FaultCleared`` starts the resolve hold; :meth:`sweep` resolves after it.

        Returns:
            The ticket the event landed on (the upstream's for a suppressed child), or
            ``None`` when there is none (a clear for an unknown fault, a child waiting
            for its upstream's ticket).
        """
        if isinstance(event, FaultOpened):
            suppressed = event.suppressed_by and event.suppressed_by != event.key.target

            async def opened(conn: AsyncConnection) -> Ticket | None:
                ticket_id = await (self._suppressed(conn, event) if suppressed
                                   else self._report(conn, event))
                # Read back in the same transaction: one connection checkout, not two.
                return None if ticket_id is None else await self._ticket(ticket_id, conn)

            return await self._transaction(opened)
        if isinstance(event, FaultCleared):
            ticket_id = await self._transaction(lambda c: self._clear(c, event))
            if ticket_id is not None and self._config.resolve_hold_seconds == 0:
                await self._resolve_cleared(ticket_id, as_utc(event.at))
            return None if ticket_id is None else await self._ticket(ticket_id)
        raise TypeError(f"not a fault event: {event!r}")  # pragma: no cover

    async def _report(self, conn: AsyncConnection, ev: FaultOpened,
                      first_seen: datetime | None = None) -> int:
        key, at = str(ev.key), as_utc(ev.at)
        severity = self.severity_for(ev.severity, ev.site)
        # Suppression lifted while still faulty: the child leaves its upstream's ticket.
        child = (await conn.execute(
            sa.update(CHILD).where(CHILD.c.fault_key == key, CHILD.c.state == "active")
            .values(state="promoted", ended_at=self._t(at), last_seen=self._t(at))
            .returning(CHILD.c.id, CHILD.c.ticket_id, CHILD.c.first_seen))).first()
        if child is not None:
            first_seen = parse_time(child.first_seen)
        for _ in range(_ATTEMPTS):
            ticket_id = (await self._bump(conn, ev, key, severity, at)
                         or await self._reopen_recent(conn, ev, key, severity, at)
                         or await self._insert(conn, ev, key, severity, at,
                                               first_seen=first_seen or at))
            if ticket_id is not None:
                break
        else:
            raise StoreError(f"could not open or update a ticket for {key}")
        if child is not None:
            await conn.execute(sa.update(CHILD).where(CHILD.c.id == child.id)
                               .values(promoted_ticket_id=ticket_id))
            if child.ticket_id is not None:
                await self._log(conn, [self._event(
                    child.ticket_id, at, "child_promoted",
                    f"{key} is no longer suppressed and is still faulty: "
                    f"now tracked as {self.ref(ticket_id)}")])
        return ticket_id

    async def _bump(self, conn: AsyncConnection, ev: FaultOpened, key: str,
                    severity: FaultSeverity, at: datetime) -> int | None:
        """Count a repeat report on the active ticket; a flap if it was clearing."""
        active = sa.and_(TICKET.c.fault_key == key, TICKET.c.state.in_(ACTIVE))
        flap = (await conn.execute(
            sa.update(TICKET).where(active, TICKET.c.cleared_at.is_not(None))
            .values(cleared_at=None, flaps=TICKET.c.flaps + 1)
            .returning(TICKET.c.id, TICKET.c.state, TICKET.c.flaps))).first()
        row = (await conn.execute(
            sa.update(TICKET).where(active)
            .values(occurrences=TICKET.c.occurrences + 1,
                    last_seen=sa.case((TICKET.c.last_seen < self._t(at), self._t(at)),
                                      else_=TICKET.c.last_seen),
                    summary=ev.summary, reasons=list(ev.reasons),
                    updated_at=self._t(self._clock.now()))
            .returning(TICKET.c.id, TICKET.c.state, TICKET.c.occurrences,
                       TICKET.c.severity_rank, TICKET.c.opened_at,
                       TICKET.c.sla_due))).first()
        if row is None:
            return None
        events = []
        if flap is not None:
            events.append(self._event(row.id, at, "flap",
                                      f"fault recurred during the resolve hold "
                                      f"(flap {flap.flaps})", old=row.state, new=row.state))
        events.append(self._event(row.id, at, "repeat",
                                  f"reported again ({row.occurrences} occurrences): "
                                  f"{ev.summary}", old=row.state, new=row.state))
        rank = severity_rank(severity)
        if rank < row.severity_rank:
            due = min(parse_time(row.sla_due), self.sla_due(severity, parse_time(row.opened_at)))
            await conn.execute(sa.update(TICKET).where(TICKET.c.id == row.id).values(
                severity=severity, severity_rank=rank, sla_due=self._t(due)))
            events.append(self._event(row.id, at, "severity", f"severity raised to {severity}",
                                      old=row.state, new=row.state))
        await self._log(conn, events)
        return int(row.id)

    async def _reopen_recent(self, conn: AsyncConnection, ev: FaultOpened, key: str,
                             severity: FaultSeverity, at: datetime) -> int | None:
        """Reopen the ticket resolved within the reopen window, if there is one."""
        prev = TICKET.alias("prev")
        cutoff = at - timedelta(seconds=self._config.reopen_window_seconds)
        recent = (sa.select(prev.c.id)
                  .where(prev.c.fault_key == key, prev.c.state == TicketState.RESOLVED.value,
                         prev.c.resolved_at >= self._t(cutoff))
                  .order_by(prev.c.resolved_at.desc()).limit(1).scalar_subquery())
        row = (await conn.execute(
            sa.update(TICKET).where(TICKET.c.id == recent,
                                    TICKET.c.state == TicketState.RESOLVED.value)
            .values(state=TicketState.OPEN.value, reopens=TICKET.c.reopens + 1,
                    occurrences=TICKET.c.occurrences + 1, last_seen=self._t(at),
                    cleared_at=None, resolved_at=None, overdue=False,
                    severity=severity, severity_rank=severity_rank(severity),
                    sla_due=self._t(self.sla_due(severity, at)),
                    summary=ev.summary, reasons=list(ev.reasons),
                    updated_at=self._t(self._clock.now()))
            .returning(TICKET.c.id, TICKET.c.target, TICKET.c.reopens))).first()
        if row is None:
            return None
        log.info("%s reopened: %s recurred within the reopen window", self.ref(row.id), key)
        await self._log(conn, [self._event(
            row.id, at, "reopened",
            f"fault recurred within the reopen window: {ev.summary}",
            old=TicketState.RESOLVED.value, new=TicketState.OPEN.value)])
        await self._adopt(conn, row.id, row.target, at)
        return int(row.id)

    async def _insert(self, conn: AsyncConnection, ev: FaultOpened, key: str,
                      severity: FaultSeverity, at: datetime, *, first_seen: datetime
                      ) -> int | None:
        """Open a ticket unless an active one exists (then ``None``: the caller retries)."""
        values = {
            "fault_key": key, "source": "fault", "category": ev.category,
            "target": ev.key.target, "site": ev.site, "severity": severity,
            "severity_rank": severity_rank(severity), "state": TicketState.OPEN.value,
            "summary": ev.summary, "reasons": list(ev.reasons),
            "first_seen": self._t(first_seen), "last_seen": self._t(at),
            "opened_at": self._t(at), "updated_at": self._t(self._clock.now()),
            "occurrences": 1, "flaps": 0, "reopens": 0,
            "sla_due": self._t(self.sla_due(severity, at)), "overdue": False,
        }
        stmt = self._insert_unless_active(TICKET, values, ACTIVE_SQL)
        row = (await conn.execute(stmt.returning(TICKET.c.id))).first()
        if row is None:
            return None
        ticket_id = int(row.id)
        log.info("%s opened for %s (%s)", self.ref(ticket_id), key, severity)
        await self._log(conn, [self._event(ticket_id, at, "opened", ev.summary,
                                           new=TicketState.OPEN.value)])
        await self._adopt(conn, ticket_id, ev.key.target, at)
        return ticket_id

    async def _adopt(self, conn: AsyncConnection, ticket_id: int, target: str | None,
                     at: datetime) -> int:
        """Attach children that reported before their upstream's ticket existed."""
        if target is None:
            return 0
        # Waiting children of the children just adopted come too (a chain whose middle
        # was grouped before the root had a ticket); bounded, as a chain is short.
        up = CHILD.alias("up")
        linked = sa.select(up.c.target).where(up.c.ticket_id == ticket_id,
                                              up.c.state == "active")
        total = 0
        for depth in range(_ATTEMPTS):
            upstreams = (CHILD.c.upstream_target == target if depth == 0
                         else CHILD.c.upstream_target.in_(linked.scalar_subquery()))
            rows = (await conn.execute(
                sa.update(CHILD).where(upstreams, CHILD.c.state == "active",
                                       CHILD.c.ticket_id.is_(None))
                .values(ticket_id=ticket_id).returning(CHILD.c.fault_key))).all()
            await self._log(conn, [self._event(ticket_id, at, "child_attached",
                                               f"{r.fault_key} suppressed under this ticket")
                                   for r in rows])
            total += len(rows)
            if not rows:
                break
        return total

    async def _root_of(self, conn: AsyncConnection, upstream: str) -> int | None:
        """The upstream's active root ticket (most severe, oldest), following chains."""
        row = (await conn.execute(
            sa.select(TICKET.c.id)
            .where(TICKET.c.target == upstream, TICKET.c.state.in_(ACTIVE),
                   TICKET.c.source == "fault")
            .order_by(TICKET.c.severity_rank, TICKET.c.opened_at, TICKET.c.id).limit(1))).first()
        if row is not None:
            return int(row.id)
        # The upstream is itself suppressed: attach to its root instead.
        row = (await conn.execute(
            sa.select(CHILD.c.ticket_id)
            .where(CHILD.c.target == upstream, CHILD.c.state == "active",
                   CHILD.c.ticket_id.is_not(None))
            .order_by(CHILD.c.id).limit(1))).first()
        return None if row is None else int(row.ticket_id)

    async def _waiting(self, conn: AsyncConnection, target: str) -> bool:
        """``target`` is itself a suppressed child waiting for its upstream's ticket."""
        row = (await conn.execute(
            sa.select(CHILD.c.id).where(CHILD.c.target == target, CHILD.c.state == "active",
                                        CHILD.c.ticket_id.is_(None)).limit(1))).first()
        return row is not None

    async def _suppressed(self, conn: AsyncConnection, ev: FaultOpened) -> int | None:
        key, at = str(ev.key), as_utc(ev.at)
        upstream = ev.suppressed_by
        assert upstream is not None
        severity = self.severity_for(ev.severity, ev.site)
        first_seen = at
        # Late grouping: the child failed its poll before its upstream and opened a ticket
        # of its own a moment ago. Move it under the root so that one outage is one ticket.
        own = await self._groupable(conn, key, at)
        root = await self._root_of(conn, upstream)
        if own is not None and root != own.id and await self._untouched(conn, own.id):
            await self._group(conn, own.id, root, upstream, at)
            first_seen = parse_time(own.first_seen)
        else:
            # A fault whose own ticket is being worked (or is old) keeps it: moving a ticket
            # out from under an engineer would lose their context and saves no storm.
            own_id = await self._bump(conn, ev, key, severity, at)
            if own_id is not None:
                return own_id
            own = None
        for _ in range(_ATTEMPTS):
            row = (await conn.execute(
                sa.update(CHILD).where(CHILD.c.fault_key == key, CHILD.c.state == "active")
                .values(occurrences=CHILD.c.occurrences + 1, last_seen=self._t(at),
                        upstream_target=upstream, ticket_id=root, severity=severity,
                        summary=ev.summary, reasons=list(ev.reasons))
                .returning(CHILD.c.id))).first()
            if row is not None:
                return root
            values = {
                "ticket_id": root, "fault_key": key, "target": ev.key.target,
                "upstream_target": upstream, "state": "active", "category": ev.category,
                "site": ev.site, "severity": severity, "summary": ev.summary,
                "reasons": list(ev.reasons), "first_seen": self._t(first_seen),
                "last_seen": self._t(at), "occurrences": 1,
            }
            stmt = self._insert_unless_active(CHILD, values, "state = 'active'")
            if (await conn.execute(stmt.returning(CHILD.c.id))).first() is not None:
                if root is not None:
                    grouped = ("" if own is None else
                               f"; its own ticket {self.ref(own.id)} was resolved as grouped")
                    await self._log(conn, [self._event(
                        root, at, "child_attached",
                        f"{key} suppressed under this ticket ({upstream} is down){grouped}")])
                return root
        raise StoreError(f"could not record suppressed fault {key}")

    async def _groupable(self, conn: AsyncConnection, key: str, at: datetime) -> Any:
        """Lock the fault's own ticket if it is young enough to group; else ``None``.

        This write is the transaction's first statement: it takes SQLite's write lock and
        PostgreSQL's row lock, so a human action on the ticket either committed before
        (and :meth:`_untouched` sees its event) or waits and then finds it resolved.
        """
        cutoff = at - timedelta(seconds=self._config.group_window_seconds)
        return (await conn.execute(
            sa.update(TICKET).where(TICKET.c.fault_key == key,
                                    TICKET.c.state == TicketState.OPEN.value,
                                    TICKET.c.acknowledged_at.is_(None),
                                    TICKET.c.assignee.is_(None),
                                    TICKET.c.opened_at >= self._t(cutoff))
            .values(updated_at=self._t(self._clock.now()))
            .returning(TICKET.c.id, TICKET.c.first_seen))).first()

    async def _untouched(self, conn: AsyncConnection, ticket_id: int) -> bool:
        """No human has acted on the ticket: every event in its history is automatic."""
        human = (await conn.execute(
            sa.select(EVENT.c.id).where(EVENT.c.ticket_id == ticket_id,
                                        EVENT.c.actor != SYSTEM_ACTOR).limit(1))).first()
        return human is None

    async def _group(self, conn: AsyncConnection, own_id: int, root: int | None,
                     upstream: str, at: datetime) -> None:
        """Resolve a child's own ticket as grouped under ``root`` (``None``: pending)."""
        row = (await conn.execute(
            sa.update(TICKET).where(TICKET.c.id == own_id,
                                    TICKET.c.state == TicketState.OPEN.value)
            .values(state=TicketState.RESOLVED.value, resolved_at=self._t(at),
                    updated_at=self._t(self._clock.now()))
            .returning(TICKET.c.id))).first()
        if row is None:  # pragma: no cover - the row is locked by _groupable
            raise StoreError(f"{self.ref(own_id)} changed while being grouped")
        under = (self.ref(root) if root is not None
                 else f"the ticket of {upstream} (not open yet)")
        log.info("%s resolved: grouped under %s", self.ref(own_id), under)
        # Faults suppressed under the child's ticket move up with it.
        moved = (await conn.execute(
            sa.update(CHILD).where(CHILD.c.ticket_id == own_id, CHILD.c.state == "active")
            .values(ticket_id=root).returning(CHILD.c.fault_key))).all()
        events = [self._event(own_id, at, "grouped",
                              f"grouped under {under}: upstream {upstream} is down",
                              old=TicketState.OPEN.value, new=TicketState.RESOLVED.value)]
        events += [self._event(own_id, at, "child_moved", f"{r.fault_key} moved to {under}")
                   for r in moved]
        if root is not None:
            events += [self._event(root, at, "child_attached",
                                   f"{r.fault_key} suppressed under this ticket (moved from "
                                   f"{self.ref(own_id)})") for r in moved]
        await self._log(conn, events)

    async def _clear(self, conn: AsyncConnection, ev: FaultCleared) -> int | None:
        key, at = str(ev.key), as_utc(ev.at)
        reason = "; ".join(ev.reasons) or "fault cleared"
        # Children first, tickets second: the same lock order as _report (no deadlocks).
        child = (await conn.execute(
            sa.update(CHILD).where(CHILD.c.fault_key == key, CHILD.c.state == "active")
            .values(state="cleared", ended_at=self._t(at), last_seen=self._t(at))
            .returning(CHILD.c.ticket_id))).first()
        if child is not None and child.ticket_id is not None:
            await self._log(conn, [self._event(child.ticket_id, at, "child_cleared",
                                               f"{key} recovered: {reason}")])
        row = (await conn.execute(
            sa.update(TICKET).where(TICKET.c.fault_key == key, TICKET.c.state.in_(ACTIVE),
                                    TICKET.c.cleared_at.is_(None))
            .values(cleared_at=self._t(at), updated_at=self._t(self._clock.now()))
            .returning(TICKET.c.id, TICKET.c.state))).first()
        if row is None:
            return None if child is None else child.ticket_id
        hold = self._config.resolve_hold_seconds
        await self._log(conn, [self._event(
            row.id, at, "cleared", f"{reason}; resolves after {hold:g}s unless it recurs",
            old=row.state, new=row.state)])
        return int(row.id)

    # ---------------------------------------------------------------- sweep

    async def sweep(self, *, still_active: Callable[[str], bool] | None = None
                    ) -> SweepResult:
        """Resolve tickets whose fault stayed clear for the hold time; mark SLA overdue.

        Also gives children that waited too long for an upstream ticket their own ticket.
        The daemon calls this periodically; it is safe to run from several processes.

        Args:
            still_active: Says whether a fault key (``target|component|condition``) is
                still faulty now, as the probes see it. Such a ticket is not resolved
                even if its hold expired: its ``FaultOpened`` may not have reached the
                store (read-only, failover), and "stayed clear" would be false.
        """
        now = self._clock.now()
        cutoff = now - timedelta(seconds=self._config.resolve_hold_seconds)
        async with self._store.engine.connect() as conn:
            rows = (await conn.execute(
                sa.select(TICKET.c.id, TICKET.c.fault_key)
                .where(TICKET.c.state.in_(ACTIVE), TICKET.c.cleared_at.is_not(None),
                       TICKET.c.cleared_at <= self._t(cutoff))
                .order_by(TICKET.c.id))).all()
        due = [row.id for row in rows if still_active is None or row.fault_key is None
               or not still_active(row.fault_key)]
        held = {int(r.id) for r in rows} - set(due)
        if held - self._held:
            # Once per ticket, not every sweep.
            log.info("not resolving tickets whose fault the probes still see", extra={
                "tickets": ",".join(self.ref(i) for i in sorted(held - self._held))[:500]})
        self._held = held
        resolved: list[str] = []
        promoted: list[str] = []
        for ticket_id in due:
            done, children = await self._resolve_cleared(ticket_id, now)
            if done:
                resolved.append(self.ref(ticket_id))
                promoted.extend(children)
        overdue = await self._transaction(lambda c: self._mark_overdue(c, now))
        orphans, adopted = await self._promote_orphans(now)
        promoted.extend(orphans)
        return SweepResult(resolved=tuple(resolved), overdue=tuple(overdue),
                           promoted=tuple(promoted), adopted=adopted)

    async def _resolve_cleared(self, ticket_id: int, now: datetime) -> tuple[bool, list[str]]:
        cutoff = now - timedelta(seconds=self._config.resolve_hold_seconds)

        async def work(conn: AsyncConnection) -> tuple[bool, list[str]]:
            for state in ACTIVE:
                row = (await conn.execute(
                    sa.update(TICKET).where(TICKET.c.id == ticket_id, TICKET.c.state == state,
                                            TICKET.c.cleared_at.is_not(None),
                                            TICKET.c.cleared_at <= self._t(cutoff))
                    .values(state=TicketState.RESOLVED.value, resolved_at=self._t(now),
                            updated_at=self._t(now))
                    .returning(TICKET.c.id))).first()
                if row is not None:
                    log.info("%s resolved: its fault stayed clear", self.ref(ticket_id))
                    await self._log(conn, [self._event(
                        ticket_id, now, "resolved",
                        f"fault stayed clear for {self._config.resolve_hold_seconds:g}s",
                        old=state, new=TicketState.RESOLVED.value)])
                    return True, await self._promote_children(conn, ticket_id, now)
            return False, []

        return await self._transaction(work)

    async def _promote_children(self, conn: AsyncConnection, ticket_id: int, now: datetime
                                ) -> list[str]:
        """Children still faulty when their root resolves get tickets of their own."""
        rows = (await conn.execute(
            sa.update(CHILD).where(CHILD.c.ticket_id == ticket_id, CHILD.c.state == "active")
            .values(state="promoted", ended_at=self._t(now))
            .returning(CHILD.c.id, CHILD.c.fault_key, CHILD.c.category, CHILD.c.site,
                       CHILD.c.severity, CHILD.c.summary, CHILD.c.reasons,
                       CHILD.c.first_seen, CHILD.c.last_seen))).all()
        refs = []
        for row in rows:
            new_id = await self._open_for_child(conn, row, now)
            await conn.execute(sa.update(CHILD).where(CHILD.c.id == row.id)
                               .values(promoted_ticket_id=new_id))
            await self._log(conn, [self._event(
                ticket_id, now, "child_promoted",
                f"{row.fault_key} still faulty after its upstream recovered: "
                f"now tracked as {self.ref(new_id)}")])
            refs.append(self.ref(new_id))
        return refs

    async def _open_for_child(self, conn: AsyncConnection, row: Any, now: datetime) -> int:
        from netguard.faults import FaultKey

        reasons = row.reasons if isinstance(row.reasons, list) else []
        ev = FaultOpened(key=FaultKey.parse(row.fault_key), category=row.category,
                         site=row.site, severity=row.severity, summary=row.summary,
                         reasons=tuple(str(r) for r in reasons), at=now)
        return await self._report(conn, ev, first_seen=parse_time(row.first_seen))

    async def _mark_overdue(self, conn: AsyncConnection, now: datetime) -> list[str]:
        rows = (await conn.execute(
            sa.update(TICKET).where(TICKET.c.state.in_(ACTIVE), TICKET.c.overdue.is_(False),
                                    TICKET.c.sla_due <= self._t(now))
            .values(overdue=True).returning(TICKET.c.id, TICKET.c.state,
                                            TICKET.c.severity))).all()
        await self._log(conn, [self._event(r.id, now, "overdue",
                                           f"SLA for {r.severity} tickets passed",
                                           old=r.state, new=r.state) for r in rows])
        return [self.ref(r.id) for r in sorted(rows, key=lambda r: int(r.id))]

    async def _promote_orphans(self, now: datetime) -> tuple[list[str], int]:
        """Children whose upstream never got a ticket: adopt late, or open their own."""
        grace = now - timedelta(seconds=self._config.orphan_grace_seconds)

        async def work(conn: AsyncConnection) -> tuple[list[str], int]:
            rows = (await conn.execute(
                sa.update(CHILD).where(CHILD.c.state == "active", CHILD.c.ticket_id.is_(None),
                                       CHILD.c.first_seen <= self._t(grace))
                .values(state="active")  # takes the write lock before reading upstreams
                .returning(CHILD.c.id, CHILD.c.upstream_target))).all()
            refs: list[str] = []
            adopted = 0
            for row in rows:
                root = await self._root_of(conn, row.upstream_target)
                if root is None and await self._waiting(conn, row.upstream_target):
                    # Its upstream is a child still waiting too: whichever ticket that one
                    # lands on (its root's, or its own after the grace) adopts this one.
                    continue
                if root is not None:
                    await conn.execute(sa.update(CHILD).where(CHILD.c.id == row.id)
                                       .values(ticket_id=root))
                    adopted += 1
                    continue
                full = (await conn.execute(
                    sa.update(CHILD).where(CHILD.c.id == row.id, CHILD.c.state == "active")
                    .values(state="promoted", ended_at=self._t(now))
                    .returning(CHILD.c.id, CHILD.c.fault_key, CHILD.c.category,
                               CHILD.c.site, CHILD.c.severity, CHILD.c.summary,
                               CHILD.c.reasons, CHILD.c.first_seen,
                               CHILD.c.last_seen))).first()
                if full is None:
                    continue
                new_id = await self._open_for_child(conn, full, now)
                await conn.execute(sa.update(CHILD).where(CHILD.c.id == row.id)
                                   .values(promoted_ticket_id=new_id))
                refs.append(self.ref(new_id))
            return refs, adopted

        return await self._transaction(work)

    # ---------------------------------------------------------------- metrics

    async def counts(self) -> TicketCounts:
        """Active tickets and overdue ones by ``(category, severity)``: one GROUP BY."""
        now = self._clock.now()
        async with self._store.engine.connect() as conn:
            rows = (await conn.execute(sa.text(COUNTS_SQL),
                                       self._text_params({"now": now}))).all()
        open_: dict[tuple[str, str], int] = {}
        overdue: dict[tuple[str, str], int] = {}
        for category, severity, count, late in rows:
            open_[(category, severity)] = int(count)
            overdue[(category, severity)] = int(late or 0)
        return TicketCounts(open=open_, overdue=overdue)

    # ---------------------------------------------------------------- queries

    def _lookup(self, ref: str) -> int:
        try:
            # With the configured prefix: another installation's id never acts on ours.
            return parse_ref(ref, self._config.id_prefix)
        except ValueError:
            raise NotFoundError("ticket", ref) from None

    async def _ticket(self, ticket_id: int, conn: AsyncConnection | None = None) -> Ticket:
        sql = sa.text(f"{SELECT_TICKETS} WHERE id = :id")
        if conn is None:
            async with self._store.engine.connect() as own:
                row = (await own.execute(sql, {"id": ticket_id})).first()
        else:
            row = (await conn.execute(sql, {"id": ticket_id})).first()
        if row is None:
            raise NotFoundError("ticket", self.ref(ticket_id))
        return ticket_from_row(tuple(row), prefix=self._config.id_prefix,
                               now=self._clock.now())

    async def get(self, ref: str) -> Ticket:
        """One ticket by human id.

        Raises:
            NotFoundError: No such ticket.
        """
        return await self._ticket(self._lookup(ref))

    async def detail(self, ref: str) -> TicketDetail:
        """A ticket with its children and full event history.

        Raises:
            NotFoundError: No such ticket.
        """
        ticket_id = self._lookup(ref)
        async with self._store.engine.connect() as conn:
            ticket = await self._ticket(ticket_id, conn)
            child_rows = (await conn.execute(
                sa.select(CHILD).where(CHILD.c.ticket_id == ticket_id)
                .order_by(CHILD.c.id))).all()
            event_rows = (await conn.execute(
                sa.select(EVENT).where(EVENT.c.ticket_id == ticket_id)
                # Fault events carry the time they were observed, which may precede
                # actions already recorded (a backlog drained late): show time order.
                .order_by(EVENT.c.at, EVENT.c.id))).all()
        children = tuple(ChildFault(
            fault_key=r.fault_key, target=r.target, upstream_target=r.upstream_target,
            state=r.state, severity=r.severity, summary=r.summary,
            first_seen=as_utc(r.first_seen), last_seen=as_utc(r.last_seen),
            ended_at=None if r.ended_at is None else as_utc(r.ended_at),
            occurrences=r.occurrences,
            promoted_to=None if r.promoted_ticket_id is None else self.ref(r.promoted_ticket_id),
        ) for r in child_rows)
        events = tuple(TicketEvent(at=as_utc(r.at), actor=r.actor, action=r.action,
                                   old_state=r.old_state, new_state=r.new_state,
                                   message=r.message) for r in event_rows)
        return TicketDetail(ticket=ticket, children=children, events=events)

    async def list(self, flt: TicketFilter | None = None) -> list[Ticket]:
        """Tickets matching ``flt`` (default: not closed, first page), most urgent first."""
        return [t async for t in self.iter(flt or TicketFilter(limit=self._config.page_size))]

    async def iter(self, flt: TicketFilter) -> AsyncIterator[Ticket]:
        """Stream the tickets matching ``flt`` without loading them all at once."""
        now = self._clock.now()
        sql, params = list_query(flt, now)
        async with self._store.engine.connect() as conn:
            result = await conn.stream(sa.text(sql), self._text_params(params))
            async for row in result:
                yield ticket_from_row(tuple(row), prefix=self._config.id_prefix, now=now)

    # ---------------------------------------------------------------- operator actions

    async def open(self, *, category: str, summary: str, severity: FaultSeverity,
                   actor: str, target: str | None = None, site: str | None = None,
                   message: str = "") -> Ticket:
        """Open a manual ticket (no fault key: it never deduplicates or auto-resolves).

        Raises:
            ValueError: Neither ``target`` nor ``site`` given, or an unknown severity.
        """
        if not target and not site:
            raise ValueError("a manual ticket needs a target or a site")
        if not summary.strip():
            raise ValueError("a manual ticket needs a summary")
        _check_lengths(TICKET, category=category, target=target, site=site, summary=summary)
        _check_lengths(EVENT, actor=actor)
        rank = severity_rank(severity)
        now = self._clock.now()

        async def work(conn: AsyncConnection) -> int:
            row = (await conn.execute(sa.insert(TICKET).values(
                fault_key=None, source="manual", category=category, target=target,
                site=site, severity=severity, severity_rank=rank,
                state=TicketState.OPEN.value, summary=summary, reasons=[],
                first_seen=self._t(now), last_seen=self._t(now), opened_at=self._t(now),
                updated_at=self._t(now), occurrences=1, flaps=0, reopens=0,
                sla_due=self._t(self.sla_due(severity, now)), overdue=False,
            ).returning(TICKET.c.id))).one()
            await self._log(conn, [self._event(row.id, now, "opened", message or summary,
                                               actor=actor, new=TicketState.OPEN.value)])
            return int(row.id)

        return await self._ticket(await self._transaction(work))

    async def _act(self, ref: str, action: TicketAction, actor: str, message: str, *,
                   values: dict[str, Any] | None = None, event_message: str | None = None
                   ) -> Ticket:
        """Apply an operator action atomically: the update names the state it leaves."""
        _check_lengths(EVENT, actor=actor)
        ticket_id = self._lookup(ref)
        now = self._clock.now()
        target = {
            TicketAction.ACKNOWLEDGE: TicketState.ACKNOWLEDGED,
            TicketAction.RESOLVE: TicketState.RESOLVED,
            TicketAction.CLOSE: TicketState.CLOSED,
            TicketAction.REOPEN: TicketState.OPEN,
        }.get(action)

        async def work(conn: AsyncConnection) -> tuple[str, list[str]] | None:
            for state in states_allowing(action):
                new_state = target or state
                update = {"updated_at": self._t(now), **(values or {})}
                if target is not None:
                    update["state"] = new_state.value
                if action is TicketAction.ACKNOWLEDGE:
                    update["acknowledged_at"] = self._t(now)
                elif action is TicketAction.RESOLVE:
                    update["resolved_at"] = self._t(now)
                elif action is TicketAction.CLOSE:
                    update["closed_at"] = self._t(now)
                elif action is TicketAction.REOPEN:
                    update.update(resolved_at=None, closed_at=None, cleared_at=None,
                                  overdue=False, reopens=TICKET.c.reopens + 1)
                row = (await conn.execute(
                    sa.update(TICKET).where(TICKET.c.id == ticket_id,
                                            TICKET.c.state == state.value)
                    .values(update).returning(TICKET.c.id, TICKET.c.severity))).first()
                if row is None:
                    continue
                if action is TicketAction.REOPEN:
                    # A fresh SLA from now, by the ticket's severity.
                    due = self.sla_due(row.severity, now)
                    await conn.execute(sa.update(TICKET).where(TICKET.c.id == ticket_id)
                                       .values(sla_due=self._t(due)))
                await self._log(conn, [self._event(
                    ticket_id, now, _ACTION_EVENT[action], event_message or message,
                    actor=actor, old=state.value, new=new_state.value)])
                promoted: list[str] = []
                if action is TicketAction.RESOLVE:
                    promoted = await self._promote_children(conn, ticket_id, now)
                return state.value, promoted
            return None

        def conflict() -> Exception:
            return TicketConflictError(self.ref(ticket_id), action.value,
                                       "another ticket for the same fault is already open")

        done = await self._transaction(work, on_conflict=conflict)
        if done is None:
            current = await self._ticket(ticket_id)  # raises NotFoundError
            raise InvalidTransitionError(current.ref, current.state.value, action.value,
                                         allowed_actions(current.state))
        return await self._ticket(ticket_id)

    async def acknowledge(self, ref: str, *, actor: str, message: str = "") -> Ticket:
        """``open -> acknowledged``."""
        return await self._act(ref, TicketAction.ACKNOWLEDGE, actor, message)

    async def assign(self, ref: str, assignee: str, *, actor: str, message: str = "") -> Ticket:
        """Set the assignee (open or acknowledged tickets)."""
        if not assignee.strip():
            raise ValueError("assignee must not be empty")
        _check_lengths(TICKET, assignee=assignee)
        text = f"assigned to {assignee}" + (f": {message}" if message else "")
        return await self._act(ref, TicketAction.ASSIGN, actor, message,
                               values={"assignee": assignee}, event_message=text)

    async def comment(self, ref: str, message: str, *, actor: str) -> Ticket:
        """Add a comment to the history (any state)."""
        if not message.strip():
            raise ValueError("a comment needs a message")
        return await self._act(ref, TicketAction.COMMENT, actor, message)

    async def resolve(self, ref: str, *, actor: str, message: str) -> Ticket:
        """``open|acknowledged -> resolved``; suppressed children get their own tickets."""
        return await self._act(ref, TicketAction.RESOLVE, actor, message)

    async def close(self, ref: str, *, actor: str, message: str = "") -> Ticket:
        """``resolved -> closed``; closed tickets never reopen automatically."""
        return await self._act(ref, TicketAction.CLOSE, actor, message)

    async def reopen(self, ref: str, *, actor: str, message: str) -> Ticket:
        """``resolved|closed -> open``, with a fresh SLA.

        Raises:
            TicketConflictError: Another ticket for the same fault is already active.
        """
        return await self._act(ref, TicketAction.REOPEN, actor, message)


_ACTION_EVENT: dict[TicketAction, str] = {
    TicketAction.ACKNOWLEDGE: "acknowledged",
    TicketAction.ASSIGN: "assigned",
    TicketAction.COMMENT: "commented",
    TicketAction.RESOLVE: "resolved",
    TicketAction.CLOSE: "closed",
    TicketAction.REOPEN: "reopened",
}
