"""Ticket value objects and the lifecycle rules, free of any database code.

A ticket moves ``open -> acknowledged -> resolved -> closed`` and can be reopened. Which
operator action is allowed in which state is the table :data:`ALLOWED_ACTIONS`; the
service consults it and names the allowed actions when it refuses one.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, fields
from datetime import datetime
from enum import StrEnum
from typing import Any, Protocol

from netguard.faults import SEVERITIES, FaultSeverity, Severity

__all__ = ["SEVERITIES", "Severity"]  # re-exported: ticket code spells them from here too


class TicketState(StrEnum):
    """Where a ticket is in its lifecycle."""

    OPEN = "open"
    ACKNOWLEDGED = "acknowledged"
    RESOLVED = "resolved"
    CLOSED = "closed"

    @property
    def active(self) -> bool:
        """True while the fault is being worked on (at most one such ticket per key)."""
        return self in ACTIVE_STATES


ACTIVE_STATES: tuple[TicketState, ...] = (TicketState.OPEN, TicketState.ACKNOWLEDGED)
"""The one definition of "an active ticket": at most one per fault key (the dedup
guarantee). Everything else derives from it: :attr:`TicketState.active`, the SQL
predicate below, the partial unique index and the metrics' open counts."""

ACTIVE_SQL = f"state IN ({', '.join(repr(s.value) for s in ACTIVE_STATES)})"
""":data:`ACTIVE_STATES` as SQL text: ``state IN ('open', 'acknowledged')``. It is also the
WHERE clause of the partial unique index, which ``ON CONFLICT`` must name verbatim."""

QUEUE_SQL = f"state <> '{TicketState.CLOSED.value}'"
"""The default queue (everything not closed): the predicate of ``ix_ticket_queue``."""


class TicketAction(StrEnum):
    """What an operator can do to a ticket."""

    ACKNOWLEDGE = "acknowledge"
    ASSIGN = "assign"
    COMMENT = "comment"
    RESOLVE = "resolve"
    CLOSE = "close"
    REOPEN = "reopen"


# The history record an operator action writes.
ACTION_EVENT: dict[TicketAction, str] = {
    TicketAction.ACKNOWLEDGE: "acknowledged",
    TicketAction.ASSIGN: "assigned",
    TicketAction.COMMENT: "commented",
    TicketAction.RESOLVE: "resolved",
    TicketAction.CLOSE: "closed",
    TicketAction.REOPEN: "reopened",
}


ALLOWED_ACTIONS: dict[TicketState, tuple[TicketAction, ...]] = {
    TicketState.OPEN: (TicketAction.ACKNOWLEDGE, TicketAction.ASSIGN, TicketAction.COMMENT,
                       TicketAction.RESOLVE),
    TicketState.ACKNOWLEDGED: (TicketAction.ASSIGN, TicketAction.COMMENT, TicketAction.RESOLVE),
    TicketState.RESOLVED: (TicketAction.COMMENT, TicketAction.CLOSE, TicketAction.REOPEN),
    TicketState.CLOSED: (TicketAction.COMMENT, TicketAction.REOPEN),
}
"""The operator actions allowed in each state."""

ACTION_TARGET: dict[TicketAction, TicketState | None] = {
    TicketAction.ACKNOWLEDGE: TicketState.ACKNOWLEDGED,
    TicketAction.ASSIGN: None,
    TicketAction.COMMENT: None,
    TicketAction.RESOLVE: TicketState.RESOLVED,
    TicketAction.CLOSE: TicketState.CLOSED,
    TicketAction.REOPEN: TicketState.OPEN,
}
"""The state an action leads to (``None``: the state does not change)."""


def allowed_actions(state: TicketState) -> list[str]:
    """The names of the actions allowed in ``state``, in a stable order."""
    return [a.value for a in ALLOWED_ACTIONS[state]]


def states_allowing(action: TicketAction) -> tuple[TicketState, ...]:
    """The states in which ``action`` is allowed."""
    return tuple(s for s, actions in ALLOWED_ACTIONS.items() if action in actions)


def as_severity(text: str) -> Severity:
    """Validate a severity name.

    Raises:
        ValueError: Not a known severity.
    """
    try:
        return Severity(text)
    except ValueError:
        raise ValueError(f"unknown severity {text!r}; expected one of "
                         f"{', '.join(SEVERITIES)}") from None


