"""Repeat openings: an alert remembers its count as of its last message.

Revision ID: 0006_repeat_openings
Revises: 0005_recurring_windows
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006_repeat_openings"
down_revision: str | None = "0005_recurring_windows"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("iot_alert") as batch:
        batch.add_column(sa.Column("count_notified", sa.Integer(), nullable=False,
                                   server_default="0"))
    # Openings before the upgrade were never announced one by one, and announcing them
    # all now would be a burst of stale news: count them as told.
    op.execute("UPDATE iot_alert SET count_notified = count")


def downgrade() -> None:
    with op.batch_alter_table("iot_alert") as batch:
        batch.drop_column("count_notified")
