"""Messages after an alert's first one: "door opened again" and "sensor back online".

A door alert stays open until someone acknowledges it. Each opening while it is open
bumps its ``count`` (:func:`netguard.iot.alerts.raise_alert`) and adds a line to its
reasons; staff are told with a ``repeat`` message carrying the count and the first
opening's time. At most one door message per sensor goes out per
``iot.rules.min_repeat_interval`` seconds (the alert's own first message included): the
openings in between are *folded* (``count`` runs ahead of ``count_notified``, both
stored) and the sweep sends them in one message once the interval has passed.
Acknowledging closes the alert, so folded openings it covers are never sent, and the next
opening raises a new alert.

The interval is measured on the monotonic clock and kept in memory: after a restart the
first repeat goes out at once, and a batch whose commit fails can delay the next one by
at most one interval (the folded count itself commits with the openings, so nothing is
lost).

When an offline alert clears because the sensor is heard again, a ``recovery`` message
("sensor back online after 3 h 12 min") goes to the routes with ``notify_recovery``.
"""

from __future__ import annotations

import json
from datetime import datetime

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from netguard.clock import Clock, as_utc
from netguard.iot.config import IotConfig
from netguard.iot.events import AlertType
from netguard.iot.models import Alert, OutboxMessage
from netguard.iot.notifiers.base import Notification
from netguard.iot.outbox import enqueue
from netguard.iot.rules import AlertAction, ClearAlert, RaiseAlert, format_duration

# What fits ``iot_alert.reasons`` (VARCHAR 2000) as JSON, with room to spare.
REASONS_MAX_CHARS = 1800


def openings_to_send(count: int, count_notified: int, last_message: float | None,
                     now: float, interval: float) -> int:
    """How many openings a "door opened again" message reports now (0: none yet).

    Args:
        count: Openings of the alert so far (the first included).
        count_notified: ``count`` as of the alert's last message.
        last_message: Monotonic time of the sensor's last door message, None if unknown
            (a restart): then nothing holds the message back.
        now: Monotonic now.
        interval: ``iot.rules.min_repeat_interval``.

    Returns:
        The openings folded since the last message when a message is due, else 0.
    """
    pending = count - count_notified
    if pending <= 0:
        return 0
    if last_message is not None and now - last_message < interval:
        return 0
    return pending


def ordinal(n: int) -> str:
    """``1st``, ``2nd``, ``3rd``, ``4th``, ``11th``, ``22nd``."""
    if 10 <= n % 100 <= 20:
        return f"{n}th"
    return f"{n}{ {1: 'st', 2: 'nd', 3: 'rd'}.get(n % 10, 'th')}"


def repeat_text(count: int, folded: int, first_seen: datetime, last_seen: datetime) -> str:
    """The reason line of a "door opened again" message."""
    text = (f"door opened again ({ordinal(count)} time in "
            f"{format_duration(last_seen - first_seen)}; first opening at "
            f"{as_utc(first_seen).isoformat(timespec='seconds')})")
    if folded > 1:
        text += f"; {folded} openings since the last message"
    return text


def append_reason(reasons: list[str], line: str, limit: int = REASONS_MAX_CHARS) -> list[str]:
    """``reasons`` plus ``line``, dropping the oldest lines after the first (replaced by
    a count of them) until the JSON fits ``limit`` characters."""
    first, rest, dropped = reasons[:1], reasons[1:], 0
    if rest and rest[0].startswith("(") and rest[0].endswith(" earlier lines not kept)"):
        dropped = int(rest[0][1:].split(" ", 1)[0])
        rest = rest[1:]
    rest.append(line)

    def joined() -> list[str]:
        marker = [f"({dropped} earlier lines not kept)"] if dropped else []
        return first + marker + rest

    while len(json.dumps(joined(), ensure_ascii=False)) > limit and len(rest) > 1:
        rest.pop(0)
        dropped += 1
    return joined()


