"""Ticket rules as pure functions of (event, stored rows, config, now).

The rules never touch the store. :mod:`netguard.tickets.repository` reads what they need
into the frozen ``*Facts`` records below; a rule returns frozen actions; the service
applies them through the repository in the same transaction. Every statement that applies
an action is guarded by the facts it was decided on, so a row changed by another process
in between makes the whole transaction start again from a fresh read (see
:class:`~netguard.tickets.repository.StaleReadError`).

The rules, in one place:

- **dedup / bump**: a report of a fault with an active ticket counts an occurrence on it;
  a report during the resolve hold is a *flap* (the hold is cancelled);
- **severity raise**: a repeat report more severe than the ticket raises it, and the
  SLA due time moves earlier (never later);
- **reopen window**: a fault resolved less than ``reopen_window_seconds`` ago reopens
  that ticket instead of opening a new one (closed tickets never reopen by themselves);
- **site criticality** raises a new ticket's severity by configured steps;
- **suppression**: a fault explained by a down upstream attaches to the upstream's root
  ticket as a child (or waits for one); when the suppression lifts while it is still
  faulty, it is *promoted* to its own ticket;
- **late grouping**: a fault whose own ticket is young and untouched by a human, then
  reported suppressed, has that ticket resolved as grouped under the root;
- **adoption**: a new or reopened ticket adopts the children waiting for its target;
  after ``orphan_grace_seconds`` a waiting child is adopted by its upstream's root found
  later, or promoted to its own ticket;
- **resolve hold**: a cleared fault's ticket resolves after ``resolve_hold_seconds``,
  unless the probes still see the fault;
- **operator actions** follow :data:`~netguard.tickets.domain.ALLOWED_ACTIONS` and
  :data:`~netguard.tickets.domain.ACTION_TARGET`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from netguard.faults import FaultCleared, FaultOpened, Severity
from netguard.tickets.config import TicketsConfig
from netguard.tickets.domain import (
    ACTION_TARGET,
    ALLOWED_ACTIONS,
    TicketAction,
    TicketState,
)

# ---------------------------------------------------------------------------- facts


@dataclass(frozen=True, slots=True)
class TicketFacts:
    """What the rules need to know about one stored ticket."""

    id: int
    state: TicketState
    severity: Severity
    target: str | None
    first_seen: datetime
    opened_at: datetime
    sla_due: datetime
    cleared_at: datetime | None = None
    resolved_at: datetime | None = None
    acknowledged_at: datetime | None = None
    assignee: str | None = None


@dataclass(frozen=True, slots=True)
class ChildFacts:
    """A child link: a fault suppressed under (or waiting for) its upstream's ticket."""

    id: int
    ticket_id: int | None
    fault_key: str
    target: str
    upstream_target: str
    first_seen: datetime


@dataclass(frozen=True, slots=True)
class FaultFacts:
    """What the store holds about one fault key when an event for it arrives.

    Attributes:
        active: The key's open or acknowledged ticket (at most one: the unique index).
        resolved: The key's most recently resolved ticket.
        child: The key's active child link.
        root: The upstream's active root ticket (read for suppressed reports only).
        touched: A human acted on ``active`` (read for suppressed reports only).
    """

    active: TicketFacts | None = None
    resolved: TicketFacts | None = None
    child: ChildFacts | None = None
    root: int | None = None
    touched: bool = False


# --------------------------------------------------------------------------- actions


@dataclass(frozen=True, slots=True)
class OpenTicket:
    """Open a ticket for the fault (then adopt the children waiting for its target)."""

    severity: Severity
    sla_due: datetime
    first_seen: datetime


@dataclass(frozen=True, slots=True)
class BumpTicket:
    """Count a repeat report on the active ticket.

    Attributes:
        flap: The ticket was in its resolve hold: cancel the hold and count a flap.
        raise_to: A more severe report raises the ticket to this severity ...
        sla_due: ... with this (earlier or equal) due time.
    """

    ticket_id: int
    state: TicketState
    flap: bool
    raise_to: Severity | None = None
    sla_due: datetime | None = None


@dataclass(frozen=True, slots=True)
class ReopenTicket:
    """Reopen the ticket resolved within the reopen window (then adopt children)."""

    ticket_id: int
    severity: Severity
    sla_due: datetime


@dataclass(frozen=True, slots=True)
class PromoteChild:
    """The fault's child link ends: it is tracked on a ticket of its own now."""

    child_id: int
    from_ticket: int | None


@dataclass(frozen=True, slots=True)
class GroupTicket:
    """Resolve the fault's own young ticket as grouped under ``root`` (``None``: pending)."""

    ticket_id: int
    root: int | None
    upstream: str


@dataclass(frozen=True, slots=True)
class SuppressChild:
    """Record the fault as a child of ``root`` (``None``: waiting for the upstream's).

    Attributes:
        child_id: The active link to update; ``None`` inserts one.
        grouped: The fault's own ticket that was just grouped (named in the history).
    """

    root: int | None
    upstream: str
    severity: Severity
    first_seen: datetime
    child_id: int | None = None
    grouped: int | None = None


