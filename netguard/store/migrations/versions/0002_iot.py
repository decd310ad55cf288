"""Door sensors: households, sensors, hash-chained event log, alerts, outbox.

Revision ID: 0002_iot
Revises: 0001_tickets
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002_iot"
down_revision: str | None = "0001_tickets"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _ts(name: str, *, nullable: bool = False) -> sa.Column[object]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "iot_household",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("community", sa.String(64), nullable=False),
        sa.Column("label", sa.String(200), nullable=False),
        _ts("created_at"),
    )
    op.create_index("ix_iot_household_community", "iot_household", ["community"])
    op.create_table(
        "iot_quarantine_period",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("household_id", sa.String(64), sa.ForeignKey("iot_household.id"),
                  nullable=False),
        _ts("start_at"),
        _ts("end_at", nullable=True),
    )
    op.create_index("ix_iot_quarantine_period_household_id", "iot_quarantine_period",
                    ["household_id"])
    op.create_table(
        "iot_allowed_window",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("household_id", sa.String(64), sa.ForeignKey("iot_household.id"),
                  nullable=False),
        _ts("start_at"),
        _ts("end_at"),
        sa.Column("reason", sa.String(200), nullable=False),
    )
    op.create_index("ix_iot_allowed_window_household_id", "iot_allowed_window",
                    ["household_id"])
    op.create_table(
        "iot_sensor",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("household_id", sa.String(64), sa.ForeignKey("iot_household.id"),
                  nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("format", sa.String(16), nullable=False),
        sa.Column("address", sa.String(128), nullable=False),
        _ts("created_at"),
        _ts("last_seen_at", nullable=True),
        sa.Column("battery", sa.Float, nullable=True),
        sa.Column("contact", sa.String(8), nullable=True),
        sa.Column("online", sa.Boolean, nullable=False),
        sa.Column("tamper", sa.Boolean, nullable=False),
        sa.UniqueConstraint("format", "address", name="uq_iot_sensor_address"),
    )
    op.create_index("ix_iot_sensor_household_id", "iot_sensor", ["household_id"])
    op.create_table(
        "iot_event",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("chain", sa.String(64), nullable=False),
        sa.Column("chain_seq", sa.BigInteger, nullable=False),
        sa.Column("identity", sa.String(200), nullable=False, unique=True),
        _ts("received_at"),
        sa.Column("topic", sa.String(512), nullable=False),
        sa.Column("payload", sa.LargeBinary, nullable=True),
        sa.Column("sensor_id", sa.String(64), nullable=True),
        sa.Column("household_id", sa.String(64), nullable=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("contact", sa.String(8), nullable=True),
        sa.Column("battery", sa.Float, nullable=True),
        _ts("device_time", nullable=True),
        sa.Column("seq", sa.BigInteger, nullable=True),
        sa.Column("mqtt_mid", sa.Integer, nullable=True),
        sa.Column("dead_reason", sa.String(32), nullable=True),
        sa.Column("detail", sa.String(500), nullable=True),
        sa.Column("purged", sa.Boolean, nullable=False),
        sa.Column("digest", sa.String(64), nullable=False),
        sa.Column("prev_hash", sa.String(64), nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
        sa.UniqueConstraint("chain", "chain_seq", name="uq_iot_event_chain_seq"),
    )
    op.create_index("ix_iot_event_received_at", "iot_event", ["received_at"])
    op.create_index("ix_iot_event_sensor_id", "iot_event", ["sensor_id"])
    op.create_index("ix_iot_event_household_time", "iot_event",
                    ["household_id", "received_at"])
    op.create_table(
        "iot_chain_checkpoint",
        sa.Column("chain", sa.String(64), primary_key=True),
        sa.Column("chain_seq", sa.BigInteger, nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
        _ts("purged_at"),
    )
    op.create_table(
        "iot_alert",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("sensor_id", sa.String(64), nullable=False),
        sa.Column("household_id", sa.String(64), nullable=False),
        sa.Column("community", sa.String(64), nullable=False),
        sa.Column("type", sa.String(16), nullable=False),
        sa.Column("severity", sa.String(16), nullable=False),
        sa.Column("reasons", sa.String(2000), nullable=False),
        sa.Column("count", sa.Integer, nullable=False),
        _ts("first_seen"),
        _ts("last_seen"),
        _ts("cleared_at", nullable=True),
        _ts("closed_at", nullable=True),
        _ts("acked_at", nullable=True),
        sa.Column("acked_by", sa.String(100), nullable=True),
        sa.Column("notify_count", sa.Integer, nullable=False),
        _ts("next_notify_at", nullable=True),
    )
    op.create_index("ix_iot_alert_household_id", "iot_alert", ["household_id"])
    # The database, not check-then-insert, guarantees one open alert per (sensor, type).
    op.create_index("uq_iot_alert_open", "iot_alert", ["sensor_id", "type"], unique=True,
                    sqlite_where=sa.text("closed_at IS NULL"),
                    postgresql_where=sa.text("closed_at IS NULL"))
    op.create_table(
        "iot_outbox",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("alert_id", sa.Integer, nullable=False),
        sa.Column("notifier", sa.String(64), nullable=False),
        sa.Column("community", sa.String(64), nullable=False),
        sa.Column("reason", sa.String(16), nullable=False),
        sa.Column("body", sa.Text, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        _ts("created_at"),
        _ts("next_attempt_at"),
        _ts("delivered_at", nullable=True),
        sa.Column("last_error", sa.String(500), nullable=True),
    )
    op.create_index("ix_iot_outbox_alert_id", "iot_outbox", ["alert_id"])
    op.create_index("ix_iot_outbox_due", "iot_outbox", ["status", "next_attempt_at"])


def downgrade() -> None:
    for table in ("iot_outbox", "iot_alert", "iot_chain_checkpoint", "iot_event",
                  "iot_sensor", "iot_allowed_window", "iot_quarantine_period",
                  "iot_household"):
        op.drop_table(table)