class FollowUps:
    """Repeat-opening and recovery messages (see the module docs).

    Args:
        config: ``iot`` settings (rules and routes).
        clock: Wall time for records, monotonic time for the interval.
    """

    def __init__(self, config: IotConfig, clock: Clock) -> None:
        self._config = config
        self._clock = clock
        # Monotonic time of each sensor's last door message.
        self._last: dict[str, float] = {}

    async def after(self, session: AsyncSession, sensor_id: str, action: AlertAction,
                    alert_id: int | None, *, new: bool, now: datetime
                    ) -> list[OutboxMessage]:
        """The follow-up messages of one applied rule action (none for most).

        Args:
            session: The transaction that applied the action.
            sensor_id: The sensor the action is about.
            action: What the rules decided.
            alert_id: The alert raised, bumped or cleared (None: nothing was open).
            new: A new alert was opened (its first message is already queued).
            now: The event's time.
        """
        if alert_id is None:
            return []
        if isinstance(action, ClearAlert):
            if action.type is not AlertType.OFFLINE:
                return []
            return await self._recovered(session, action, alert_id, now)
        assert isinstance(action, RaiseAlert)
        if action.type is not AlertType.DOOR_OPEN:
            return []
        if new:
            self._last[sensor_id] = self._clock.monotonic()
            return []
        alert = await session.get(Alert, alert_id, populate_existing=True)
        assert alert is not None
        at = as_utc(now).isoformat(timespec="seconds")
        alert.reasons = json.dumps(
            append_reason(json.loads(alert.reasons),
                          f"door opened again at {at} ({ordinal(alert.count)} opening)"),
            ensure_ascii=False)
        session.add(alert)
        return self._repeat(session, alert, now)

    async def sweep(self, session: AsyncSession, now: datetime) -> list[OutboxMessage]:
        """Send the folded openings whose interval has passed."""
        interval = self._config.rules.min_repeat_interval
        mono = self._clock.monotonic()
        self._last = {k: v for k, v in self._last.items() if mono - v < interval}
        rows = (await session.exec(
            select(Alert).where(col(Alert.type) == AlertType.DOOR_OPEN.value,
                                col(Alert.closed_at).is_(None), col(Alert.acked_at).is_(None),
                                col(Alert.count) > col(Alert.count_notified))
            .order_by(col(Alert.id)))).all()
        out: list[OutboxMessage] = []
        for alert in rows:
            out += self._repeat(session, alert, now)
        return out

    def _repeat(self, session: AsyncSession, alert: Alert, now: datetime
                ) -> list[OutboxMessage]:
        mono = self._clock.monotonic()
        folded = openings_to_send(alert.count, alert.count_notified,
                                  self._last.get(alert.sensor_id), mono,
                                  self._config.rules.min_repeat_interval)
        if not folded:
            return []
        assert alert.id is not None
        self._last[alert.sensor_id] = mono
        alert.count_notified = alert.count
        session.add(alert)
        first = as_utc(alert.first_seen)
        return enqueue(session, Notification(
            alert_id=alert.id, reason="repeat", type=alert.type, severity=alert.severity,
            community=alert.community, household=alert.household_id, sensor=alert.sensor_id,
            reasons=(repeat_text(alert.count, folded, first, as_utc(alert.last_seen)),),
            count=alert.count, first_seen=first.isoformat()), self._config.routes, now)

    async def _recovered(self, session: AsyncSession, action: ClearAlert, alert_id: int,
                         now: datetime) -> list[OutboxMessage]:
        alert = await session.get(Alert, alert_id)
        assert alert is not None
        return enqueue(session, Notification(
            alert_id=alert_id, reason="recovery", type=alert.type, severity=alert.severity,
            community=alert.community, household=alert.household_id, sensor=alert.sensor_id,
            reasons=(action.reason,), count=alert.count,
            first_seen=as_utc(alert.first_seen).isoformat()), self._config.routes, now)


__all__ = ["FollowUps", "append_reason", "openings_to_send", "ordinal", "repeat_text"]
