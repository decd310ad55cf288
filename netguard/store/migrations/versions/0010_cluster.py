"""Scale-out: the members table of a cluster of instances (docs/scale-out.md).

Each row is one instance: its registration's incarnation (the epoch its writes carry),
and its last heartbeat on the database's clock. Created on SQLite too (one schema for
both); only PostgreSQL stores run a cluster.

Revision ID: 0010_cluster
Revises: 0009_ticket_notify
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010_cluster"
down_revision: str | None = "0009_ticket_notify"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "cluster_member",
        sa.Column("instance_id", sa.String(64), primary_key=True),
        sa.Column("incarnation", sa.BigInteger(), nullable=False),
        sa.Column("host", sa.String(255), nullable=False),
        sa.Column("pid", sa.Integer(), nullable=False),
        sa.Column("lease_seconds", sa.Float(), nullable=False),
        sa.Column("joined_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("heartbeat_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("cluster_member")
