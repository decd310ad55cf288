"""Tables of the ticket notifier: its cursor over ``ticket_event`` and its threads.

The schema is created by the migration ``0009_ticket_notify``; these models mirror it.
Timestamps are UTC (read back through :func:`netguard.clock.as_utc`).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, cast

import sqlalchemy as sa
from sqlmodel import Field, SQLModel


def _ts(*, nullable: bool = True) -> sa.Column[datetime]:
    return sa.Column(sa.DateTime(timezone=True), nullable=nullable)


class NotifyCursor(SQLModel, table=True):
    """How far a notifier has read ``ticket_event``.

    ``gaps`` lists ids below ``last_event_id`` not seen yet, each with when it was first
    missed (``[[id, iso], ...]``): on PostgreSQL an id is taken when a transaction
    inserts, so a later id can commit first; the gap is read again until it fills or
    ages out (a rolled-back insert never fills it).
    """

    __tablename__ = "notify_cursor"

    name: str = Field(primary_key=True, max_length=32)
    last_event_id: int = 0
    gaps: list[Any] = Field(default_factory=list, sa_column=sa.Column(sa.JSON, nullable=False))
    updated_at: datetime = Field(sa_column=_ts(nullable=False))


class NotifyGroup(SQLModel, table=True):
    """One route's thread about one ticket (see :class:`netguard.notify.plan.GroupState`)."""

    __tablename__ = "notify_group"
    __table_args__ = (sa.Index("ix_notify_group_due", "due_at"),
                      sa.Index("ix_notify_group_ticket", "ticket_id"))

    route: str = Field(primary_key=True, max_length=64)
    ticket_id: int = Field(primary_key=True, sa_column_kwargs={"autoincrement": False})
    phase: str = Field(max_length=16)
    # The earliest of the times below (NULL when done or nothing is scheduled).
    due_at: datetime | None = Field(default=None, sa_column=_ts())
    flush_at: datetime | None = Field(default=None, sa_column=_ts())
    update_at: datetime | None = Field(default=None, sa_column=_ts())
    last_sent_at: datetime | None = Field(default=None, sa_column=_ts())
    last_update_at: datetime | None = Field(default=None, sa_column=_ts())
    next_repeat_at: datetime | None = Field(default=None, sa_column=_ts())
    escalate_at: datetime | None = Field(default=None, sa_column=_ts())
    escalated: bool = False
    # Child targets already named in a message.
    notified: list[str] = Field(default_factory=list,
                                sa_column=sa.Column(sa.JSON, nullable=False))
    updated_at: datetime = Field(sa_column=_ts(nullable=False))


CURSOR = cast(sa.Table, NotifyCursor.__table__)  # type: ignore[attr-defined]
GROUP = cast(sa.Table, NotifyGroup.__table__)  # type: ignore[attr-defined]

__all__ = ["CURSOR", "GROUP", "NotifyCursor", "NotifyGroup"]
