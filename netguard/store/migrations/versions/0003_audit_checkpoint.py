"""Audit: bind event-log checkpoints to their row and give them an HMAC.

Revision ID: 0003_audit_checkpoint
Revises: 0002_iot
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003_audit_checkpoint"
down_revision: str | None = "0002_iot"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_COLUMNS = ("prev_hash", "digest", "received_at", "mac")


def upgrade() -> None:
    # Nullable: checkpoints written before this revision have none of them and still
    # verify (an anchor vouches for them; see netguard.iot.eventlog).
    with op.batch_alter_table("iot_chain_checkpoint") as batch:
        batch.add_column(sa.Column("prev_hash", sa.String(64), nullable=True))
        batch.add_column(sa.Column("digest", sa.String(64), nullable=True))
        batch.add_column(sa.Column("received_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("mac", sa.String(64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("iot_chain_checkpoint") as batch:
        for name in reversed(_COLUMNS):
            batch.drop_column(name)
