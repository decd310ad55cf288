"""Acceptance 2, through the service and a real store (SQLite and PostgreSQL):
dedup, clear, acknowledgement and re-notification, with a ManualClock."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import pytest
from sqlmodel import col, select

from netguard.clock import ManualClock, as_utc
from netguard.errors import InvalidTransitionError
from netguard.faults import Severity
from netguard.iot import alerts as alert_store
from netguard.iot.events import AlertType
from netguard.iot.models import Alert, Event, OutboxMessage
from netguard.iot.rules import RaiseAlert
from netguard.iot.service import IotService
from netguard.store import Store
from tests.iot.conftest import T0, make_settings, register_estate
from tests.support.wait import async_wait_until

IOT = {
    "notifiers": [{"name": "log", "type": "console"}],
    "routes": [{"community": "*", "notifiers": ["log"]}],
    "rules": {"heartbeat_timeout_seconds": 600, "renotify_minutes": [5, 15, 30]},
}


@pytest.fixture
async def service(store: Store, clock: ManualClock) -> AsyncIterator[IotService]:
    await register_estate(store, T0)
    settings = make_settings(store.config, IOT)
    async with IotService(settings.iot, store, clock=clock) as svc:
        yield svc


def native(sensor: str, seq: int, **body: object) -> tuple[str, bytes]:
    return (f"netguard/sensors/{sensor}/event",
            json.dumps({"sensor": sensor, "seq": seq, **body}).encode())


async def alerts(store: Store) -> list[Alert]:
    async with store.session() as s:
        return list((await s.exec(select(Alert).order_by(col(Alert.id)))).all())


async def outbox(store: Store) -> list[OutboxMessage]:
    async with store.session() as s:
        return list((await s.exec(select(OutboxMessage).order_by(col(OutboxMessage.id)))).all())


async def test_repeated_openings_make_one_alert_and_one_notification(
        service: IotService, store: Store, clock: ManualClock) -> None:
    for seq in range(3):
        result = await service.ingest(*native("n1", seq, event="open"))
        assert result.status == "stored"
        clock.advance(10)
    [alert] = await alerts(store)
    assert (alert.type, alert.count, alert.community) == ("door_open", 3, "c1")
    rows = await outbox(store)
    assert [(r.alert_id, r.reason) for r in rows] == [(alert.id, "raised")]
    # The open-alert gauge is recounted in the background, off the ingest path.
    await async_wait_until(_gauge(service, {("door_open", "c1"): 1}), what="gauge")


def _gauge(service: IotService, expected: dict[tuple[str, str], int]) -> Any:
    async def check() -> bool:
        return dict(service.snapshot().alerts_open) == expected
    return check


async def test_ack_records_actor_and_stops_renotify(service: IotService, store: Store,
                                                    clock: ManualClock) -> None:
    await service.ingest(*native("n1", 1, event="open"))
    [alert] = await alerts(store)
    assert alert.id is not None
    clock.advance(5 * 60)
    await service.sweep()
    clock.advance(10 * 60)
    await service.sweep()
    await service.sweep()  # nothing new due: no extra row
    reasons = [r.reason for r in await outbox(store) if r.alert_id == alert.id]
    assert reasons == ["raised", "renotify", "renotify"]
    acked = await service.acknowledge(alert.id, "li.wei")
    assert acked["acked_by"] == "li.wei"
    assert acked["state"] == "closed"
    clock.advance(60 * 60)
    await service.sweep()
    assert [r.reason for r in await outbox(store) if r.alert_id == alert.id] == reasons
    with pytest.raises(InvalidTransitionError):
        await service.acknowledge(alert.id, "someone.else")
    # After acknowledgement a new opening is a new alert.
    await service.ingest(*native("n1", 2, event="open"))
    assert [a.type for a in await alerts(store) if a.type == "door_open"] == ["door_open"] * 2


async def test_renotify_schedule_ends(service: IotService, store: Store,
                                      clock: ManualClock) -> None:
    result = await service.ingest(*native("n1", 1, event="open"))
    [alert_id] = result.alerts_raised
    for minutes in (5, 10, 15, 60):
        clock.advance(minutes * 60)
        await service.sweep()
    assert [r.reason for r in await outbox(store) if r.alert_id == alert_id] == [
        "raised", "renotify", "renotify", "renotify"]


async def test_no_alert_outside_quarantine(service: IotService, store: Store) -> None:
    result = await service.ingest(*native("n2", 1, event="open"))
    assert result.status == "stored"
    assert result.alerts_raised == ()
    assert await alerts(store) == []


async def test_offline_by_heartbeat_then_auto_clear(service: IotService, store: Store,
                                                    clock: ManualClock) -> None:
    clock.advance(599)
    await service.sweep()
    assert await alerts(store) == []
    await service.ingest(*native("n1", 1))  # heartbeat keeps n1 alive
    clock.advance(1)
    await service.sweep()
    # n2's household is not (and will not be) quarantined: its silence alarms nobody.
    offline = {a.sensor_id for a in await alerts(store) if a.closed_at is None}
    assert offline == {"z1", "s1"}
    assert service.snapshot().sensors_offline == 2
    await service.ingest("zigbee2mqtt/door_z1", b'{"contact":true,"battery":90}')
    still = {a.sensor_id for a in await alerts(store) if a.closed_at is None}
    assert still == {"s1"}
    assert service.snapshot().sensors_offline == 1


async def test_battery_low_clears_when_replaced(service: IotService, store: Store) -> None:
    await service.ingest(*native("n1", 1, event="battery", battery=10))
    await service.ingest(*native("n1", 2, event="battery", battery=9))
    [alert] = await alerts(store)
    assert (alert.type, alert.count, alert.closed_at) == ("battery_low", 2, None)
    await service.ingest(*native("n1", 3, event="battery", battery=100))
    [alert] = await alerts(store)
    assert alert.closed_at is not None
    assert service.snapshot().sensors_low_battery == 0


async def test_racing_raises_open_one_alert(store: Store) -> None:
    await register_estate(store, T0)
    target = alert_store.AlertTarget("n1", "h1", "c1")
    action = RaiseAlert(AlertType.TAMPER, Severity.MAJOR, ("tamper",))

    async def raise_once() -> tuple[int, bool]:
        async with store.session() as s:
            result = await alert_store.raise_alert(s, store.dialect, target, action, now=T0,
                                                   schedule=[5])
            await s.commit()
            return result

    results = await asyncio.gather(*(raise_once() for _ in range(8)))
    assert sum(1 for _, new in results if new) == 1
    assert len({alert_id for alert_id, _ in results}) == 1
    [alert] = await alerts(store)
    assert alert.count == 8


@pytest.mark.parametrize("step_seconds", [3600, -3600])
async def test_a_wall_clock_step_neither_fakes_nor_hides_silence(
        service: IotService, store: Store, clock: ManualClock, step_seconds: int) -> None:
    # Heartbeat timeout 600 s. Before the fix, a forward step of an hour raised an offline
    # alert for every quarantined sensor at the next sweep, and a backward step hid an
    # hour of real silence.
    await service.ingest(*native("n1", 1))
    clock.advance(60)
    clock.step_wall(step_seconds)
    await service.on_clock_step(step_seconds)
    await service.sweep()
    assert [a for a in await alerts(store) if a.type == "offline"] == []
    # Real silence still counts, measured in elapsed time: 600 s after the baseline the
    # silent sensors go offline, whichever way the clock stepped.
    clock.advance(600)
    await service.sweep()
    offline = {a.sensor_id for a in await alerts(store) if a.type == "offline"}
    assert offline == {"n1", "z1", "s1"}


async def test_a_forward_step_skips_one_retention_purge(
        service: IotService, store: Store, clock: ManualClock) -> None:
    # n2's household is not in quarantine, so its events are retention's to redact once
    # they are older than retention_days. A forward step past that must not do it.
    await service.ingest(*native("n2", 1, event="open"))
    step = service.config.retention_days * 86_400 + 3600
    clock.step_wall(step)
    await service.on_clock_step(step)
    await service.sweep()
    async with store.session() as s:
        assert [e.purged for e in (await s.exec(select(Event))).all()] == [False]
    # Retention itself still works on the sweep after.
    await service.sweep()
    async with store.session() as s:
        assert [e.purged for e in (await s.exec(select(Event))).all()] == [True]


async def test_a_backward_step_does_not_hold_back_reminders_and_retries(
        service: IotService, store: Store, clock: ManualClock) -> None:
    result = await service.ingest(*native("n1", 1, event="open"))
    [alert_id] = result.alerts_raised
    async with store.session() as s:
        # A retry waiting out its backoff, 60 s from now. The outbox worker may or may
        # not have sent the alert's own "raised" message yet, so the retry is found by id.
        planted = OutboxMessage(alert_id=alert_id, notifier="log", community="c1",
                                reason="raised", body="{}", status="pending",
                                created_at=clock.now(), next_attempt_at=clock.now()
                                + timedelta(seconds=60))
        s.add(planted)
        await s.commit()
        planted_id = planted.id
    clock.step_wall(-3600)
    await service.on_clock_step(-3600)
    async with store.session() as s:
        retry = await s.get(OutboxMessage, planted_id)
    assert retry is not None
    assert retry.status == "pending"
    assert as_utc(retry.next_attempt_at) == clock.now() + timedelta(seconds=60)
    # The first reminder is 5 min after the opening, in elapsed time: it comes on time.
    clock.advance(5 * 60)
    await service.sweep()
    reasons = [r.reason for r in await outbox(store) if r.alert_id == alert_id]
    assert "renotify" in reasons
