"""Tickets: ticket, ticket_event, ticket_child.

Revision ID: 0001_tickets
Revises:
Create Date: 2026-11-29
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001_tickets"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ACTIVE = "state IN ('open', 'acknowledged')"
QUEUE = "state <> 'closed'"
CHILD_ACTIVE = "state = 'active'"


def _ts(name: str, *, nullable: bool) -> sa.Column[object]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    """Create the ticket tables and the indexes that make opening idempotent."""
    op.create_table(
        "ticket",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("fault_key", sa.String(512), nullable=True),
        sa.Column("source", sa.String(16), nullable=False),
        sa.Column("category", sa.String(64), nullable=False),
        sa.Column("target", sa.String(128), nullable=True),
        sa.Column("site", sa.String(128), nullable=True),
        sa.Column("severity", sa.String(16), nullable=False),
        sa.Column("severity_rank", sa.Integer(), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("summary", sa.String(1024), nullable=False),
        sa.Column("reasons", sa.JSON(), nullable=False),
        _ts("first_seen", nullable=False),
        _ts("last_seen", nullable=False),
        _ts("opened_at", nullable=False),
        _ts("cleared_at", nullable=True),
        _ts("acknowledged_at", nullable=True),
        _ts("resolved_at", nullable=True),
        _ts("closed_at", nullable=True),
        _ts("updated_at", nullable=False),
        sa.Column("occurrences", sa.Integer(), nullable=False),
        sa.Column("flaps", sa.Integer(), nullable=False),
        sa.Column("reopens", sa.Integer(), nullable=False),
        sa.Column("assignee", sa.String(128), nullable=True),
        _ts("sla_due", nullable=False),
        sa.Column("overdue", sa.Boolean(), nullable=False),
    )
    # The dedup guarantee: one active ticket per fault key, enforced by the database.
    op.create_index("uq_ticket_active_fault_key", "ticket", ["fault_key"], unique=True,
                    sqlite_where=sa.text(ACTIVE), postgresql_where=sa.text(ACTIVE))
    op.create_index("ix_ticket_fault_key", "ticket", ["fault_key"])
    # Matches the default listing (not closed, most severe then oldest first).
    op.create_index("ix_ticket_queue", "ticket", ["severity_rank", "opened_at", "id"],
                    sqlite_where=sa.text(QUEUE), postgresql_where=sa.text(QUEUE))
    op.create_index("ix_ticket_order", "ticket", ["severity_rank", "opened_at", "id"])
    op.create_index("ix_ticket_target_state", "ticket", ["target", "state"])
    op.create_index("ix_ticket_state_sla", "ticket", ["state", "sla_due"])
    op.create_index("ix_ticket_cleared_at", "ticket", ["cleared_at"])

    op.create_table(
        "ticket_event",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("ticket_id", sa.Integer(),
                  sa.ForeignKey("ticket.id", ondelete="CASCADE"), nullable=False),
        _ts("at", nullable=False),
        sa.Column("actor", sa.String(128), nullable=False),
        sa.Column("action", sa.String(32), nullable=False),
        sa.Column("old_state", sa.String(16), nullable=True),
        sa.Column("new_state", sa.String(16), nullable=True),
        sa.Column("message", sa.Text(), nullable=False),
    )
    op.create_index("ix_ticket_event_ticket", "ticket_event", ["ticket_id", "id"])

    op.create_table(
        "ticket_child",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("ticket_id", sa.Integer(),
                  sa.ForeignKey("ticket.id", ondelete="SET NULL"), nullable=True),
        sa.Column("fault_key", sa.String(512), nullable=False),
        sa.Column("target", sa.String(128), nullable=False),
        sa.Column("upstream_target", sa.String(128), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("category", sa.String(64), nullable=False),
        sa.Column("site", sa.String(128), nullable=True),
        sa.Column("severity", sa.String(16), nullable=False),
        sa.Column("summary", sa.String(1024), nullable=False),
        sa.Column("reasons", sa.JSON(), nullable=False),
        _ts("first_seen", nullable=False),
        _ts("last_seen", nullable=False),
        _ts("ended_at", nullable=True),
        sa.Column("occurrences", sa.Integer(), nullable=False),
        sa.Column("promoted_ticket_id", sa.Integer(),
                  sa.ForeignKey("ticket.id", ondelete="SET NULL"), nullable=True),
    )
    op.create_index("uq_ticket_child_active_fault_key", "ticket_child", ["fault_key"],
                    unique=True, sqlite_where=sa.text(CHILD_ACTIVE),
                    postgresql_where=sa.text(CHILD_ACTIVE))
    op.create_index("ix_ticket_child_ticket", "ticket_child", ["ticket_id"])
    op.create_index("ix_ticket_child_upstream", "ticket_child", ["upstream_target", "state"])


def downgrade() -> None:
    """Drop the ticket tables (and every ticket in them)."""
    op.drop_table("ticket_child")
    op.drop_table("ticket_event")
    op.drop_table("ticket")