@dataclass(frozen=True, slots=True)
class ClearChild:
    """The suppressed fault recovered: its child link ends."""

    child_id: int
    ticket_id: int | None


@dataclass(frozen=True, slots=True)
class ClearTicket:
    """The fault cleared: start the ticket's resolve hold."""

    ticket_id: int
    state: TicketState


FaultAction = (OpenTicket | BumpTicket | ReopenTicket | PromoteChild | GroupTicket
               | SuppressChild | ClearChild | ClearTicket)


@dataclass(frozen=True, slots=True)
class AdoptOrphan:
    """A waiting child's upstream has a root ticket now: link the child to it."""

    child_id: int
    root: int


@dataclass(frozen=True, slots=True)
class PromoteOrphan:
    """A waiting child's upstream never got a ticket: it gets its own."""

    child_id: int


@dataclass(frozen=True, slots=True)
class Transition:
    """An allowed operator action (or the automatic resolve after the hold).

    Attributes:
        old: The state the ticket leaves (the update is guarded by it).
        new: The state it enters (the same for assign and comment).
        stamp: The timestamp column set to now (``acknowledged_at``, ...), if any.
        sla_due: A fresh SLA due time (reopen).
        promote_children: Children still faulty get tickets of their own (resolve).
    """

    action: TicketAction
    old: TicketState
    new: TicketState
    stamp: str | None = None
    sla_due: datetime | None = None
    promote_children: bool = False


# ----------------------------------------------------------------------- severities


def severity_for(base: Severity | str, site: str | None, config: TicketsConfig) -> Severity:
    """The ticket severity: the condition's, raised by the site's criticality."""
    severity = Severity(base)
    criticality = {s.id: s.criticality for s in config.sites}.get(site or "")
    if criticality is None:
        return severity
    return severity.raised(config.criticality_raise.get(criticality, 0))


def sla_due(severity: Severity | str, start: datetime, config: TicketsConfig) -> datetime:
    """When a ticket of ``severity`` opened at ``start`` must be handled by."""
    minutes = config.sla_minutes.get(Severity(severity), 1440.0)
    return start + timedelta(minutes=float(minutes))


# ---------------------------------------------------------------------- fault events


def decide_opened(event: FaultOpened, facts: FaultFacts, config: TicketsConfig, *,
                  first_seen: datetime | None = None) -> tuple[FaultAction, ...]:
    """What a ``FaultOpened`` does, given what the store holds about its key.

    Args:
        event: The report (``at`` is when the probes raised it).
        facts: The key's rows (and, for a suppressed report, the upstream's root).
        config: Windows, SLAs and criticality.
        first_seen: When the fault was first seen, if before ``event.at`` (a child
            getting its own ticket keeps its first sighting).
    """
    severity = severity_for(event.severity, event.site, config)
    if event.suppressed_by and event.suppressed_by != event.key.target:
        return _decide_suppressed(event, facts, severity, config)
    actions: list[FaultAction] = []
    since = first_seen or event.at
    if facts.child is not None:
        # Suppression lifted while still faulty: the child leaves its upstream's ticket.
        actions.append(PromoteChild(facts.child.id, facts.child.ticket_id))
        since = facts.child.first_seen
    actions.append(_land(event, facts, severity, since, config))
    return tuple(actions)


def _land(event: FaultOpened, facts: FaultFacts, severity: Severity, first_seen: datetime,
          config: TicketsConfig) -> OpenTicket | BumpTicket | ReopenTicket:
    """Bump the active ticket, else reopen a recent one, else open one."""
    if facts.active is not None:
        return _bump(facts.active, severity, config)
    recent = facts.resolved
    window = timedelta(seconds=config.reopen_window_seconds)
    if (recent is not None and recent.state is TicketState.RESOLVED
            and recent.resolved_at is not None and recent.resolved_at >= event.at - window):
        return ReopenTicket(recent.id, severity, sla_due(severity, event.at, config))
    return OpenTicket(severity, sla_due(severity, event.at, config), first_seen)


def _bump(ticket: TicketFacts, severity: Severity, config: TicketsConfig) -> BumpTicket:
    flap = ticket.cleared_at is not None
    if severity.rank >= ticket.severity.rank:
        return BumpTicket(ticket.id, ticket.state, flap)
    due = min(ticket.sla_due, sla_due(severity, ticket.opened_at, config))
    return BumpTicket(ticket.id, ticket.state, flap, raise_to=severity, sla_due=due)


