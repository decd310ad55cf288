"""The IoT service's periodic upkeep and its answer to a wall-clock step.

:func:`due_heartbeats` and :func:`shift_states` are pure; the others write in the caller's
transaction.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from netguard.clock import as_utc
from netguard.iot.config import RulesConfig
from netguard.iot.models import Alert, OutboxMessage, Sensor
from netguard.iot.registry import RegistryView, states_to_rows
from netguard.iot.rules import AlertAction, SensorState, check_heartbeat


def due_heartbeats(view: RegistryView, rules: RulesConfig, now: datetime, *,
                   lag: timedelta = timedelta(0)
                   ) -> tuple[dict[str, SensorState], list[tuple[str, AlertAction]]]:
    """Sensors of supervised households silent past the heartbeat timeout (plus ``lag``,
    how far the view's ``last_seen`` may be behind: see :mod:`netguard.iot.liveness`).

    Returns:
        Their new states by sensor id, and the (sensor id, action) pairs to apply.
    """
    changed: dict[str, SensorState] = {}
    actions: list[tuple[str, AlertAction]] = []
    for sensor_id, state in view.states.items():
        household = view.households.get(state.household_id)
        if household is None or not household.supervised(now):
            continue  # a sensor left behind after quarantine ended is nobody's alarm
        entry = view.by_id.get(sensor_id)
        timeout = None if entry is None else rules.heartbeat_timeout(
            entry.fmt, entry.address, sensor_id)
        result = check_heartbeat(state, rules, now, timeout_seconds=timeout, lag=lag)
        if result.actions:
            changed[sensor_id] = result.state
            actions.extend((sensor_id, a) for a in result.actions)
    return changed, actions


def shift_states(states: Mapping[str, SensorState], delta: timedelta
                 ) -> dict[str, SensorState]:
    """Each sensor's liveness baselines (``last_seen``, ``since``) moved by ``delta``."""
    return {
        sensor_id: dataclasses.replace(
            state,
            last_seen=None if state.last_seen is None else state.last_seen + delta,
            since=None if state.since is None else state.since + delta)
        for sensor_id, state in states.items()}


async def write_states(session: AsyncSession, states: Iterable[SensorState]) -> None:
    """Persist sensor states (a bulk update; nothing for an empty ``states``)."""
    rows = states_to_rows(states)
    if rows:
        await session.exec(sa.update(Sensor), params=rows)


async def shift_due_times(session: AsyncSession, delta: timedelta) -> int:
    """Move the due time of each pending alert retry and each open alert's next reminder
    by ``delta``; returns how many retries moved.

    A retry waiting out its backoff keeps the wait it had left: without this, a backward
    step of an hour held every failed alert for an hour. Reminders likewise keep their
    distance.
    """
    waiting = (await session.exec(
        select(OutboxMessage.id, OutboxMessage.next_attempt_at)
        .where(col(OutboxMessage.status) == "pending"))).all()
    if waiting:
        await session.exec(sa.update(OutboxMessage), params=[
            {"id": row_id, "next_attempt_at": as_utc(due) + delta}
            for row_id, due in waiting])
    reminders = (await session.exec(
        select(Alert.id, Alert.next_notify_at)
        .where(col(Alert.closed_at).is_(None),
               col(Alert.next_notify_at).is_not(None)))).all()
    if reminders:
        await session.exec(sa.update(Alert), params=[
            {"id": row_id, "next_notify_at": as_utc(due) + delta}
            for row_id, due in reminders if due is not None])
    return len(waiting)


__all__ = ["due_heartbeats", "shift_due_times", "shift_states", "write_states"]
