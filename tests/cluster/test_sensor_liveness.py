"""Offline-sensor detection when the intake is spread over several instances.

Two ``IotService`` instances on one PostgreSQL: the leader ``L`` (the one the daemon lets
sweep) and a member ``M`` subscribed to the shared group ``$share/ng/...`` of a real
Mosquitto. Every door event reaches ``M`` only: ``L`` runs without an intake, which is
what "all of this sensor's recent events went to the other instances" looks like, made
deterministic (with both in the group, the broker's round-robin decides who gets which).
Both run on one ManualClock, so the heartbeat timeout is crossed without waiting.
"""

from __future__ import annotations

import asyncio
import itertools
import json
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from pydantic import SecretStr

from netguard.clock import ManualClock
from netguard.iot import registry
from netguard.iot.liveness import claim_back_online, mark_offline
from netguard.iot.rules import SensorState
from netguard.iot.service import IotService
from netguard.iot.upkeep import write_states
from netguard.store import Store
from netguard.store.config import StoreConfig
from netguard.store.db import upgrade
from tests.iot.conftest import T0, make_settings
from tests.iot.support import publish_all
from tests.support.servers import Broker
from tests.support.wait import async_wait_until

pytestmark = [pytest.mark.integration]

TIMEOUT = 120.0
_SEQ = itertools.count(1)


def _iot(broker: Broker | None, client_id: str) -> dict[str, Any]:
    mqtt: dict[str, Any] = {"enabled": False, "client_id": client_id}
    if broker is not None:
        mqtt = {"enabled": True, "host": broker.host, "port": broker.port,
                "client_id": client_id, "shared_group": "ng"}
    return {"mqtt": mqtt, "rules": {"heartbeat_timeout_seconds": TIMEOUT}}


@pytest.fixture
async def store(pg_url: str) -> AsyncIterator[Store]:
    config = StoreConfig(url=SecretStr(pg_url))
    await upgrade(config)
    async with Store(config) as s:
        async with s.session() as session:
            await registry.add_household(session, "h1", "c1", start=T0 - timedelta(days=1),
                                         now=T0)
            await session.flush()
            await registry.add_sensor(session, "alive", "h1", fmt="native", now=T0)
            await registry.add_sensor(session, "quiet", "h1", fmt="native", now=T0)
            await session.commit()
        yield s


def _service(store: Store, broker: Broker | None, client_id: str,
             clock: ManualClock) -> IotService:
    settings = make_settings(store.config, _iot(broker, client_id))
    return IotService(settings.iot, store, clock=clock, shared=True)


async def _send(broker: Broker, member: IotService, *sensors: str) -> None:
    """Publish one heartbeat per sensor and wait until ``member`` stored them."""
    before = _stored(member)
    messages = [(f"netguard/sensors/{s}/event",
                 json.dumps({"v": 1, "sensor": s, "event": "heartbeat",
                             "seq": next(_SEQ)}).encode())
                for s in sensors]
    await publish_all(broker.host, broker.port, messages, [0])

    async def stored() -> bool:
        return _stored(member) >= before + len(sensors)
    await async_wait_until(stored, timeout=15, what="the member stored the events")


async def _offline(store: Store) -> list[tuple[str, int, bool]]:
    """(sensor, count, closed) of every offline alert."""
    async with store.session() as session:
        rows = (await session.exec(sa.text(  # type: ignore[call-overload]
            "SELECT sensor_id, count, closed_at IS NOT NULL FROM iot_alert "
            "WHERE type = 'offline' ORDER BY id"))).all()
    return [(str(s), int(c), bool(closed)) for s, c, closed in rows]


async def _online(store: Store) -> dict[str, bool]:
    async with store.session() as session:
        rows = (await session.exec(sa.text(  # type: ignore[call-overload]
            "SELECT id, online FROM iot_sensor"))).all()
    return {str(i): bool(o) for i, o in rows}


def _stored(member: IotService) -> int:
    return sum(member.snapshot().door_events.values())


