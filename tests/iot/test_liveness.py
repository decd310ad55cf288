"""Sensor liveness shared through the store (netguard.iot.liveness): the pure parts, and the
two conditional updates on both databases."""

from __future__ import annotations

from datetime import timedelta

import sqlalchemy as sa
from sqlmodel import col

from netguard.clock import ManualClock
from netguard.config import settings_from_data
from netguard.daemon.wiring import _iot_service
from netguard.faults import Severity
from netguard.iot import registry
from netguard.iot.batch import BatchPlan, Incoming
from netguard.iot.config import RulesConfig
from netguard.iot.events import AlertType, DoorEvent, EventKind, RawMessage
from netguard.iot.liveness import (
    LAG,
    back_online,
    claim_back_online,
    confirm_offline,
    heard_back,
    mark_offline,
    merge_liveness,
)
from netguard.iot.models import Sensor
from netguard.iot.registry import RegistryView
from netguard.iot.rules import ClearAlert, HouseholdRules, Period, RaiseAlert, SensorState
from netguard.iot.upkeep import due_heartbeats
from netguard.store import Store
from netguard.store.config import StoreConfig
from netguard.store.db import upgrade
from tests.iot.conftest import T0

RULES = RulesConfig(heartbeat_timeout_seconds=600)


def _state(sensor: str, seen_after: float | None, *, online: bool = True,
           battery: float | None = None) -> SensorState:
    seen = None if seen_after is None else T0 + timedelta(seconds=seen_after)
    return SensorState(sensor, "h1", last_seen=seen, online=online, battery=battery,
                       since=T0)


def test_merge_takes_the_newer_last_seen_and_the_stores_online_flag() -> None:
    memory = {"a": _state("a", 100, battery=50), "b": _state("b", 300, online=False),
              "gone": _state("gone", 10)}
    stored = {"a": _state("a", 200, online=False), "b": _state("b", 250),
              "c": _state("c", None)}
    merged = merge_liveness(memory, stored)
    assert set(merged) == {"a", "b", "c"}  # a sensor no longer registered is dropped
    assert merged["a"] == _state("a", 200, online=False, battery=50)  # memory's battery
    assert merged["b"] == _state("b", 300)  # memory's newer last_seen; store says online
    assert merged["c"] == stored["c"]
    assert merge_liveness({"a": _state("a", None)}, {"a": _state("a", 5)})["a"] == \
        _state("a", 5)


def test_the_sweep_waits_the_lag_longer() -> None:
    view = RegistryView(households={"h1": HouseholdRules("h1", "c1", (Period(T0),))},
                        states={"a": _state("a", 0)})
    due = T0 + timedelta(seconds=600)
    assert due_heartbeats(view, RULES, due)[0]  # alone: at the timeout
    assert not due_heartbeats(view, RULES, due + LAG - timedelta(seconds=1), lag=LAG)[0]
    changed, actions = due_heartbeats(view, RULES, due + LAG, lag=LAG)
    assert not changed["a"].online
    [(_, action)] = actions
    assert isinstance(action, RaiseAlert)
    assert "(timeout 600 s)" in action.reasons[0]  # the configured timeout, as before


def _incoming(sensor: str, kind: EventKind, seconds: float) -> Incoming:
    when = T0 + timedelta(seconds=seconds)
    incoming = Incoming.of(RawMessage(f"t/{sensor}", b"{}", received_at=when), when)
    incoming.event = DoorEvent("native", sensor, kind)
    incoming.sensor_id, incoming.household_id = sensor, "h1"
    return incoming


def test_heard_back_names_the_sensors_a_batch_heard_that_end_it_online() -> None:
    batch = [_incoming("a", EventKind.HEARTBEAT, 1), _incoming("a", EventKind.CLOSE, 2),
             _incoming("dup", EventKind.HEARTBEAT, 3),
             _incoming("will", EventKind.OFFLINE, 4),  # a last will is not being heard
             _incoming("down", EventKind.HEARTBEAT, 5), _incoming("down", EventKind.OFFLINE, 6),
             _incoming("ruled", EventKind.HEARTBEAT, 7)]
    dead = _incoming("dead", EventKind.HEARTBEAT, 8)
    dead.event = None
    batch.append(dead)
    plan = BatchPlan(states={"a": _state("a", 2), "will": _state("will", None),
                             "down": _state("down", 6, online=False),
                             "ruled": _state("ruled", 7), "dead": _state("dead", 0)},
                     actions=[(6, ClearAlert(AlertType.OFFLINE, "back"))])
    assert heard_back(batch, {2}, plan) == {"a": 1}


def test_back_online_says_how_long_the_sensor_was_silent() -> None:
    clear = back_online("heartbeat", T0 + timedelta(hours=3, minutes=12), T0)
    assert clear == ClearAlert(AlertType.OFFLINE,
                               "sensor back online after 3 h 12 min (heartbeat)")
    assert back_online("open", T0, T0 + timedelta(seconds=5)).reason == \
        "sensor back online (open)"  # a stored time ahead of the event's: no duration


async def _rows(store: Store) -> dict[str, tuple[bool, object]]:
    async with store.session() as session:
        rows = (await session.exec(sa.select(  # type: ignore[call-overload]
            Sensor.id, Sensor.online, Sensor.last_seen_at))).all()
    return {str(i): (bool(o), seen) for i, o, seen in rows}


async def test_the_conditional_updates(store_config: StoreConfig) -> None:
    await upgrade(store_config)
    async with Store(store_config) as store:
        async with store.session() as session:
            await registry.add_household(session, "h1", "c1", start=T0, now=T0)
            await session.flush()
            for sensor in ("a", "b", "never"):
                await registry.add_sensor(session, sensor, "h1", fmt="native", now=T0)
            await session.flush()
            await session.exec(sa.update(Sensor).where(
                col(Sensor.id) != "never").values(last_seen_at=T0 + timedelta(seconds=100)))
            await session.commit()
        async with store.session() as session:
            # "a" as the sweep saw it; "b" was heard after what the sweep saw.
            assert await mark_offline(session, _state("a", 100, online=False))
            assert not await mark_offline(session, _state("b", 50, online=False))
            assert await mark_offline(session, _state("never", None, online=False))
            # Offline already: a second sweep (or a new leader) does nothing.
            changed, actions = await confirm_offline(
                session, {"a": _state("a", 100, online=False)},
                [("a", RaiseAlert(AlertType.OFFLINE, Severity.MAJOR, ("x",)))])
            assert (changed, actions) == ({}, [])
            await session.commit()
        rows = await _rows(store)
        assert {k: v[0] for k, v in rows.items()} == {"a": False, "b": True, "never": False}
        async with store.session() as session:
            back = await claim_back_online(session, ["a", "b", "never"])
            await session.commit()
        assert set(back) == {"a", "never"}
        assert back["never"] is not None  # its creation time
        async with store.session() as session:
            assert await claim_back_online(session, ["a", "b", "never"]) == {}  # once


def test_the_daemon_shares_liveness_exactly_with_cluster_enabled() -> None:
    url = "postgresql://netguard@127.0.0.1:1/netguard"  # never connected to
    for enabled in (False, True):
        settings = settings_from_data({"store": {"url": url}, "cluster": {
            "enabled": enabled, "instance_id": "ng-1"}})
        service = _iot_service(settings, Store(settings.store), ManualClock(T0), None)
        assert service._shared is enabled
