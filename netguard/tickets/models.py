"""Ticket tables: tickets, their audit events, and the child faults suppressed under them.

The schema is created by the hand-written migration ``0001_tickets``; these models are
its mirror for queries and for Alembic's metadata. Keep the two in step.

Every timestamp is stored as UTC (``DateTime(timezone=True)``; SQLite keeps the UTC wall
time without an offset, read back through :func:`netguard.clock.as_utc`).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, cast

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from netguard.clock import as_utc
from netguard.errors import InvalidInputError
from netguard.tickets.domain import ACTIVE_SQL as ACTIVE_PREDICATE
from netguard.tickets.domain import QUEUE_SQL as QUEUE_PREDICATE

# A child fault still suppressed under (or waiting for) its upstream's ticket.
CHILD_ACTIVE = "active"
CHILD_ACTIVE_PREDICATE = f"state = '{CHILD_ACTIVE}'"


def _ts(*, nullable: bool) -> sa.Column[datetime]:
    return sa.Column(sa.DateTime(timezone=True), nullable=nullable)


class TicketRow(SQLModel, table=True):
    """One ticket. Its human id (``NG-000123``) is derived from ``id``."""

    __tablename__ = "ticket"
    __table_args__ = (
        sa.Index("uq_ticket_active_fault_key", "fault_key", unique=True,
                 sqlite_where=sa.text(ACTIVE_PREDICATE),
                 postgresql_where=sa.text(ACTIVE_PREDICATE)),
        sa.Index("ix_ticket_fault_key", "fault_key"),
        sa.Index("ix_ticket_queue", "severity_rank", "opened_at", "id",
                 sqlite_where=sa.text(QUEUE_PREDICATE),
                 postgresql_where=sa.text(QUEUE_PREDICATE)),
        sa.Index("ix_ticket_order", "severity_rank", "opened_at", "id"),
        sa.Index("ix_ticket_target_state", "target", "state"),
        sa.Index("ix_ticket_state_sla", "state", "sla_due"),
        sa.Index("ix_ticket_cleared_at", "cleared_at"),
    )

    id: int | None = Field(default=None, primary_key=True)
    # target|component|condition; NULL for manual tickets.
    fault_key: str | None = Field(default=None, max_length=512)
    source: str = Field(max_length=16)  # "fault" or "manual"
    category: str = Field(max_length=64)
    target: str | None = Field(default=None, max_length=128)
    site: str | None = Field(default=None, max_length=128)
    severity: str = Field(max_length=16)
    severity_rank: int  # 0 critical .. 3 warning; the queue sorts on it
    state: str = Field(max_length=16)
    summary: str = Field(max_length=1024)
    reasons: list[str] = Field(default_factory=list, sa_column=sa.Column(sa.JSON, nullable=False))
    first_seen: datetime = Field(sa_column=_ts(nullable=False))
    last_seen: datetime = Field(sa_column=_ts(nullable=False))
    opened_at: datetime = Field(sa_column=_ts(nullable=False))
    # Set while the fault is clear but the resolve hold has not passed yet.
    cleared_at: datetime | None = Field(default=None, sa_column=_ts(nullable=True))
    acknowledged_at: datetime | None = Field(default=None, sa_column=_ts(nullable=True))
    resolved_at: datetime | None = Field(default=None, sa_column=_ts(nullable=True))
    closed_at: datetime | None = Field(default=None, sa_column=_ts(nullable=True))
    updated_at: datetime = Field(sa_column=_ts(nullable=False))
    occurrences: int = 1
    flaps: int = 0
    reopens: int = 0
    assignee: str | None = Field(default=None, max_length=128)
    sla_due: datetime = Field(sa_column=_ts(nullable=False))
    overdue: bool = False


class TicketEventRow(SQLModel, table=True):
    """One change to a ticket: who, when, old and new state, and why."""

    __tablename__ = "ticket_event"
    __table_args__ = (sa.Index("ix_ticket_event_ticket", "ticket_id", "id"),)

    id: int | None = Field(default=None, primary_key=True)
    ticket_id: int = Field(foreign_key="ticket.id", ondelete="CASCADE")
    at: datetime = Field(sa_column=_ts(nullable=False))
    actor: str = Field(max_length=128)
    # opened, repeat, flap, cleared, resolved, reopened, acknowledged, assigned, commented,
    # closed, overdue, severity, child_attached, child_cleared, child_promoted, grouped,
    # child_moved
    action: str = Field(max_length=32)
    old_state: str | None = Field(default=None, max_length=16)
    new_state: str | None = Field(default=None, max_length=16)
    message: str = Field(default="", sa_column=sa.Column(sa.Text, nullable=False))
    # With cluster.enabled: the epoch (instance_id:incarnation) a fenced write carried.
    writer: str | None = Field(default=None, max_length=96)


class ChildFaultRow(SQLModel, table=True):
    """A fault suppressed because its upstream is down: linked to the upstream's ticket.

    ``ticket_id`` is NULL while the upstream has no ticket yet (the child's event came
    first); the upstream's ticket adopts it when it opens.
    """

    __tablename__ = "ticket_child"
    __table_args__ = (
        sa.Index("uq_ticket_child_active_fault_key", "fault_key", unique=True,
                 sqlite_where=sa.text(CHILD_ACTIVE_PREDICATE),
                 postgresql_where=sa.text(CHILD_ACTIVE_PREDICATE)),
        sa.Index("ix_ticket_child_ticket", "ticket_id"),
        sa.Index("ix_ticket_child_upstream", "upstream_target", "state"),
    )

    id: int | None = Field(default=None, primary_key=True)
    ticket_id: int | None = Field(default=None, foreign_key="ticket.id", ondelete="SET NULL")
    fault_key: str = Field(max_length=512)
    target: str = Field(max_length=128)
    upstream_target: str = Field(max_length=128)
    # active (still faulty, suppressed), cleared (recovered), promoted (got its own ticket)
    state: str = Field(max_length=16)
    category: str = Field(max_length=64)
    site: str | None = Field(default=None, max_length=128)
    severity: str = Field(max_length=16)
    summary: str = Field(max_length=1024)
    reasons: list[str] = Field(default_factory=list, sa_column=sa.Column(sa.JSON, nullable=False))
    first_seen: datetime = Field(sa_column=_ts(nullable=False))
    last_seen: datetime = Field(sa_column=_ts(nullable=False))
    ended_at: datetime | None = Field(default=None, sa_column=_ts(nullable=True))
    occurrences: int = 1
    promoted_ticket_id: int | None = Field(default=None, foreign_key="ticket.id",
                                           ondelete="SET NULL")


TICKET = cast(sa.Table, TicketRow.__table__)  # type: ignore[attr-defined]
EVENT = cast(sa.Table, TicketEventRow.__table__)  # type: ignore[attr-defined]
CHILD = cast(sa.Table, ChildFaultRow.__table__)  # type: ignore[attr-defined]

SYSTEM_ACTOR = "netguard"
"""The actor recorded for automatic changes."""


def check_lengths(table: sa.Table, **values: str | None) -> None:
    """Refuse operator input longer than its column, the same on every database.

    SQLite stores an over-long string as it is; PostgreSQL refuses the whole statement,
    which would surface as "database failed". The limits come from the table itself
    (:class:`~netguard.errors.InvalidInputError`: ``name is N characters; at most L``).
    """
    for name, value in values.items():
        limit = getattr(table.c[name].type, "length", None)
        if value is not None and limit is not None and len(value) > limit:
            raise InvalidInputError(f"{name} is {len(value)} characters; at most {limit}")


def event_row(ticket_id: int, at: datetime, action: str, message: str, *,
              actor: str = SYSTEM_ACTOR, old: str | None = None, new: str | None = None
              ) -> dict[str, Any]:
    """One audit record for :meth:`TicketTx.log`."""
    return {"ticket_id": ticket_id, "at": as_utc(at), "actor": actor, "action": action,
            "old_state": old, "new_state": new, "message": message}
