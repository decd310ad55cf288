"""Ticket notifications: the notifier's cursor over ticket events and its threads.

Revision ID: 0009_ticket_notify
Revises: 0008_notify_subjects
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009_ticket_notify"
down_revision: str | None = "0008_notify_subjects"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _ts(name: str, *, nullable: bool = True) -> sa.Column[object]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "notify_cursor",
        sa.Column("name", sa.String(32), primary_key=True),
        sa.Column("last_event_id", sa.Integer(), nullable=False),
        sa.Column("gaps", sa.JSON(), nullable=False),
        _ts("updated_at", nullable=False),
    )
    op.create_table(
        "notify_group",
        sa.Column("route", sa.String(64), primary_key=True),
        sa.Column("ticket_id", sa.Integer(), primary_key=True, autoincrement=False),
        sa.Column("phase", sa.String(16), nullable=False),
        _ts("due_at"), _ts("flush_at"), _ts("update_at"), _ts("last_sent_at"),
        _ts("last_update_at"), _ts("next_repeat_at"), _ts("escalate_at"),
        sa.Column("escalated", sa.Boolean(), nullable=False),
        sa.Column("notified", sa.JSON(), nullable=False),
        _ts("updated_at", nullable=False),
    )
    op.create_index("ix_notify_group_due", "notify_group", ["due_at"])
    op.create_index("ix_notify_group_ticket", "notify_group", ["ticket_id"])


def downgrade() -> None:
    op.drop_index("ix_notify_group_ticket", table_name="notify_group")
    op.drop_index("ix_notify_group_due", table_name="notify_group")
    op.drop_table("notify_group")
    op.drop_table("notify_cursor")