def severity_rank(severity: str) -> int:
    """0 for critical up to 3 for warning (see :attr:`Severity.rank`).

    Raises:
        ValueError: Not a known severity.
    """
    return as_severity(severity).rank


def raise_severity(severity: FaultSeverity | Severity, steps: int) -> Severity:
    """Raise ``severity`` by ``steps`` towards critical (critical is the cap)."""
    return as_severity(severity).raised(steps)


_REF = re.compile(r"^(?:([A-Za-z]{1,8})-)?0*(\d{1,18})$")


def format_ref(ticket_id: int, prefix: str = "NG") -> str:
    """The human id of a ticket: ``NG-000123``.

    It is derived from the integer primary key, so it is unique under any concurrency.
    """
    return f"{prefix}-{ticket_id:06d}"


def parse_ref(text: str, prefix: str | None = None) -> int:
    """The primary key in a human id (``NG-000123``, ``ng-123`` or ``123``).

    Args:
        text: What the operator typed.
        prefix: The installation's prefix (``tickets.id_prefix``). When given, an id with
            another prefix is refused: ``XYZ-000002`` must not act on ``NG-000002``.

    Raises:
        ValueError: ``text`` is not a ticket id, or has another prefix.
    """
    match = _REF.match(text.strip())
    if match is None or int(match.group(2)) == 0:
        example = format_ref(123, prefix or "NG")
        raise ValueError(f"not a ticket id: {text!r} (expected e.g. {example})")
    given = match.group(1)
    if prefix is not None and given is not None and given.upper() != prefix.upper():
        raise ValueError(f"{text.strip()!r} is not a ticket of this installation: its ticket "
                         f"ids start with {prefix}- (tickets.id_prefix), e.g. "
                         f"{format_ref(int(match.group(2)), prefix)}")
    return int(match.group(2))


@dataclass(frozen=True, slots=True)
class Ticket:
    """A snapshot of one ticket as stored.

    ``overdue`` is computed when the ticket is read: active and past its SLA due time.
    """

    id: int
    ref: str
    fault_key: str | None
    source: str
    category: str
    target: str | None
    site: str | None
    severity: Severity
    state: TicketState
    summary: str
    reasons: tuple[str, ...]
    first_seen: datetime
    last_seen: datetime
    opened_at: datetime
    cleared_at: datetime | None
    acknowledged_at: datetime | None
    resolved_at: datetime | None
    closed_at: datetime | None
    updated_at: datetime
    occurrences: int
    flaps: int
    reopens: int
    assignee: str | None
    sla_due: datetime
    overdue: bool

    def to_dict(self) -> dict[str, Any]:
        """Stable, JSON-ready field names (``id`` is the human id)."""
        data = {name: _plain(getattr(self, name)) for name in TICKET_FIELDS}
        data["id"] = self.ref
        return data


TICKET_FIELDS: tuple[str, ...] = tuple(f.name for f in fields(Ticket) if f.name != "ref")
"""The exported fields, in order (``--json`` and CSV columns): :class:`Ticket`'s fields,
whose names are the ``ticket`` table's columns (``id`` is exported as the human id)."""

COMPUTED_FIELDS: frozenset[str] = frozenset({"overdue"})
"""Fields computed when a ticket is read rather than read from their column."""

TICKET_COLUMNS: tuple[str, ...] = tuple(f for f in TICKET_FIELDS if f not in COMPUTED_FIELDS)
"""The columns a listing selects, in :data:`TICKET_FIELDS` order (a test checks each is a
column of the table; the table model is not imported here, to keep ``tickets list``
free of SQLAlchemy)."""


def _plain(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, tuple):
        return list(value)
    if isinstance(value, StrEnum):
        return value.value
    return value


