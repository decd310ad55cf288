"""Acceptance 2, pure part: each rule with an injected time."""

from __future__ import annotations

from datetime import timedelta

from netguard.faults import Severity
from netguard.iot.config import RulesConfig
from netguard.iot.events import AlertType, DoorEvent, EventKind
from netguard.iot.rules import (
    ClearAlert,
    HouseholdRules,
    Period,
    RaiseAlert,
    SensorState,
    check_heartbeat,
    evaluate,
    next_notify_at,
)
from tests.iot.conftest import T0

RULES = RulesConfig(heartbeat_timeout_seconds=600, battery_low_percent=20,
                    battery_clear_percent=30, renotify_minutes=[5, 15, 30])
QUARANTINED = HouseholdRules("h1", "c1", quarantines=(Period(T0 - timedelta(days=1),
                                                            T0 + timedelta(days=13)),),
                             allowed=(Period(T0 + timedelta(hours=2),
                                             T0 + timedelta(hours=3)),))
STATE = SensorState("s1", "h1", last_seen=T0 - timedelta(minutes=1), contact="closed")


def _open(fmt: str = "native", edge: bool = True) -> DoorEvent:
    return DoorEvent(format=fmt, address="s1", kind=EventKind.OPEN, contact="open",
                     edge=edge)


def _types(actions: tuple[object, ...], cls: type) -> list[AlertType]:
    return [a.type for a in actions if isinstance(a, cls)]  # type: ignore[attr-defined]


def test_door_open_during_quarantine_raises_critical_alert() -> None:
    result = evaluate(STATE, _open(), QUARANTINED, RULES, T0)
    assert len(result.actions) == 1
    action = result.actions[0]
    assert isinstance(action, RaiseAlert)
    assert action.type is AlertType.DOOR_OPEN
    assert action.severity is Severity.CRITICAL  # the one severity vocabulary
    assert "h1" in action.reasons[0]
    assert result.state.contact == "open"
    assert result.state.last_seen == T0


def test_door_open_outside_quarantine_or_in_allowed_window_raises_nothing() -> None:
    after = T0 + timedelta(days=14)
    assert evaluate(STATE, _open(), QUARANTINED, RULES, after).actions == ()
    in_window = T0 + timedelta(hours=2, minutes=30)
    assert evaluate(STATE, _open(), QUARANTINED, RULES, in_window).actions == ()
    never = HouseholdRules("h2", "c2")
    assert evaluate(STATE, _open(), never, RULES, T0).actions == ()
    # The window is half-open: at its end the door alerts again.
    end = T0 + timedelta(hours=3)
    assert _types(evaluate(STATE, _open(), QUARANTINED, RULES, end).actions, RaiseAlert) == [
        AlertType.DOOR_OPEN]


def test_state_reports_raise_only_on_a_change_to_open() -> None:
    first = evaluate(STATE, _open("zigbee2mqtt", edge=False), QUARANTINED, RULES, T0)
    assert _types(first.actions, RaiseAlert) == [AlertType.DOOR_OPEN]
    again = evaluate(first.state, _open("zigbee2mqtt", edge=False), QUARANTINED, RULES, T0)
    assert again.actions == ()
    closed = evaluate(again.state, DoorEvent(format="zigbee2mqtt", address="s1",
                                             kind=EventKind.CLOSE, contact="closed"),
                      QUARANTINED, RULES, T0)
    assert _types(closed.actions, ClearAlert) == [AlertType.DOOR_OPEN]


def test_battery_low_raises_below_threshold_and_clears_with_hysteresis() -> None:
    def battery(state: SensorState, pct: float) -> tuple[SensorState, tuple[object, ...]]:
        r = evaluate(state, DoorEvent(format="native", address="s1", kind=EventKind.BATTERY,
                                      battery=pct), QUARANTINED, RULES, T0)
        return r.state, r.actions

    state, actions = battery(STATE, 15)
    assert _types(actions, RaiseAlert) == [AlertType.BATTERY_LOW]
    state, actions = battery(state, 25)  # between low and clear: nothing
    assert actions == ()
    state, actions = battery(state, 100)
    assert _types(actions, ClearAlert) == [AlertType.BATTERY_LOW]
    _, actions = battery(state, 99)
    assert actions == ()


def test_tamper_raises_and_clears() -> None:
    raised = evaluate(STATE, DoorEvent(format="native", address="s1", kind=EventKind.TAMPER,
                                       tamper=True), QUARANTINED, RULES, T0)
    assert _types(raised.actions, RaiseAlert) == [AlertType.TAMPER]
    cleared = evaluate(raised.state, DoorEvent(format="zigbee2mqtt", address="s1",
                                               kind=EventKind.HEARTBEAT, tamper=False),
                       QUARANTINED, RULES, T0)
    assert _types(cleared.actions, ClearAlert) == [AlertType.TAMPER]


def test_availability_offline_raises_and_any_message_clears() -> None:
    offline = evaluate(STATE, DoorEvent(format="zigbee2mqtt", address="s1",
                                        kind=EventKind.OFFLINE, online=False),
                       QUARANTINED, RULES, T0)
    assert _types(offline.actions, RaiseAlert) == [AlertType.OFFLINE]
    assert offline.state.online is False
    repeat = evaluate(offline.state, DoorEvent(format="zigbee2mqtt", address="s1",
                                               kind=EventKind.OFFLINE, online=False),
                      QUARANTINED, RULES, T0)
    assert repeat.actions == ()
    back = evaluate(offline.state, DoorEvent(format="zigbee2mqtt", address="s1",
                                             kind=EventKind.HEARTBEAT), QUARANTINED, RULES, T0)
    assert _types(back.actions, ClearAlert) == [AlertType.OFFLINE]
    assert back.state.online is True


def test_heartbeat_timeout() -> None:
    seen = STATE.last_seen
    assert seen is not None
    assert check_heartbeat(STATE, RULES, seen + timedelta(seconds=599)).actions == ()
    result = check_heartbeat(STATE, RULES, seen + timedelta(seconds=600))
    assert _types(result.actions, RaiseAlert) == [AlertType.OFFLINE]
    assert result.state.online is False
    # Already offline: no repeat.
    assert check_heartbeat(result.state, RULES, seen + timedelta(hours=5)).actions == ()
    # Never heard from: the timeout counts from registration.
    fresh = SensorState("s2", "h1", since=T0)
    assert check_heartbeat(fresh, RULES, T0 + timedelta(seconds=600)).actions != ()


def test_renotify_schedule() -> None:
    schedule = [5.0, 15.0, 30.0]
    assert next_notify_at(T0, 1, schedule) == T0 + timedelta(minutes=5)
    assert next_notify_at(T0, 2, schedule) == T0 + timedelta(minutes=15)
    assert next_notify_at(T0, 3, schedule) == T0 + timedelta(minutes=30)
    assert next_notify_at(T0, 4, schedule) is None


def test_supervised_covers_active_and_planned_quarantine() -> None:
    planned = HouseholdRules("h3", "c1", quarantines=(Period(T0 + timedelta(days=2)),))
    assert planned.supervised(T0)
    assert not planned.quarantined(T0)
    assert QUARANTINED.supervised(T0)
    assert not QUARANTINED.supervised(T0 + timedelta(days=13))
    assert not HouseholdRules("h4", "c1").supervised(T0)
