"""The ticket service: fault events in, tickets out, every change audited.

The public API of the ticket area, used by the daemon, the CLI and the demo. Each call is
one short transaction that reads the rows the rules need (:mod:`.repository`), asks the
rules what to do (:mod:`.policy`, pure) and applies the answer through the repository,
writing one audit record per change. Opening stays idempotent *by the database* (a
partial unique index and ``INSERT ... ON CONFLICT DO NOTHING``); a decision whose rows
changed under it is made again from a fresh read.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import datetime
from typing import Any, TypeVar

from netguard.clock import Clock, SystemClock, as_utc
from netguard.errors import (
    InvalidInputError,
    InvalidTransitionError,
    NotFoundError,
    TicketConflictError,
)
from netguard.faults import FaultCleared, FaultEvent, FaultKey, FaultOpened, Severity
from netguard.store.db import Store
from netguard.tickets import policy
from netguard.tickets.config import TicketsConfig
from netguard.tickets.domain import (
    ACTION_EVENT,
    StoredFault,
    SweepResult,
    Ticket,
    TicketAction,
    TicketCounts,
    TicketDetail,
    TicketFilter,
    TicketNews,
    TicketState,
    TicketTally,
    WriteFence,
    allowed_actions,
    as_severity,
    format_ref,
    parse_ref,
)
from netguard.tickets.feed import TicketFeed
from netguard.tickets.models import EVENT, SYSTEM_ACTOR, TICKET, check_lengths, event_row
from netguard.tickets.policy import (
    AdoptOrphan,
    BumpTicket,
    ClearChild,
    ClearTicket,
    FaultAction,
    GroupTicket,
    OpenTicket,
    PromoteChild,
    ReopenTicket,
    SuppressChild,
    Transition,
)
from netguard.tickets.queries import parse_time, ticket_from_row
from netguard.tickets.repository import TicketRepository, TicketTx

log = logging.getLogger("netguard.tickets")

T = TypeVar("T")

__all__ = ["SYSTEM_ACTOR", "TICKET", "TicketService"]

class TicketService:
    """Turns fault events into tickets and carries out operator actions.

    Args:
        store: An open :class:`~netguard.store.Store`.
        config: Lifecycle timings, SLAs and site criticality.
        clock: The time source (a :class:`~netguard.clock.ManualClock` in tests).
        on_change: Called after each committed change (not inside the transaction).
    """

    def __init__(self, store: Store, config: TicketsConfig, *, clock: Clock | None = None,
                 on_change: Callable[[], None] | None = None) -> None:
        self._on_change = on_change  # after each commit (wakes the ticket notifier)
        self._repo = TicketRepository(store)
        self._feed = TicketFeed(store)
        self._config = config
        self._clock: Clock = clock or SystemClock()
        self._held: set[int] = set()  # cleared tickets the sweep keeps open (logged once)

    def ref(self, ticket_id: int) -> str:
        """The human id of a ticket's primary key."""
        return format_ref(ticket_id, self._config.id_prefix)

    def severity_for(self, severity: Severity | str, site: str | None) -> Severity:
        """The ticket severity: the condition's, raised by the site's criticality."""
        return policy.severity_for(severity, site, self._config)

    def sla_due(self, severity: Severity | str, start: datetime) -> datetime:
        """When a ticket of ``severity`` opened at ``start`` must be handled by."""
        return policy.sla_due(severity, start, self._config)

    async def _transaction(self, work: Callable[[TicketTx], Awaitable[T]], *,
                           now: datetime | None = None,
                           on_conflict: Callable[[], Exception] | None = None,
                           fence: WriteFence | None = None) -> T:
        if fence is not None:
            work = _fenced(work, fence)
        done = await self._repo.transaction(work, now=now or self._clock.now(),
                                            on_conflict=on_conflict)
        if self._on_change is not None:
            self._on_change()
        return done

    # ---------------------------------------------------------------- fault events

    async def handle(self, event: FaultEvent, *, fence: WriteFence | None = None
                     ) -> Ticket | None:
        """Apply one fault event from the probes (each transaction ends with ``fence``,
        when given: a cluster member's epoch check).

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
            async def opened(tx: TicketTx) -> Ticket | None:
                ticket_id = await self._report(tx, event)
                # Read back in the same transaction: one connection checkout, not two.
                return None if ticket_id is None else await self._read(ticket_id, tx)

            return await self._transaction(opened, fence=fence)
        if isinstance(event, FaultCleared):
            ticket_id = await self._transaction(lambda tx: self._clear(tx, event), fence=fence)
            if ticket_id is not None and self._config.resolve_hold_seconds == 0:
                await self._resolve_cleared(ticket_id, as_utc(event.at), fence)
            return None if ticket_id is None else await self._read(ticket_id)
        raise TypeError(f"not a fault event: {event!r}")  # pragma: no cover

    async def _report(self, tx: TicketTx, ev: FaultOpened,
                      first_seen: datetime | None = None) -> int | None:
        """Load the key's rows, decide, apply; the ticket the report landed on."""
        suppressed = bool(ev.suppressed_by and ev.suppressed_by != ev.key.target)
        facts = await tx.fault(str(ev.key), upstream=ev.suppressed_by if suppressed else None)
        actions = policy.decide_opened(ev, facts, self._config, first_seen=first_seen)
        landed: int | None = None
        for action in actions:
            landed = await self._apply(tx, ev, action)
        for action in actions:
            if isinstance(action, PromoteChild) and landed is not None:
                await self._promoted(tx, ev, action, landed)
        return landed

    async def _apply(self, tx: TicketTx, ev: FaultOpened, action: FaultAction) -> int | None:
        at = as_utc(ev.at)
        match action:
            case OpenTicket():
                return await self._open(tx, ev, action)
            case BumpTicket():
                return await self._bump(tx, ev, action)
            case ReopenTicket():
                target = await tx.reopen(action, at=at, summary=ev.summary,
                                         reasons=ev.reasons)
                log.info("%s reopened: %s recurred within the reopen window",
                         self.ref(action.ticket_id), ev.key)
                await tx.log([event_row(
                    action.ticket_id, at, "reopened",
                    f"fault recurred within the reopen window: {ev.summary}",
                    old=TicketState.RESOLVED.value, new=TicketState.OPEN.value)])
                await self._adopt(tx, action.ticket_id, target, at)
                return action.ticket_id
            case PromoteChild():
                await tx.end_child(action.child_id, "promoted", at, seen=True)
            case GroupTicket():
                await self._group(tx, action, at)
            case SuppressChild():
                return await self._suppress(tx, ev, action)
            case _:  # pragma: no cover - clears are applied by _clear
                raise TypeError(f"not an action for a report: {action!r}")
        return None

    async def _open(self, tx: TicketTx, ev: FaultOpened, action: OpenTicket) -> int:
        at = as_utc(ev.at)
        ticket_id = await tx.insert_ticket({
            "fault_key": str(ev.key), "source": "fault", "category": ev.category,
            "target": ev.key.target, "site": ev.site, "severity": action.severity.value,
            "severity_rank": action.severity.rank, "state": TicketState.OPEN.value,
            "summary": ev.summary, "reasons": list(ev.reasons),
            "first_seen": action.first_seen, "last_seen": at, "opened_at": at,
            "updated_at": tx.now, "occurrences": 1, "flaps": 0, "reopens": 0,
            "sla_due": action.sla_due, "overdue": False,
        })
        log.info("%s opened for %s (%s)", self.ref(ticket_id), ev.key, action.severity)
        await tx.log([event_row(ticket_id, at, "opened", ev.summary,
                                new=TicketState.OPEN.value)])
        await self._adopt(tx, ticket_id, ev.key.target, at)
        return ticket_id

    async def _bump(self, tx: TicketTx, ev: FaultOpened, action: BumpTicket) -> int:
        at, tid, state = as_utc(ev.at), action.ticket_id, action.state.value
        occurrences, flaps = await tx.bump(action, at=at, summary=ev.summary,
                                           reasons=ev.reasons)
        events = []
        if action.flap:
            events.append(event_row(tid, at, "flap", f"fault recurred during the resolve "
                                                     f"hold (flap {flaps})", old=state, new=state))
        events.append(event_row(tid, at, "repeat", f"reported again ({occurrences} "
                                                   f"occurrences): {ev.summary}",
                                old=state, new=state))
        if action.raise_to is not None:
            events.append(event_row(tid, at, "severity", f"severity raised to "
                                                         f"{action.raise_to}",
                                    old=state, new=state))
        await tx.log(events)
        return tid

    async def _promoted(self, tx: TicketTx, ev: FaultOpened, action: PromoteChild,
                        ticket_id: int) -> None:
        await tx.set_promoted(action.child_id, ticket_id)
        if action.from_ticket is not None:
            await tx.log([event_row(
                action.from_ticket, as_utc(ev.at), "child_promoted",
                f"{ev.key} is no longer suppressed and is still faulty: "
                f"now tracked as {self.ref(ticket_id)}")])

    async def _adopt(self, tx: TicketTx, ticket_id: int, target: str | None,
                     at: datetime) -> None:
        """Attach children that reported before their upstream's ticket existed."""
        adopted = await tx.adopt(ticket_id, target)
        await tx.log([event_row(ticket_id, at, "child_attached",
                                f"{key} suppressed under this ticket") for key in adopted])

    async def _group(self, tx: TicketTx, action: GroupTicket, at: datetime) -> None:
        """Resolve a child's own ticket as grouped under the root (``None``: pending)."""
        own, root = action.ticket_id, action.root
        await tx.group(own, at)
        under = (self.ref(root) if root is not None
                 else f"the ticket of {action.upstream} (not open yet)")
        log.info("%s resolved: grouped under %s", self.ref(own), under)
        # Faults suppressed under the child's ticket move up with it.
        moved = await tx.move_children(own, root)
        events = [event_row(own, at, "grouped",
                            f"grouped under {under}: upstream {action.upstream} is down",
                            old=TicketState.OPEN.value, new=TicketState.RESOLVED.value)]
        events += [event_row(own, at, "child_moved", f"{key} moved to {under}")
                   for key in moved]
        if root is not None:
            events += [event_row(root, at, "child_attached",
                                 f"{key} suppressed under this ticket (moved from "
                                 f"{self.ref(own)})") for key in moved]
        await tx.log(events)

    async def _suppress(self, tx: TicketTx, ev: FaultOpened, action: SuppressChild
                        ) -> int | None:
        at, root = as_utc(ev.at), action.root
        await tx.suppress(action, key=str(ev.key), target=ev.key.target,
                          category=ev.category, site=ev.site, summary=ev.summary,
                          reasons=ev.reasons, at=at)
        if action.child_id is None and root is not None:
            grouped = ("" if action.grouped is None else
                       f"; its own ticket {self.ref(action.grouped)} was resolved as grouped")
            await tx.log([event_row(
                root, at, "child_attached",
                f"{ev.key} suppressed under this ticket ({action.upstream} is down)"
                f"{grouped}")])
        return root

    async def _clear(self, tx: TicketTx, ev: FaultCleared) -> int | None:
        at = as_utc(ev.at)
        reason = "; ".join(ev.reasons) or "fault cleared"
        landed: int | None = None
        for action in policy.decide_cleared(ev, await tx.fault(str(ev.key))):
            if isinstance(action, ClearChild):
                await tx.end_child(action.child_id, "cleared", at, seen=True)
                landed = action.ticket_id
                if action.ticket_id is not None:
                    await tx.log([event_row(action.ticket_id, at, "child_cleared",
                                            f"{ev.key} recovered: {reason}")])
            elif isinstance(action, ClearTicket):
                await tx.clear(action, at)
                hold = self._config.resolve_hold_seconds
                await tx.log([event_row(
                    action.ticket_id, at, "cleared",
                    f"{reason}; resolves after {hold:g}s unless it recurs",
                    old=action.state.value, new=action.state.value)])
                landed = action.ticket_id
        return landed

    # ---------------------------------------------------------------- sweep

    async def sweep(self, *, still_active: Callable[[str], bool] | None = None,
                    fence: WriteFence | None = None) -> SweepResult:
        """Resolve tickets whose fault stayed clear for the hold time; mark SLA overdue.

        Also gives children that waited too long for an upstream ticket their own ticket.
        The daemon calls this periodically; it is safe to run from several processes.

        Args:
            still_active: Says whether a fault key (``target|component|condition``) is
                still faulty now, as the probes see it. Such a ticket is not resolved
                even if its hold expired: its ``FaultOpened`` may not have reached the
                store (read-only, failover), and "stayed clear" would be false.
            fence: Ends each of its transactions (the cluster leader's epoch check).
        """
        now = self._clock.now()
        candidates = await self._repo.hold_expired(policy.resolve_cutoff(now, self._config))
        due, held = policy.split_resolvable(candidates, still_active)
        if held - self._held:
            # Once per ticket, not every sweep.
            log.info("not resolving tickets whose fault the probes still see", extra={
                "tickets": ",".join(self.ref(i) for i in sorted(held - self._held))[:500]})
        self._held = held
        resolved: list[str] = []
        promoted: list[str] = []
        for ticket_id in due:
            done, children = await self._resolve_cleared(ticket_id, now, fence)
            if done:
                resolved.append(self.ref(ticket_id))
                promoted.extend(children)
        overdue = await self._transaction(lambda tx: self._mark_overdue(tx, now), now=now,
                                          fence=fence)
        orphans, adopted = await self._transaction(lambda tx: self._promote_orphans(tx, now),
                                                   now=now, fence=fence)
        promoted.extend(orphans)
        return SweepResult(resolved=tuple(resolved), overdue=tuple(overdue),
                           promoted=tuple(promoted), adopted=adopted)

    async def _resolve_cleared(self, ticket_id: int, now: datetime,
                               fence: WriteFence | None = None) -> tuple[bool, list[str]]:
        async def work(tx: TicketTx) -> tuple[bool, list[str]]:
            ticket = await tx.ticket(ticket_id)
            move = (None if ticket is None
                    else policy.decide_resolve_cleared(ticket, now, self._config))
            if move is None:
                return False, []
            await tx.transition(ticket_id, move,
                                cleared_before=policy.resolve_cutoff(now, self._config))
            log.info("%s resolved: its fault stayed clear", self.ref(ticket_id))
            await tx.log([event_row(
                ticket_id, now, "resolved",
                f"fault stayed clear for {self._config.resolve_hold_seconds:g}s",
                old=move.old.value, new=move.new.value)])
            return True, await self._promote_children(tx, ticket_id, now)

        return await self._transaction(work, now=now, fence=fence)

    async def _promote_children(self, tx: TicketTx, ticket_id: int, now: datetime
                                ) -> list[str]:
        """Children still faulty when their root resolves get tickets of their own."""
        refs = []
        for row in await tx.children_of(ticket_id):
            await tx.end_child(row.id, "promoted", now, seen=False)
            new_id = await self._open_for_child(tx, row, now)
            await tx.log([event_row(
                ticket_id, now, "child_promoted",
                f"{row.fault_key} still faulty after its upstream recovered: "
                f"now tracked as {self.ref(new_id)}")])
            refs.append(self.ref(new_id))
        return refs

    async def _open_for_child(self, tx: TicketTx, row: Any, now: datetime) -> int:
        """Report a promoted child's fault as its own (keeping its first sighting)."""
        reasons = row.reasons if isinstance(row.reasons, list) else []
        ev = FaultOpened(key=FaultKey.parse(row.fault_key), category=row.category,
                         site=row.site, severity=row.severity, summary=row.summary,
                         reasons=tuple(str(r) for r in reasons), at=now)
        new_id = await self._report(tx, ev, first_seen=parse_time(row.first_seen))
        assert new_id is not None  # an unsuppressed report always lands on a ticket
        await tx.set_promoted(row.id, new_id)
        return new_id

    async def _mark_overdue(self, tx: TicketTx, now: datetime) -> list[str]:
        rows = await tx.mark_overdue(now)
        await tx.log([event_row(r.id, now, "overdue", f"SLA for {r.severity} tickets passed",
                                old=r.state, new=r.state) for r in rows])
        return [self.ref(r.id) for r in sorted(rows, key=lambda r: int(r.id))]

    async def _promote_orphans(self, tx: TicketTx, now: datetime) -> tuple[list[str], int]:
        """Children whose upstream never got a ticket: adopt late, or open their own."""
        refs: list[str] = []
        adopted = 0
        for child in await tx.orphans(policy.orphan_cutoff(now, self._config)):
            root = await tx.root_of(child.upstream_target)
            waiting = root is None and await tx.waiting(child.upstream_target)
            decision = policy.decide_orphan(child, root, waiting)
            if isinstance(decision, AdoptOrphan):
                await tx.link_child(child.id, decision.root)
                adopted += 1
            elif decision is not None:
                await tx.end_child(child.id, "promoted", now, seen=False)
                row = await tx.child_fields(child.id)
                refs.append(self.ref(await self._open_for_child(tx, row, now)))
        return refs, adopted

    # ---------------------------------------------------------------- queries

    async def counts(self) -> TicketCounts:
        """Active tickets and overdue ones by ``(category, severity)``: one GROUP BY."""
        open_: dict[tuple[str, str], int] = {}
        overdue: dict[tuple[str, str], int] = {}
        for category, severity, count, late in await self._repo.count_rows(self._clock.now()):
            open_[(category, severity)] = count
            overdue[(category, severity)] = late
        return TicketCounts(open=open_, overdue=overdue)

    async def active_faults(self) -> list[StoredFault]:
        """The faults the store holds active: fault tickets open or acknowledged and not
        in their resolve hold, and active child links (see
        :meth:`~netguard.tickets.repository.TicketRepository.active_faults`)."""
        return await self._repo.active_faults()

    async def tally(self) -> TicketTally:
        """All tickets by phase, and the child faults under the active ones."""
        return await self._feed.tally()

    async def news(self, after: int = 0) -> list[TicketNews]:
        """Ticket events after the event id ``after``, oldest first, for a live feed."""
        return await self._feed.news(after, self.ref)

    def _lookup(self, ref: str) -> int:
        try:
            # With the configured prefix: another installation's id never acts on ours.
            return parse_ref(ref, self._config.id_prefix)
        except ValueError:
            raise NotFoundError("ticket", ref) from None

    async def _read(self, ticket_id: int, tx: TicketTx | None = None) -> Ticket:
        row = (await self._repo.ticket_row(ticket_id) if tx is None
               else await tx.ticket_row(ticket_id))
        if row is None:
            raise NotFoundError("ticket", self.ref(ticket_id))
        return ticket_from_row(tuple(row), prefix=self._config.id_prefix,
                               now=self._clock.now())

    async def get(self, ref: str) -> Ticket:
        """One ticket by human id.

        Raises:
            NotFoundError: No such ticket.
        """
        return await self._read(self._lookup(ref))

    async def detail(self, ref: str) -> TicketDetail:
        """A ticket with its children and full event history.

        Raises:
            NotFoundError: No such ticket.
        """
        ticket_id = self._lookup(ref)
        row, children, events = await self._repo.detail_rows(ticket_id, self.ref)
        if row is None:
            raise NotFoundError("ticket", self.ref(ticket_id))
        ticket = ticket_from_row(row, prefix=self._config.id_prefix, now=self._clock.now())
        return TicketDetail(ticket=ticket, children=tuple(children), events=tuple(events))

    async def list(self, flt: TicketFilter | None = None) -> list[Ticket]:
        """Tickets matching ``flt`` (default: not closed, first page), most urgent first."""
        return [t async for t in self.iter(flt or TicketFilter(limit=self._config.page_size))]

    async def iter(self, flt: TicketFilter) -> AsyncIterator[Ticket]:
        """Stream the tickets matching ``flt`` without loading them all at once."""
        now = self._clock.now()
        async for row in self._repo.list_rows(flt, now):
            yield ticket_from_row(row, prefix=self._config.id_prefix, now=now)

    # ---------------------------------------------------------------- operator actions

    async def open(self, *, category: str, summary: str, severity: Severity | str,
                   actor: str, target: str | None = None, site: str | None = None,
                   message: str = "") -> Ticket:
        """Open a manual ticket (no fault key: it never deduplicates or auto-resolves).

        Raises:
            InvalidInputError: Neither ``target`` nor ``site`` given, no summary, an
                unknown severity, or a field longer than its column.
        """
        if not target and not site:
            raise InvalidInputError("a manual ticket needs a target or a site")
        if not summary.strip():
            raise InvalidInputError("a manual ticket needs a summary")
        check_lengths(TICKET, category=category, target=target, site=site, summary=summary)
        check_lengths(EVENT, actor=actor)
        try:
            level = as_severity(severity)
        except ValueError as exc:
            raise InvalidInputError(str(exc)) from None
        now = self._clock.now()

        async def work(tx: TicketTx) -> int:
            ticket_id = await tx.insert_manual({
                "fault_key": None, "source": "manual", "category": category,
                "target": target, "site": site, "severity": level.value,
                "severity_rank": level.rank, "state": TicketState.OPEN.value,
                "summary": summary, "reasons": [], "first_seen": now, "last_seen": now,
                "opened_at": now, "updated_at": now, "occurrences": 1, "flaps": 0,
                "reopens": 0, "sla_due": self.sla_due(level, now), "overdue": False})
            await tx.log([event_row(ticket_id, now, "opened", message or summary,
                                    actor=actor, new=TicketState.OPEN.value)])
            return ticket_id

        return await self._read(await self._transaction(work, now=now))

    async def _act(self, ref: str, action: TicketAction, actor: str, message: str, *,
                   values: dict[str, Any] | None = None, event_message: str | None = None
                   ) -> Ticket:
        """Apply an operator action atomically: the update names the state it leaves."""
        check_lengths(EVENT, actor=actor)
        ticket_id = self._lookup(ref)
        now = self._clock.now()

        async def work(tx: TicketTx) -> Transition | TicketState | None:
            ticket = await tx.ticket(ticket_id)
            if ticket is None:
                return None
            move = policy.decide_action(action, ticket, now, self._config)
            if move is None:
                return ticket.state
            await tx.transition(ticket_id, move, values)
            await tx.log([event_row(ticket_id, now, ACTION_EVENT[action],
                                    event_message or message, actor=actor,
                                    old=move.old.value, new=move.new.value)])
            if move.promote_children:
                await self._promote_children(tx, ticket_id, now)
            return move

        def conflict() -> Exception:
            return TicketConflictError(self.ref(ticket_id), action.value,
                                       "another ticket for the same fault is already open")

        done = await self._transaction(work, now=now, on_conflict=conflict)
        if done is None:
            raise NotFoundError("ticket", self.ref(ticket_id))
        if isinstance(done, TicketState):
            raise InvalidTransitionError(self.ref(ticket_id), done.value, action.value,
                                         allowed_actions(done))
        return await self._read(ticket_id)

    async def acknowledge(self, ref: str, *, actor: str, message: str = "") -> Ticket:
        """``open -> acknowledged``."""
        return await self._act(ref, TicketAction.ACKNOWLEDGE, actor, message)

    async def assign(self, ref: str, assignee: str, *, actor: str, message: str = "") -> Ticket:
        """Set the assignee (open or acknowledged tickets).

        Raises:
            InvalidInputError: An empty or over-long assignee.
        """
        if not assignee.strip():
            raise InvalidInputError("assignee must not be empty")
        check_lengths(TICKET, assignee=assignee)
        text = f"assigned to {assignee}" + (f": {message}" if message else "")
        return await self._act(ref, TicketAction.ASSIGN, actor, message,
                               values={"assignee": assignee}, event_message=text)

    async def comment(self, ref: str, message: str, *, actor: str) -> Ticket:
        """Add a comment to the history (any state).

        Raises:
            InvalidInputError: An empty message.
        """
        if not message.strip():
            raise InvalidInputError("a comment needs a message")
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


def _fenced(work: Callable[[TicketTx], Awaitable[T]], fence: WriteFence
            ) -> Callable[[TicketTx], Awaitable[T]]:
    async def guarded(tx: TicketTx) -> T:
        tx.writer = fence.writer
        done = await work(tx)
        await fence(tx.conn)  # last: it holds the epoch until the commit
        return done
    return guarded
