"""Ticket and Alertmanager notifications share the outbox: what a row (or a spent link)
is about, and the receipts that deduplicate Alertmanager's retries.

Revision ID: 0008_notify_subjects
Revises: 0007_ack_links
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008_notify_subjects"
down_revision: str | None = "0007_ack_links"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("iot_outbox") as batch:
        batch.add_column(sa.Column("subject", sa.String(16), nullable=False,
                                   server_default="alert"))
    op.create_index("ix_iot_outbox_subject", "iot_outbox", ["subject", "alert_id"])
    with op.batch_alter_table("iot_ack_nonce") as batch:
        batch.add_column(sa.Column("subject", sa.String(16), nullable=False,
                                   server_default="alert"))
    op.create_table(
        "am_receipt",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("dedupe_key", sa.String(64), nullable=False, unique=True),
        sa.Column("group_key", sa.Text(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("first_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("am_receipt")
    with op.batch_alter_table("iot_ack_nonce") as batch:
        batch.drop_column("subject")
    op.drop_index("ix_iot_outbox_subject", table_name="iot_outbox")
    with op.batch_alter_table("iot_outbox") as batch:
        batch.drop_column("subject")
