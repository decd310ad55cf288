"""Recurring allowed windows through the whole path: a private Mosquitto, the intake, the
store, the door rule at the event's local time, and a real HTTP sink (issue 13).

Only openings outside the window reach the sink; the clock is a ManualClock set to the
local times that matter, in Asia/Shanghai (a window across midnight) and Europe/Berlin
(the night daylight saving starts).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import aiomqtt
import pytest
from sqlmodel import col, select

from netguard.clock import ManualClock
from netguard.iot import registry
from netguard.iot.models import Alert
from netguard.iot.service import IotService
from netguard.store import Store
from tests.iot.conftest import make_settings
from tests.iot.receiver import Receiver
from tests.support.servers import Broker
from tests.support.wait import async_wait_until

pytestmark = pytest.mark.integration


def _iot(broker: Broker, receiver: Receiver) -> dict[str, Any]:
    return {"mqtt": {"enabled": True, "host": broker.host, "port": broker.port,
                     "client_id": "netguard-windows", "reconnect_min_seconds": 0.1,
                     "reconnect_max_seconds": 0.3},
            "notifiers": [{"name": "hook", "type": "webhook", "url": receiver.url("/hook")}],
            "routes": [{"community": "c1", "notifiers": ["hook"]}],
            "rules": {"heartbeat_timeout_seconds": 7 * 86400}}


async def _openings_alerted(broker: Broker, store: Store, receiver: Receiver, *,
                            timezone: str, spec: str, times: list[datetime]) -> list[bool]:
    """Register h1 with ``spec`` and open (then close) its door at each of ``times``; for
    each opening, whether it raised a door alert (which must then reach the sink)."""
    start = times[0] - timedelta(days=2)
    async with store.session() as s:
        await registry.add_household(s, "h1", "c1", start=start, now=start)
        await s.flush()
        await registry.add_sensor(s, "n1", "h1", fmt="native", now=start)
        await registry.add_recurring_window(s, "h1", spec, timezone=timezone, start=start,
                                            end=start + timedelta(days=14))
        await s.commit()
    clock = ManualClock(times[0].astimezone(UTC))
    outcome: list[bool] = []
    settings = make_settings(store.config, _iot(broker, receiver))
    async with IotService(settings.iot, store, clock=clock) as service, \
            aiomqtt.Client(broker.host, broker.port, identifier="windows-pub") as pub:
        async def connected() -> bool:
            return service.mqtt_connected

        await async_wait_until(connected, what="intake connected")
        for seq, at in enumerate(times):
            clock.advance((at.astimezone(UTC) - clock.now()).total_seconds())
            before = sum(service.snapshot().door_events.values())
            for n, event in enumerate(("open", "close")):
                body = {"sensor": "n1", "seq": 2 * seq + n, "event": event}
                await pub.publish("netguard/sensors/n1/event", json.dumps(body).encode(), qos=1)

            async def stored(before: int = before) -> bool:
                return sum(service.snapshot().door_events.values()) >= before + 2

            await async_wait_until(stored, what=f"opening {seq} stored")
            alerts = await _open_door_alerts(store)
            outcome.append(bool(alerts))
            for alert_id in alerts:
                await async_wait_until(_at_sink(receiver, alert_id), what=f"alert {alert_id}")
                await service.acknowledge(alert_id, actor="test")
    return outcome


async def _open_door_alerts(store: Store) -> list[int]:
    async with store.session() as s:
        rows = (await s.exec(select(Alert).where(col(Alert.type) == "door_open",
                                                 col(Alert.acked_at).is_(None)))).all()
    return [r.id for r in rows if r.id is not None]


def _at_sink(receiver: Receiver, alert_id: int) -> Any:
    async def check() -> bool:
        return any(a["alert_id"] == alert_id for r in receiver.on("/hook")
                   for a in r.body["alerts"])
    return check


async def test_a_daily_window_across_midnight_in_shanghai(broker: Broker, store: Store,
                                                          receiver: Receiver) -> None:
    tz = ZoneInfo("Asia/Shanghai")
    times = [datetime(2026, 3, 5, 23, 30, tzinfo=tz),  # inside 22:00-06:00
             datetime(2026, 3, 6, 5, 30, tzinfo=tz),  # inside, after midnight
             datetime(2026, 3, 6, 7, 0, tzinfo=tz)]  # outside
    assert await _openings_alerted(broker, store, receiver, timezone="Asia/Shanghai",
                                   spec="daily 22:00-06:00", times=times) == [
        False, False, True]
    assert [a["type"] for r in receiver.on("/hook") for a in r.body["alerts"]] == ["door_open"]


async def test_a_window_on_the_night_daylight_saving_starts(broker: Broker, store: Store,
                                                            receiver: Receiver) -> None:
    # Berlin skips 02:00-03:00 on 2026-03-29: "daily 02:30-04:00" opens at 03:30 summer
    # time that night (02:30 read at the winter offset) and still closes at 04:00.
    tz = ZoneInfo("Europe/Berlin")
    times = [datetime(2026, 3, 28, 2, 45, tzinfo=tz),  # an ordinary night: inside
             datetime(2026, 3, 29, 3, 45, tzinfo=tz),  # the short window: inside
             datetime(2026, 3, 29, 4, 15, tzinfo=tz)]  # after it: outside
    assert await _openings_alerted(broker, store, receiver, timezone="Europe/Berlin",
                                   spec="daily 02:30-04:00", times=times) == [
        False, False, True]
