"""Alert lifecycle in the store: raise (idempotently), clear, acknowledge, re-notify.

At most one alert per (sensor, type) is open (``closed_at IS NULL``); a partial unique
index guarantees it and :func:`raise_alert` inserts with ``ON CONFLICT DO NOTHING``, so two
racing raises can never create two alerts. A repeat bumps ``count`` and ``last_seen``;
``count_notified`` is the count staff were last told (see :mod:`netguard.iot.followups`).

Lifecycle: *raised* -> (*cleared*: condition ended) -> *closed*. Offline and battery alerts
close when they clear; door and tamper alerts close when acknowledged, because someone
must look at a door that opened even after it shut again.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from netguard.clock import as_utc
from netguard.errors import InvalidTransitionError, NotFoundError
from netguard.iot.events import AlertType
from netguard.iot.models import Alert
from netguard.iot.rules import AUTO_CLOSE, ClearAlert, RaiseAlert, next_notify_at

_OPEN = sa.text("closed_at IS NULL")


def dialect_insert(dialect: str) -> Any:
    """The dialect's ``insert`` (with ``on_conflict_do_nothing``)."""
    return postgresql.insert if dialect == "postgresql" else sqlite.insert


@dataclass(frozen=True, slots=True)
class AlertTarget:
    """Who an alert is about."""

    sensor_id: str
    household_id: str
    community: str


async def raise_alert(session: AsyncSession, dialect: str, target: AlertTarget,
                      action: RaiseAlert, *, now: datetime,
                      schedule: Sequence[float]) -> tuple[int, bool]:
    """Open an alert, or bump the open one.

    Returns:
        ``(alert id, True)`` when a new alert was opened (notify now), else
        ``(alert id, False)``.
    """
    reasons = json.dumps(list(action.reasons), ensure_ascii=False)
    stmt = (
        dialect_insert(dialect)(Alert)
        .values(sensor_id=target.sensor_id, household_id=target.household_id,
                community=target.community, type=action.type.value,
                severity=action.severity, reasons=reasons, count=1, first_seen=now,
                last_seen=now, notify_count=1, count_notified=1,
                next_notify_at=next_notify_at(now, 1, schedule))
        .on_conflict_do_nothing(index_elements=["sensor_id", "type"], index_where=_OPEN)
        .returning(col(Alert.id))
    )
    new_id = (await session.exec(stmt)).scalar_one_or_none()
    if new_id is not None:
        return int(new_id), True
    values: dict[str, Any] = {"count": col(Alert.count) + 1, "last_seen": now,
                              "cleared_at": None}
    if action.type is not AlertType.DOOR_OPEN:
        # A door alert keeps every opening in its reasons (netguard.iot.followups adds
        # them); the other types say what the condition is now.
        values["reasons"] = reasons
    bumped = await session.exec(
        sa.update(Alert)
        .where(col(Alert.sensor_id) == target.sensor_id, col(Alert.type) == action.type.value,
               col(Alert.closed_at).is_(None))
        .values(**values)
        .returning(col(Alert.id))
    )
    return int(bumped.scalar_one()), False


async def clear_alert(session: AsyncSession, sensor_id: str, action: ClearAlert,
                      now: datetime) -> int | None:
    """Record that the condition ended; auto-closing types close. Returns the alert id."""
    values: dict[str, Any] = {"cleared_at": now}
    if action.type in AUTO_CLOSE:
        values.update(closed_at=now, next_notify_at=None)
    result = await session.exec(
        sa.update(Alert)
        .where(col(Alert.sensor_id) == sensor_id, col(Alert.type) == action.type.value,
               col(Alert.closed_at).is_(None), col(Alert.cleared_at).is_(None))
        .values(**values)
        .returning(col(Alert.id))
    )
    found = result.scalar_one_or_none()
    return None if found is None else int(found)


async def acknowledge(session: AsyncSession, alert_id: int, actor: str,
                      now: datetime, *, via: str | None = None) -> Alert:
    """Acknowledge an open alert on behalf of ``actor`` (recorded, with ``via``: how, e.g.
    ``chat-link``); stops re-notifying.

    Raises:
        NotFoundError: No such alert.
        InvalidTransitionError: It is already acknowledged or closed.
    """
    alert = await session.get(Alert, alert_id)
    if alert is None:
        raise NotFoundError("alert", str(alert_id))
    if alert.acked_at is not None or alert.closed_at is not None:
        state = "closed" if alert.closed_at is not None else "acknowledged"
        raise InvalidTransitionError(f"alert {alert_id}", state, "ack", [])
    alert.acked_at = now
    alert.acked_by = actor
    alert.acked_via = via
    alert.next_notify_at = None
    if AlertType(alert.type) not in AUTO_CLOSE or alert.cleared_at is not None:
        alert.closed_at = now
    session.add(alert)
    return alert


async def due_renotify(session: AsyncSession, now: datetime, limit: int = 500) -> list[Alert]:
    """Open, unacknowledged alerts whose next notification is due."""
    rows = await session.exec(
        select(Alert)
        .where(col(Alert.closed_at).is_(None), col(Alert.acked_at).is_(None),
               col(Alert.next_notify_at).is_not(None), col(Alert.next_notify_at) <= now)
        .order_by(col(Alert.id)).limit(limit))
    return list(rows.all())


def mark_renotified(alert: Alert, schedule: Sequence[float], now: datetime) -> None:
    """Advance an alert along its re-notify schedule, skipping points already past
    (after downtime one reminder goes out, not a burst)."""
    first = as_utc(alert.first_seen)
    while True:
        alert.notify_count += 1
        alert.next_notify_at = next_notify_at(first, alert.notify_count, schedule)
        if alert.next_notify_at is None or alert.next_notify_at > now:
            return


def alert_dict(alert: Alert) -> dict[str, Any]:
    """A JSON-ready view of an alert."""

    def ts(value: datetime | None) -> str | None:
        return None if value is None else as_utc(value).isoformat()

    return {
        "id": alert.id, "sensor": alert.sensor_id, "household": alert.household_id,
        "community": alert.community, "type": alert.type, "severity": alert.severity,
        "reasons": json.loads(alert.reasons), "count": alert.count,
        "first_seen": ts(alert.first_seen), "last_seen": ts(alert.last_seen),
        "cleared_at": ts(alert.cleared_at), "closed_at": ts(alert.closed_at),
        "acked_at": ts(alert.acked_at), "acked_by": alert.acked_by,
        "acked_via": alert.acked_via,
        "notify_count": alert.notify_count, "count_notified": alert.count_notified,
        "next_notify_at": ts(alert.next_notify_at),
        "state": ("closed" if alert.closed_at else "cleared" if alert.cleared_at
                  else "active"),
    }
