"""Sensor liveness when several instances share the intake (``cluster.enabled``).

With a shared subscription the broker spreads each sensor's messages over all instances,
so no instance's memory knows when a sensor was last heard, or whether the leader marked
it offline. The store's sensor rows are what the instances share:

- **The leader's sweep** takes, per sensor, the newer ``last_seen`` of its memory and the
  store, and the store's ``online`` (:func:`merge_liveness`). The intakes write
  ``last_seen`` only when it moved more than
  :data:`~netguard.iot.batch.STATE_WRITE_INTERVAL` (30 s) past what they last wrote, so
  the stored value may be up to that much behind: the sweep waits that much longer
  (:data:`LAG`) before it calls a sensor silent. It marks a sensor offline with a
  conditional ``UPDATE`` (:func:`mark_offline`) that matches only while the row is still
  online and not seen since, so an intake's concurrent write wins and no alert is raised
  twice, by this leader or by a new one.
- **Each intake** turns a sensor it hears back online in the store in the batch's own
  transaction (:func:`claim_back_online`): the row says ``online = false`` whichever
  instance marked it, and the one instance that flips it back clears the alert, once.

Single-instance mode uses none of this: one process writes every row, so its memory is
the truth.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime

import sqlalchemy as sa
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from netguard.iot.batch import STATE_WRITE_INTERVAL, BatchPlan, Incoming
from netguard.iot.events import AlertType, EventKind
from netguard.iot.models import Sensor
from netguard.iot.rules import AlertAction, ClearAlert, SensorState, format_duration

LAG = STATE_WRITE_INTERVAL
"""How far a stored ``last_seen`` may be behind the last event any intake took."""


def merge_liveness(memory: Mapping[str, SensorState], stored: Mapping[str, SensorState]
                   ) -> dict[str, SensorState]:
    """The sweep's view: each stored sensor with the newer ``last_seen`` of the two and
    the store's ``online`` (the other fields from memory when it has the sensor)."""
    merged: dict[str, SensorState] = {}
    for sensor_id, row in stored.items():
        mine = memory.get(sensor_id)
        if mine is None:
            merged[sensor_id] = row
            continue
        seen = mine.last_seen
        if seen is None or (row.last_seen is not None and row.last_seen > seen):
            seen = row.last_seen
        merged[sensor_id] = dataclasses.replace(mine, household_id=row.household_id,
                                                last_seen=seen, online=row.online,
                                                since=row.since)
    return merged


def heard_back(batch: Sequence[Incoming], duplicates: set[int], plan: BatchPlan
               ) -> dict[str, int]:
    """Sensors a batch heard from that end it online, by the index of their last such
    event, leaving out those whose own rules already cleared an offline alert.

    An ``offline`` event (a last will, sleeping or not) is not hearing from the sensor.
    """
    cleared = {batch[i].sensor_id for i, a in plan.actions
               if isinstance(a, ClearAlert) and a.type is AlertType.OFFLINE}
    out: dict[str, int] = {}
    for i, incoming in enumerate(batch):
        sensor = incoming.sensor_id
        if (i in duplicates or incoming.event is None or sensor is None
                or incoming.event.kind is EventKind.OFFLINE or sensor in cleared):
            continue
        state = plan.states.get(sensor)
        if state is not None and state.online:
            out[sensor] = i
    return out


def back_online(kind: str, heard_at: datetime, last_seen: datetime | None) -> ClearAlert:
    """The clear of an offline alert for a sensor heard at ``heard_at`` (by ``kind``),
    last seen (as stored) at ``last_seen``; same words as the rules' own clear."""
    after = "" if last_seen is None or heard_at < last_seen else \
        f" after {format_duration(heard_at - last_seen)}"
    return ClearAlert(AlertType.OFFLINE, f"sensor back online{after} ({kind})")


async def claim_back_online(session: AsyncSession, sensor_ids: Iterable[str]
                            ) -> dict[str, datetime | None]:
    """Set ``online`` for those of ``sensor_ids`` the store holds offline; their stored
    ``last_seen`` (or creation time), by id. In the caller's transaction.

    The rows are locked first (``FOR NO KEY UPDATE``, in id order, like every intake and
    the sweep), which waits for a :func:`mark_offline` not yet committed and then reads
    its result. A plain ``UPDATE … WHERE NOT online`` would not: PostgreSQL tests the
    condition on the last committed row, which is still online, and does not wait, so
    the sensor's return would be missed and its alert left open (seen in a test).
    """
    ids = sorted(set(sensor_ids))
    if not ids:
        return {}
    rows = (await session.exec(
        select(Sensor.id, Sensor.online, Sensor.last_seen_at, Sensor.created_at)
        .where(col(Sensor.id).in_(ids)).order_by(col(Sensor.id))
        .with_for_update(key_share=True))).all()
    offline: dict[str, datetime | None] = {
        str(i): seen or created for i, online, seen, created in rows if not online}
    if offline:
        await session.exec(sa.update(Sensor).where(col(Sensor.id).in_(sorted(offline)))
                           .values(online=True))
    return offline


async def mark_offline(session: AsyncSession, state: SensorState) -> bool:
    """Mark a sensor offline unless the store holds it offline already or saw it after
    ``state.last_seen`` (another intake heard it meanwhile). True when this did it."""
    seen = col(Sensor.last_seen_at)
    unseen = seen.is_(None) if state.last_seen is None else sa.or_(
        seen.is_(None), seen <= state.last_seen)
    result = await session.exec(
        sa.update(Sensor)
        .where(col(Sensor.id) == state.sensor_id, col(Sensor.online).is_(True), unseen)
        .values(online=False))
    return bool(result.rowcount == 1)


async def reclaimed(session: AsyncSession, batch: Sequence[Incoming],
                    heard: Mapping[str, int]) -> list[tuple[int, ClearAlert]]:
    """Turn the sensors a batch heard (:func:`heard_back`) back online in the store; the
    clear of the offline alert of each the store held offline, by batch index."""
    stored = await claim_back_online(session, heard)
    out: list[tuple[int, ClearAlert]] = []
    for sensor_id, last_seen in stored.items():
        i = heard[sensor_id]
        event = batch[i].event
        assert event is not None
        out.append((i, back_online(event.kind.value, batch[i].when, last_seen)))
    return out


async def confirm_offline(session: AsyncSession, changed: Mapping[str, SensorState],
                          actions: Sequence[tuple[str, AlertAction]]
                          ) -> tuple[dict[str, SensorState], list[tuple[str, AlertAction]]]:
    """Of the sweep's offline decisions, those :func:`mark_offline` made in the store
    (in id order: the intakes lock sensor rows in that order too, so none deadlock)."""
    done = {sensor_id: changed[sensor_id] for sensor_id in sorted(changed)
            if await mark_offline(session, changed[sensor_id])}
    return done, [(sensor_id, a) for sensor_id, a in actions if sensor_id in done]


__all__ = ["LAG", "back_online", "claim_back_online", "confirm_offline", "heard_back",
           "mark_offline", "merge_liveness", "reclaimed"]

