"""Door events are judged at the time they were first received, or at the device's own
plausible timestamp, not when delivery finally succeeded (issue 14, item 9).

Through a private Mosquitto: the first commit fails (the store was away), the broker
redelivers the unacknowledged message (DUP) after the reconnect, ten minutes later.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

import aiomqtt
import pytest
from sqlmodel import col, select

from netguard.clock import ManualClock, as_utc
from netguard.errors import StoreError
from netguard.iot.events import RawMessage
from netguard.iot.models import Alert
from netguard.iot.service import IngestResult, IotService
from netguard.store import Store
from tests.iot.conftest import T0, make_settings, register_estate
from tests.support.servers import Broker
from tests.support.wait import async_wait_until

pytestmark = pytest.mark.integration

OUTAGE = timedelta(minutes=10)


def _iot(broker: Broker) -> dict[str, Any]:
    return {"mqtt": {"enabled": True, "host": broker.host, "port": broker.port,
                     "client_id": "netguard-event-time", "reconnect_min_seconds": 0.1,
                     "reconnect_max_seconds": 0.3},
            "rules": {"heartbeat_timeout_seconds": 86400}}


async def _first_seen(store: Store) -> datetime | None:
    async with store.session() as s:
        row = (await s.exec(select(Alert.first_seen).where(
            col(Alert.sensor_id) == "n1", col(Alert.type) == "door_open"))).first()
    return None if row is None else as_utc(row)


async def _opening_after_an_outage(broker: Broker, store: Store, payload: dict[str, Any]
                                   ) -> tuple[datetime, int]:
    """Publish one opening; the first commit fails and the clock moves on by OUTAGE.

    Returns the alert's first_seen and how many times the batch was handed over.
    """
    await register_estate(store, T0)
    clock = ManualClock(T0)
    service = IotService(make_settings(store.config, _iot(broker)).iot, store, clock=clock)
    store_ingest = service.ingest_batch
    calls = [0]

    async def flaky(messages: Sequence[RawMessage]) -> list[IngestResult]:
        calls[0] += 1
        if calls[0] == 1:
            clock.advance(OUTAGE.total_seconds())
            raise StoreError("storing events failed: the database went away")
        return await store_ingest(messages)

    service.ingest_batch = flaky  # type: ignore[method-assign]
    async with service:
        async def connected() -> bool:
            return service.mqtt_connected

        await async_wait_until(connected, what="intake connected")
        async with aiomqtt.Client(broker.host, broker.port, identifier="time-pub") as pub:
            await pub.publish("netguard/sensors/n1/event", json.dumps(payload).encode(), qos=1)

        async def alerted() -> datetime | None:
            return await _first_seen(store)

        first_seen = await async_wait_until(alerted, timeout=30, what="the door alert")
    return first_seen, calls[0]


async def test_a_redelivered_opening_keeps_its_first_receipt_time(broker: Broker,
                                                                 store: Store) -> None:
    first_seen, calls = await _opening_after_an_outage(
        broker, store, {"sensor": "n1", "seq": 1, "event": "open"})
    assert calls >= 2  # it was redelivered
    assert first_seen == T0  # not T0 + 10 minutes


async def test_a_plausible_device_time_is_the_event_time(broker: Broker, store: Store) -> None:
    opened = T0 - timedelta(minutes=3)
    first_seen, _ = await _opening_after_an_outage(
        broker, store, {"sensor": "n1", "seq": 1, "event": "open",
                        "ts": int(opened.timestamp() * 1000)})
    assert first_seen == opened


async def test_an_implausible_device_time_is_ignored(broker: Broker, store: Store) -> None:
    # A sensor whose clock reset to 2000, and one far in the future.
    first_seen, _ = await _opening_after_an_outage(
        broker, store, {"sensor": "n1", "seq": 1, "event": "open",
                        "ts": "2000-01-01T00:00:00+00:00"})
    assert first_seen == T0


async def test_a_device_time_from_the_future_is_ignored(store: Store) -> None:
    await register_estate(store, T0)
    clock = ManualClock(T0)
    async with IotService(make_settings(store.config).iot, store, clock=clock) as service:
        ahead = T0 + timedelta(hours=2)
        [result] = await service.ingest_batch([RawMessage(
            "netguard/sensors/n1/event",
            json.dumps({"sensor": "n1", "seq": 1, "event": "open",
                        "ts": ahead.isoformat()}).encode())])
        assert result.alerts_raised
    assert await _first_seen(store) == T0