def groupable(ticket: TicketFacts, touched: bool, at: datetime, config: TicketsConfig) -> bool:
    """The fault's own ticket may be grouped under its upstream's: young and untouched.

    A ticket being worked (acknowledged, assigned, commented) or older than the group
    window keeps its fault: moving it from under an engineer loses their context.
    """
    return (ticket.state is TicketState.OPEN and ticket.acknowledged_at is None
            and ticket.assignee is None and not touched
            and ticket.opened_at >= at - timedelta(seconds=config.group_window_seconds))


def _decide_suppressed(event: FaultOpened, facts: FaultFacts, severity: Severity,
                       config: TicketsConfig) -> tuple[FaultAction, ...]:
    upstream = event.suppressed_by
    assert upstream is not None
    own = facts.active
    child_id = None if facts.child is None else facts.child.id
    if own is not None and own.id != facts.root and groupable(own, facts.touched, event.at,
                                                               config):
        # Late grouping: the child failed its poll before its upstream and opened a
        # ticket of its own a moment ago; one outage should be one ticket.
        return (GroupTicket(own.id, facts.root, upstream),
                SuppressChild(facts.root, upstream, severity, own.first_seen, child_id,
                              grouped=own.id))
    if own is not None:
        return (_bump(own, severity, config),)
    return (SuppressChild(facts.root, upstream, severity, event.at, child_id),)


def decide_cleared(event: FaultCleared, facts: FaultFacts) -> tuple[FaultAction, ...]:
    """What a ``FaultCleared`` does: end the child link, start the ticket's hold."""
    del event  # the rule depends only on what is stored; kept for symmetry
    actions: list[FaultAction] = []
    if facts.child is not None:
        actions.append(ClearChild(facts.child.id, facts.child.ticket_id))
    if facts.active is not None and facts.active.cleared_at is None:
        actions.append(ClearTicket(facts.active.id, facts.active.state))
    return tuple(actions)


# ----------------------------------------------------------------------------- sweep


def resolve_cutoff(now: datetime, config: TicketsConfig) -> datetime:
    """Tickets cleared at or before this have waited out the resolve hold."""
    return now - timedelta(seconds=config.resolve_hold_seconds)


def orphan_cutoff(now: datetime, config: TicketsConfig) -> datetime:
    """Children waiting since at or before this have waited out the orphan grace."""
    return now - timedelta(seconds=config.orphan_grace_seconds)


def split_resolvable(candidates: Sequence[tuple[int, str | None]],
                     still_active: Callable[[str], bool] | None
                     ) -> tuple[list[int], set[int]]:
    """Which tickets past their hold to resolve, and which to hold on to.

    Args:
        candidates: ``(ticket id, fault key)`` of active tickets past the resolve hold.
        still_active: Whether the probes still see a fault key as faulty. Such a ticket
            is held: its ``FaultOpened`` may not have reached the store (read-only,
            failover), so "stayed clear" would be false.

    Returns:
        The ids to resolve (in the given order) and the ids held.
    """
    due = [tid for tid, key in candidates
           if still_active is None or key is None or not still_active(key)]
    return due, {tid for tid, _ in candidates} - set(due)


def decide_resolve_cleared(ticket: TicketFacts, now: datetime,
                           config: TicketsConfig) -> Transition | None:
    """The automatic resolve of a ticket whose fault stayed clear for the hold time."""
    cleared = ticket.cleared_at
    if not ticket.state.active or cleared is None or cleared > resolve_cutoff(now, config):
        return None
    return Transition(TicketAction.RESOLVE, ticket.state, TicketState.RESOLVED,
                      stamp="resolved_at", promote_children=True)


def decide_orphan(child: ChildFacts, root: int | None, upstream_waiting: bool
                  ) -> AdoptOrphan | PromoteOrphan | None:
    """A child whose upstream had no ticket within the grace: adopt, promote or wait.

    Args:
        child: The waiting child link.
        root: The upstream's root ticket, if it has one now.
        upstream_waiting: The upstream is itself a child still waiting: whichever ticket
            that one lands on (its root's, or its own after the grace) adopts this one,
            so this one waits (``None``).
    """
    if root is not None:
        return AdoptOrphan(child.id, root)
    if upstream_waiting:
        return None
    return PromoteOrphan(child.id)


# ------------------------------------------------------------------ operator actions

_STAMPS: dict[TicketAction, str] = {
    TicketAction.ACKNOWLEDGE: "acknowledged_at",
    TicketAction.RESOLVE: "resolved_at",
    TicketAction.CLOSE: "closed_at",
}


def decide_action(action: TicketAction, ticket: TicketFacts, now: datetime,
                  config: TicketsConfig) -> Transition | None:
    """The transition an operator action makes, or ``None`` when the state refuses it."""
    if action not in ALLOWED_ACTIONS[ticket.state]:
        return None
    new = ACTION_TARGET[action] or ticket.state
    due = sla_due(ticket.severity, now, config) if action is TicketAction.REOPEN else None
    return Transition(action, ticket.state, new, stamp=_STAMPS.get(action), sla_due=due,
                      promote_children=action is TicketAction.RESOLVE)
