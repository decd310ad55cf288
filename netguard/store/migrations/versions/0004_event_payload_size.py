"""Door-sensor events: the full size and SHA-256 of each raw payload, which is now kept
only up to ``iot.raw_keep_bytes``.

Revision ID: 0004_event_payload_size
Revises: 0003_audit_checkpoint
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004_event_payload_size"
down_revision: str | None = "0003_audit_checkpoint"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Nullable: rows stored before this revision kept their whole payload, and a purged
    # row keeps neither.
    with op.batch_alter_table("iot_event") as batch:
        batch.add_column(sa.Column("payload_size", sa.Integer, nullable=True))
        batch.add_column(sa.Column("payload_sha256", sa.String(64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("iot_event") as batch:
        batch.drop_column("payload_sha256")
        batch.drop_column("payload_size")