async def test_the_leader_judges_by_the_shared_last_seen(store: Store, broker: Broker) -> None:
    clock = ManualClock(T0)
    async with _service(store, broker, "ng-m", clock) as member, \
            _service(store, None, "ng-l", clock) as leader:
        await async_wait_until(lambda: _true(member.mqtt_connected), what="member connected")
        await _send(broker, member, "alive", "quiet")
        for _ in range(4):  # "alive" reports every 50 s, only ever to the member
            clock.advance(50)
            await _send(broker, member, "alive")
            await leader.sweep()
        # "quiet" has been silent 200 s, "alive" 0 s: one alert, for "quiet" alone.
        assert await _offline(store) == [("quiet", 1, False)]
        clock.advance(TIMEOUT + 40)  # now "alive" stopped too
        await leader.sweep()
        await leader.sweep()
        assert await _offline(store) == [("quiet", 1, False), ("alive", 1, False)]

        # "quiet" reports again, to the member, which has never seen it go offline.
        await _send(broker, member, "quiet")
        assert await _offline(store) == [("quiet", 1, True), ("alive", 1, False)]
        assert await _online(store) == {"quiet": True, "alive": False}
        await leader.sweep()
        assert await _offline(store) == [("quiet", 1, True), ("alive", 1, False)]
        # It goes silent again: a new alert (the first one is closed), raised once.
        clock.advance(TIMEOUT + 40)
        await leader.sweep()
        await leader.sweep()
        assert await _offline(store) == [("quiet", 1, True), ("alive", 1, False),
                                          ("quiet", 1, False)]


async def test_a_new_leader_neither_misses_nor_repeats_offline(
        store: Store, broker: Broker) -> None:
    clock = ManualClock(T0)
    async with _service(store, broker, "ng-m", clock) as member, \
            _service(store, None, "ng-l", clock) as old:
        await async_wait_until(lambda: _true(member.mqtt_connected), what="member connected")
        await _send(broker, member, "alive", "quiet")
        clock.advance(TIMEOUT + 40)
        await _send(broker, member, "alive")
        await old.sweep()  # the old leader marks "quiet" offline
        assert await _offline(store) == [("quiet", 1, False)]
    # The member leads now: its memory says "quiet" is online (it never saw the change).
    clock.advance(10)
    async with _service(store, broker, "ng-m", clock) as member:
        await member.sweep()
        await member.sweep()
        assert await _offline(store) == [("quiet", 1, False)]
    # A fresh leader with an empty memory: "alive" is still within its timeout.
    async with _service(store, None, "ng-x", clock) as fresh:
        await fresh.sweep()
        assert await _offline(store) == [("quiet", 1, False)]
        clock.advance(TIMEOUT + 40)
        await fresh.sweep()
        assert await _offline(store) == [("quiet", 1, False), ("alive", 1, False)]


async def _true(value: bool) -> bool:
    return value


async def _waiting_on_a_lock(store: Store) -> bool:
    async with store.session() as session:
        n = (await session.exec(sa.text(  # type: ignore[call-overload]
            "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
            "AND datname = current_database()"))).scalar_one()
    return int(n) > 0


async def test_the_sweep_and_an_intake_are_ordered_by_the_row_lock(store: Store) -> None:
    seen = T0 + timedelta(seconds=100)
    async with store.session() as session:
        await write_states(session, [SensorState("alive", "h1", last_seen=seen)])
        await session.commit()
    # The sweep's update first: the intake's claim waits for it, then sees it.
    async with store.session() as sweep:
        assert await mark_offline(sweep, SensorState("alive", "h1", last_seen=seen))

        async def claim() -> dict[str, Any]:
            async with store.session() as intake:
                got = await claim_back_online(intake, ["alive"])
                await intake.commit()
            return dict(got)
        claiming = asyncio.create_task(claim())
        await async_wait_until(lambda: _waiting_on_a_lock(store), what="the claim waits")
        await sweep.commit()
    assert set(await claiming) == {"alive"}
    # The intake's newer last_seen first: the sweep's update waits, then matches nothing.
    async with store.session() as intake:
        await write_states(intake, [SensorState("alive", "h1", last_seen=seen
                                                + timedelta(seconds=200))])

        async def sweep_it() -> bool:
            async with store.session() as sweep:
                done = await mark_offline(sweep, SensorState("alive", "h1", last_seen=seen))
                await sweep.commit()
            return done
        sweeping = asyncio.create_task(sweep_it())
        await async_wait_until(lambda: _waiting_on_a_lock(store), what="the sweep waits")
        await intake.commit()
    assert await sweeping is False
    assert await _online(store) == {"alive": True, "quiet": True}
