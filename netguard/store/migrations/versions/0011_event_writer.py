"""Scale-out: the cluster epoch (``instance_id:incarnation``) a fenced ticket write
carried, on its audit records (docs/scale-out.md, "Fenced writes"). Null outside a
cluster and on older records.

Revision ID: 0011_event_writer
Revises: 0010_cluster
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011_event_writer"
down_revision: str | None = "0010_cluster"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Nullable without a default: instant on PostgreSQL and SQLite, however many rows.
    with op.batch_alter_table("ticket_event") as batch:
        batch.add_column(sa.Column("writer", sa.String(96), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("ticket_event") as batch:
        batch.drop_column("writer")
