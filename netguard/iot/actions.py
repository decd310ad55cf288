"""Applying the rules' alert actions: alert rows and the notifications they send.

The rules (:mod:`netguard.iot.rules`) decide; these functions write the decision in the
caller's transaction and add the outbox rows, which the caller hands to the
:class:`~netguard.iot.outbox.OutboxWorker` after its commit.
"""

from __future__ import annotations

from datetime import datetime

from sqlmodel import col, func, select
from sqlmodel.ext.asyncio.session import AsyncSession

from netguard.iot import alerts as alert_store
from netguard.iot.config import IotConfig
from netguard.iot.followups import FollowUps
from netguard.iot.models import Alert, OutboxMessage
from netguard.iot.notifiers.base import Notification
from netguard.iot.outbox import enqueue
from netguard.iot.registry import RegistryView
from netguard.iot.rules import AlertAction, ClearAlert, RaiseAlert


async def apply_action(session: AsyncSession, *, dialect: str, view: RegistryView,
                       sensor_id: str, action: AlertAction, now: datetime,
                       config: IotConfig, outbox_rows: list[OutboxMessage],
                       followups: FollowUps | None = None) -> tuple[int | None, bool]:
    """Open, bump or clear one alert of ``sensor_id``; a new alert's notifications, and
    the follow-ups (repeat openings, recovery) of ``followups``, go into ``outbox_rows``.

    Returns:
        The alert's id (None when a clear found no open alert) and whether it is new.
    """
    state = view.states.get(sensor_id)
    household_id = state.household_id if state else ""
    entry = view.by_id.get(sensor_id)
    if entry is not None:
        household_id = entry.household_id
    household = view.households.get(household_id)
    community = household.community if household else ""
    if isinstance(action, ClearAlert):
        cleared = await alert_store.clear_alert(session, sensor_id, action, now)
        if followups is not None:
            outbox_rows += await followups.after(session, sensor_id, action, cleared,
                                                 new=False, now=now)
        return cleared, False
    assert isinstance(action, RaiseAlert)
    target = alert_store.AlertTarget(sensor_id, household_id, community)
    alert_id, new = await alert_store.raise_alert(
        session, dialect, target, action, now=now, schedule=config.rules.renotify_minutes)
    if new:
        outbox_rows += enqueue(session, Notification(
            alert_id=alert_id, reason="raised", type=action.type.value,
            severity=action.severity, community=community, household=household_id,
            sensor=sensor_id, reasons=action.reasons, count=1,
            first_seen=now.isoformat()), config.routes, now)
    if followups is not None:
        outbox_rows += await followups.after(session, sensor_id, action, alert_id, new=new,
                                             now=now)
    return alert_id, new


async def renotify_due(session: AsyncSession, config: IotConfig, now: datetime
                       ) -> list[OutboxMessage]:
    """Enqueue a reminder for each unacknowledged alert whose next reminder is due."""
    outbox_rows: list[OutboxMessage] = []
    for alert in await alert_store.due_renotify(session, now):
        assert alert.id is not None
        described = alert_store.alert_dict(alert)
        outbox_rows += enqueue(session, Notification(
            alert_id=alert.id, reason="renotify", type=alert.type,
            severity=alert.severity, community=alert.community,
            household=alert.household_id, sensor=alert.sensor_id,
            reasons=tuple(described["reasons"]), count=alert.count,
            first_seen=described["first_seen"]), config.routes, now)
        alert_store.mark_renotified(alert, config.rules.renotify_minutes, now)
        session.add(alert)
    return outbox_rows


async def count_open_alerts(session: AsyncSession) -> dict[tuple[str, str], int]:
    """Open alerts by (type, community)."""
    rows = (await session.exec(
        select(Alert.type, Alert.community, func.count())
        .where(col(Alert.closed_at).is_(None))
        .group_by(col(Alert.type), col(Alert.community)))).all()
    return {(str(t), str(c)): int(n) for t, c, n in rows}


__all__ = ["apply_action", "count_open_alerts", "renotify_due"]
