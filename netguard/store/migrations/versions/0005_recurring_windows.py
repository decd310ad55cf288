"""Recurring allowed windows: a repeat spec (``daily 18:00-18:30``) and its time zone.

Revision ID: 0005_recurring_windows
Revises: 0004_event_payload_size
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005_recurring_windows"
down_revision: str | None = "0004_event_payload_size"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Nullable: every existing window is a one-off span.
    with op.batch_alter_table("iot_allowed_window") as batch:
        batch.add_column(sa.Column("repeat", sa.String(120), nullable=True))
        batch.add_column(sa.Column("timezone", sa.String(64), nullable=True))


def downgrade() -> None:
    # A recurring window has no one-off equivalent: dropping the columns would silently
    # turn "daily 18:00-18:30 for 14 days" into "any time for 14 days".
    op.execute("DELETE FROM iot_allowed_window WHERE repeat IS NOT NULL")
    with op.batch_alter_table("iot_allowed_window") as batch:
        batch.drop_column("timezone")
        batch.drop_column("repeat")
