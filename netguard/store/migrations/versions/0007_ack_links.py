"""Acknowledgement links: spent link nonces, and how an alert was acknowledged.

Revision ID: 0007_ack_links
Revises: 0006_repeat_openings
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007_ack_links"
down_revision: str | None = "0006_repeat_openings"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "iot_ack_nonce",
        sa.Column("nonce", sa.String(32), primary_key=True),
        sa.Column("alert_id", sa.Integer(), nullable=False),
        sa.Column("actor", sa.String(100), nullable=False),
        sa.Column("used_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_iot_ack_nonce_alert_id", "iot_ack_nonce", ["alert_id"])
    with op.batch_alter_table("iot_alert") as batch:
        batch.add_column(sa.Column("acked_via", sa.String(16), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("iot_alert") as batch:
        batch.drop_column("acked_via")
    op.drop_index("ix_iot_ack_nonce_alert_id", table_name="iot_ack_nonce")
    op.drop_table("iot_ack_nonce")