@dataclass(frozen=True, slots=True)
class TicketEvent:
    """One audit record of a ticket (``ticket_event.writer``, the cluster epoch of a
    fenced write, is stored but not read back here)."""

    at: datetime
    actor: str
    action: str
    old_state: str | None
    new_state: str | None
    message: str

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready fields."""
        return {"at": self.at.isoformat(), "actor": self.actor, "action": self.action,
                "old_state": self.old_state, "new_state": self.new_state,
                "message": self.message}


@dataclass(frozen=True, slots=True)
class ChildFault:
    """A fault suppressed under a ticket because its upstream is down."""

    fault_key: str
    target: str
    upstream_target: str
    state: str
    severity: str
    summary: str
    first_seen: datetime
    last_seen: datetime
    ended_at: datetime | None
    occurrences: int
    promoted_to: str | None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready fields."""
        return {"fault_key": self.fault_key, "target": self.target,
                "upstream_target": self.upstream_target, "state": self.state,
                "severity": self.severity, "summary": self.summary,
                "first_seen": self.first_seen.isoformat(),
                "last_seen": self.last_seen.isoformat(),
                "ended_at": self.ended_at.isoformat() if self.ended_at else None,
                "occurrences": self.occurrences, "promoted_to": self.promoted_to}


@dataclass(frozen=True, slots=True)
class TicketDetail:
    """A ticket with its child faults and its full history."""

    ticket: Ticket
    children: tuple[ChildFault, ...]
    events: tuple[TicketEvent, ...]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready fields: the ticket's, plus ``children`` and ``events``."""
        data = self.ticket.to_dict()
        data["children"] = [c.to_dict() for c in self.children]
        data["events"] = [e.to_dict() for e in self.events]
        return data


@dataclass(frozen=True, slots=True)
class TicketFilter:
    """Which tickets to list or export; empty tuples mean "any".

    Attributes:
        states: The states to include; ``None`` means every state except closed.
        since: Only tickets opened at or after this time.
        overdue: Only active tickets past their SLA due time.
        limit: At most this many (``None``: all of them).
    """

    states: tuple[TicketState, ...] | None = None
    categories: tuple[str, ...] = ()
    severities: tuple[str, ...] = ()
    sites: tuple[str, ...] = ()
    targets: tuple[str, ...] = ()
    assignees: tuple[str, ...] = ()
    since: datetime | None = None
    overdue: bool = False
    limit: int | None = 50

    def __post_init__(self) -> None:
        for severity in self.severities:
            as_severity(severity)
        if self.limit is not None and self.limit < 1:
            raise ValueError("limit must be at least 1")
        if self.since is not None and self.since.tzinfo is None:
            raise ValueError("since must be timezone-aware")


@dataclass(frozen=True, slots=True)
class StoredFault:
    """A fault the ticket store still holds active (the probes reseed it at start-up).

    Attributes:
        fault_key: ``target|component|condition`` as stored (parsed by the caller).
        suppressed_by: The upstream of an active child link; ``None`` for a ticket.
    """

    fault_key: str
    suppressed_by: str | None
    reasons: tuple[str, ...]
    summary: str
    severity: str


@dataclass(frozen=True, slots=True)
class SweepResult:
    """What one :meth:`TicketService.sweep` did (human ids)."""

    resolved: tuple[str, ...] = ()
    overdue: tuple[str, ...] = ()
    promoted: tuple[str, ...] = ()
    adopted: int = 0


@dataclass(frozen=True, slots=True)
class TicketCounts:
    """Active tickets, and overdue ones, by ``(category, severity)`` (for metrics)."""

    open: dict[tuple[str, str], int] = field(default_factory=dict)
    overdue: dict[tuple[str, str], int] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class TicketTally:
    """All tickets by phase, for a live view (:meth:`TicketService.tally`).

    Attributes:
        active: Open or acknowledged (:data:`ACTIVE_STATES`).
        done: Resolved or closed.
        children: Child faults grouped under the active tickets (those under resolved
            tickets are history).
    """

    active: int = 0
    done: int = 0
    children: int = 0


@dataclass(frozen=True, slots=True)
class TicketNews:
    """One ticket event for a live feed (:meth:`TicketService.news`).

    Attributes:
        event_id: The event's id; ask for the news after the last one seen.
        ref: The ticket's human id.
        action: What happened (``opened``, ``child_suppressed``, ``resolved``, ...).
        message: The event's message.
        summary: The ticket's summary.
    """

    event_id: int
    ref: str
    action: str
    message: str
    summary: str


class WriteFence(Protocol):
    """A check that ends a write's transaction and raises to roll it back (a stale
    cluster epoch: :class:`netguard.cluster.fence.EpochFence`)."""

    @property
    def writer(self) -> str:
        """Who writes, recorded on the audit rows (``instance_id:incarnation``)."""
        ...

    async def __call__(self, conn: Any) -> None:
        """Check, on the transaction's connection."""
        ...
