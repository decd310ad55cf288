"""Door-sensor tables: registry, the hash-chained event log, alerts and the outbox.

Every timestamp is a timezone-aware UTC ``DateTime(timezone=True)``; SQLite hands them back
naive, so readers pass them through :func:`netguard.clock.as_utc`.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Mapping
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

# The longest topic stored; a longer one is refused (dead letter ``bad_topic``, stored cut).
TOPIC_MAX = 512


def _ts(*, nullable: bool = False, index: bool = False) -> sa.Column[datetime]:
    return sa.Column(sa.DateTime(timezone=True), nullable=nullable, index=index)


class Household(SQLModel, table=True):
    """A household under (possible) home quarantine; personal data is kept minimal."""

    __tablename__ = "iot_household"

    id: str = Field(primary_key=True, max_length=64)
    community: str = Field(index=True, max_length=64)
    label: str = Field(default="", max_length=200)
    created_at: datetime = Field(sa_column=_ts())


class QuarantinePeriod(SQLModel, table=True):
    """One quarantine period of a household; ``end_at`` is None while it is open-ended."""

    __tablename__ = "iot_quarantine_period"

    id: int | None = Field(default=None, primary_key=True)
    household_id: str = Field(foreign_key="iot_household.id", index=True, max_length=64)
    start_at: datetime = Field(sa_column=_ts())
    end_at: datetime | None = Field(default=None, sa_column=_ts(nullable=True))


class AllowedWindow(SQLModel, table=True):
    """A window in which the door may open without an alert (e.g. a scheduled test visit).

    One-off: ``[start_at, end_at)``. Recurring (``repeat`` set, e.g. ``daily 18:00-18:30``,
    read in ``timezone``): windows start between ``start_at`` and ``end_at``.
    """

    __tablename__ = "iot_allowed_window"

    id: int | None = Field(default=None, primary_key=True)
    household_id: str = Field(foreign_key="iot_household.id", index=True, max_length=64)
    start_at: datetime = Field(sa_column=_ts())
    end_at: datetime = Field(sa_column=_ts())
    reason: str = Field(default="", max_length=200)
    repeat: str | None = Field(default=None, max_length=120)
    timezone: str | None = Field(default=None, max_length=64)


class Sensor(SQLModel, table=True):
    """A sensor bound to a household, and its last known state.

    ``address`` is the name the sensor has on the bus: the native sensor id, the
    Zigbee2MQTT friendly name or the Shelly device id.
    """

    __tablename__ = "iot_sensor"
    __table_args__ = (sa.UniqueConstraint("format", "address", name="uq_iot_sensor_address"),)

    id: str = Field(primary_key=True, max_length=64)
    household_id: str = Field(foreign_key="iot_household.id", index=True, max_length=64)
    kind: str = Field(default="door", max_length=32)
    format: str = Field(max_length=16)
    address: str = Field(max_length=128)
    created_at: datetime = Field(sa_column=_ts())
    last_seen_at: datetime | None = Field(default=None, sa_column=_ts(nullable=True))
    battery: float | None = None
    contact: str | None = Field(default=None, max_length=8)
    online: bool = True
    tamper: bool = False


class Event(SQLModel, table=True):
    """One received MQTT message, append-only and hash-chained.

    Accepted events and dead letters share the chain, so that nothing received is ever
    silently dropped. ``digest`` is the SHA-256 of the row's content and ``hash`` is
    ``sha256(prev_hash + digest)``; a retention purge clears the content but keeps
    ``digest``, so the chain still verifies.
    """

    __tablename__ = "iot_event"
    __table_args__ = (
        sa.UniqueConstraint("chain", "chain_seq", name="uq_iot_event_chain_seq"),
        sa.Index("ix_iot_event_household_time", "household_id", "received_at"),
    )

    id: int | None = Field(default=None, primary_key=True)
    chain: str = Field(max_length=64)
    chain_seq: int = Field(sa_column=sa.Column(sa.BigInteger, nullable=False))
    identity: str = Field(unique=True, max_length=200)
    received_at: datetime = Field(sa_column=_ts(index=True))
    topic: str = Field(default="", max_length=TOPIC_MAX)
    # The first ``iot.raw_keep_bytes`` of the raw payload; its full size and SHA-256 are
    # kept beside it, so a publisher cannot fill the disk through dead letters.
    payload: bytes | None = Field(default=None, sa_column=sa.Column(sa.LargeBinary))
    payload_size: int | None = None
    payload_sha256: str | None = Field(default=None, max_length=64)
    sensor_id: str | None = Field(default=None, max_length=64, index=True)
    household_id: str | None = Field(default=None, max_length=64)
    kind: str = Field(max_length=16)
    contact: str | None = Field(default=None, max_length=8)
    battery: float | None = None
    device_time: datetime | None = Field(default=None, sa_column=_ts(nullable=True))
    seq: int | None = Field(default=None, sa_column=sa.Column(sa.BigInteger))
    mqtt_mid: int | None = None
    dead_reason: str | None = Field(default=None, max_length=32)
    detail: str | None = Field(default=None, max_length=500)
    purged: bool = False
    digest: str = Field(max_length=64)
    prev_hash: str = Field(max_length=64)
    hash: str = Field(max_length=64)


class ChainCheckpoint(SQLModel, table=True):
    """Where a chain starts after a retention purge deleted its oldest rows.

    ``prev_hash``, ``digest`` and ``received_at`` are those of the last deleted row (they
    hash to ``hash``), and ``mac`` is an HMAC over the checkpoint with ``iot.audit_key``;
    all four are None in checkpoints written before audit revision 0003.
    """

    __tablename__ = "iot_chain_checkpoint"

    chain: str = Field(primary_key=True, max_length=64)
    chain_seq: int = Field(sa_column=sa.Column(sa.BigInteger, nullable=False))
    hash: str = Field(max_length=64)
    purged_at: datetime = Field(sa_column=_ts())
    prev_hash: str | None = Field(default=None, max_length=64)
    digest: str | None = Field(default=None, max_length=64)
    received_at: datetime | None = Field(default=None, sa_column=_ts(nullable=True))
    mac: str | None = Field(default=None, max_length=64)


class Alert(SQLModel, table=True):
    """One alert; at most one is open (``closed_at IS NULL``) per (sensor, type)."""

    __tablename__ = "iot_alert"
    __table_args__ = (
        sa.Index("uq_iot_alert_open", "sensor_id", "type", unique=True,
                 sqlite_where=sa.text("closed_at IS NULL"),
                 postgresql_where=sa.text("closed_at IS NULL")),
    )

    id: int | None = Field(default=None, primary_key=True)
    sensor_id: str = Field(max_length=64)
    household_id: str = Field(max_length=64, index=True)
    community: str = Field(max_length=64)
    type: str = Field(max_length=16)
    severity: str = Field(max_length=16)
    reasons: str = Field(default="[]", max_length=2000)
    count: int = 1
    first_seen: datetime = Field(sa_column=_ts())
    last_seen: datetime = Field(sa_column=_ts())
    cleared_at: datetime | None = Field(default=None, sa_column=_ts(nullable=True))
    closed_at: datetime | None = Field(default=None, sa_column=_ts(nullable=True))
    acked_at: datetime | None = Field(default=None, sa_column=_ts(nullable=True))
    acked_by: str | None = Field(default=None, max_length=100)
    # How it was acknowledged: ``chat-link`` (an acknowledgement link); None for the CLI
    # and the API, which predate the column.
    acked_via: str | None = Field(default=None, max_length=16)
    notify_count: int = 0
    # ``count`` as of the last message about the alert: a door alert with ``count``
    # above it has openings not yet told (folded into the next "opened again" message).
    count_notified: int = 0
    next_notify_at: datetime | None = Field(default=None, sa_column=_ts(nullable=True))


class AckNonce(SQLModel, table=True):
    """A spent acknowledgement link (:mod:`netguard.acklinks`): its nonce, inserted in the
    transaction that acknowledges, so that a link works once."""

    __tablename__ = "iot_ack_nonce"

    nonce: str = Field(primary_key=True, max_length=32)
    alert_id: int = Field(index=True)  # the alert's, or the ticket's (``subject``)
    subject: str = Field(default="alert", max_length=16,
                         sa_column_kwargs={"server_default": "alert"})
    actor: str = Field(max_length=100)
    used_at: datetime = Field(sa_column=_ts())


class OutboxMessage(SQLModel, table=True):
    """One notification waiting for (or done with) delivery through one notifier.

    ``subject`` says what ``alert_id`` names: a door alert (``alert``), a ticket
    (``ticket``) or an Alertmanager receipt (``alertmanager``, :class:`AmReceipt`).
    """

    __tablename__ = "iot_outbox"
    __table_args__ = (sa.Index("ix_iot_outbox_due", "status", "next_attempt_at"),
                      sa.Index("ix_iot_outbox_subject", "subject", "alert_id"))

    id: int | None = Field(default=None, primary_key=True)
    alert_id: int = Field(index=True)
    subject: str = Field(default="alert", max_length=16,
                         sa_column_kwargs={"server_default": "alert"})
    notifier: str = Field(max_length=64)
    community: str = Field(max_length=64)
    reason: str = Field(max_length=16)
    body: str = Field(sa_column=sa.Column(sa.Text, nullable=False))
    status: str = Field(default="pending", max_length=16)
    attempts: int = 0
    created_at: datetime = Field(sa_column=_ts())
    next_attempt_at: datetime = Field(sa_column=_ts())
    delivered_at: datetime | None = Field(default=None, sa_column=_ts(nullable=True))
    last_error: str | None = Field(default=None, max_length=500)


class AmReceipt(SQLModel, table=True):
    """One distinct notification received from Alertmanager (a group key, its status and
    its alerts), so that Alertmanager's retries are acknowledged without a second
    message; ``count`` says how often it came."""

    __tablename__ = "am_receipt"

    id: int | None = Field(default=None, primary_key=True)
    # SHA-256 (hex) of the group key, the status and the alerts' fingerprints and times.
    dedupe_key: str = Field(max_length=64, unique=True)
    group_key: str = Field(sa_column=sa.Column(sa.Text, nullable=False))
    status: str = Field(max_length=16)
    first_at: datetime = Field(sa_column=_ts())
    last_at: datetime = Field(sa_column=_ts())
    count: int = 1


# ---------------------------------------------------------------- column limits
#
# What a column accepts is derived from the table definitions above, so that a value from
# a message is checked against the same limits the database enforces (PostgreSQL refuses
# an over-long VARCHAR, a NUL in text and an integer beyond its type; SQLite refuses an
# integer beyond 64 bits) before the insert, and one bad message cannot fail a batch.

_INT_RANGE = {sa.BigInteger: (-(2**63), 2**63 - 1), sa.SmallInteger: (-(2**15), 2**15 - 1)}
_INT32 = (-(2**31), 2**31 - 1)


def _int_range(kind: sa.types.TypeEngine[Any]) -> tuple[int, int]:
    for integer, bounds in _INT_RANGE.items():
        if isinstance(kind, integer):
            return bounds
    return _INT32


def _text_problem(value: str, length: int | None) -> str | None:
    if length is not None and len(value) > length:
        return f"{len(value)} characters, at most {length}"
    if "\x00" in value:
        return "contains NUL"
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return "not encodable as UTF-8 (lone surrogate)"
    return None


def row_problems(table: sa.Table, row: Mapping[str, Any]) -> list[str]:
    """Why ``row`` would not fit ``table``'s columns (empty: it fits).

    Checks text length, NUL and encodability, and integer ranges; what the database would
    otherwise refuse at the insert.
    """
    problems: list[str] = []
    for name, value in row.items():
        column = table.columns.get(name)
        if column is None or value is None:
            continue
        kind = column.type
        if isinstance(kind, sa.TypeDecorator):  # SQLModel's AutoString wraps a VARCHAR
            kind = kind.impl_instance
        if isinstance(kind, sa.String) and isinstance(value, str):
            problem = _text_problem(value, kind.length)
            if problem is not None:
                problems.append(f"{name}: {problem}")
        elif (isinstance(kind, sa.Integer) and isinstance(value, int)
              and not isinstance(value, bool)):
            low, high = _int_range(kind)
            if not low <= value <= high:
                problems.append(f"{name}: {_short_int(value)} out of range {low}..{high}")
    return problems


def _short_int(value: int) -> str:
    text = str(value)
    return text if len(text) <= 24 else f"{text[:12]}...({len(text)} digits)"


def printable(text: str) -> str:
    """``text`` with control characters, NUL and lone surrogates escaped (``\\x00``).

    For storing (and logging) text from a message in a dead letter: what was received stays
    readable, and the row always fits a text column.
    """
    out: list[str] = []
    for ch in text:
        if unicodedata.category(ch) in ("Cc", "Cs"):
            out.append(ch.encode("unicode_escape", "backslashreplace").decode("ascii"))
        else:
            out.append(ch)
    return "".join(out)


def fit_text(text: str, length: int) -> str:
    """:func:`printable` ``text`` cut to ``length`` characters (marked with ``...``)."""
    text = printable(text)
    return text if len(text) <= length else text[:length - 3] + "..."
