"""Sleeping devices, pure part: the last will of a sleeping device is no offline alert;
its silence past the heartbeat timeout still is."""

from __future__ import annotations

from datetime import timedelta

import pytest
from pydantic import ValidationError

from netguard.iot.config import DeviceRule, RulesConfig
from netguard.iot.events import AlertType, DoorEvent, EventKind
from netguard.iot.rules import ClearAlert, RaiseAlert, SensorState, check_heartbeat, evaluate
from tests.iot.conftest import T0
from tests.iot.test_rules import QUARANTINED

DW2 = DeviceRule(format="shelly", address="shellydw2-*", sleeping=True)
RULES = RulesConfig(heartbeat_timeout_seconds=600, devices=[DW2])
SEEN = T0 - timedelta(minutes=1)
STATE = SensorState("s1", "h1", last_seen=SEEN, contact="closed")


def _offline(address: str = "shellydw2-8A1B2C", fmt: str = "shelly") -> DoorEvent:
    return DoorEvent(format=fmt, address=address, kind=EventKind.OFFLINE, online=False)


def test_a_sleeping_devices_last_will_changes_nothing() -> None:
    result = evaluate(STATE, _offline(), QUARANTINED, RULES, T0)
    assert result.actions == ()
    assert result.state == STATE  # still online, and not "seen" by its broker's last will


def test_without_sleeping_the_last_will_is_an_offline_alert() -> None:
    for rules in (RulesConfig(heartbeat_timeout_seconds=600),
                  RulesConfig(devices=[DW2.model_copy(update={"sleeping": False})]),
                  RULES):
        event = _offline() if rules is not RULES else _offline("shellydw-8A1B2C")
        result = evaluate(STATE, event, QUARANTINED, rules, T0)
        assert [type(a) for a in result.actions] == [RaiseAlert]
        assert result.actions[0].type is AlertType.OFFLINE
        assert result.state.online is False


def test_a_sleeping_device_still_goes_offline_by_heartbeat_and_comes_back() -> None:
    asleep = evaluate(STATE, _offline(), QUARANTINED, RULES, T0).state
    expired = check_heartbeat(asleep, RULES, SEEN + timedelta(seconds=601))
    assert [a.type for a in expired.actions] == [AlertType.OFFLINE]
    wake = DoorEvent(format="shelly", address="shellydw2-8A1B2C", kind=EventKind.ONLINE,
                     online=True)
    back = evaluate(expired.state, wake, QUARANTINED, RULES, T0 + timedelta(hours=1))
    assert [type(a) for a in back.actions] == [ClearAlert]
    assert back.state.online is True


def test_rules_match_by_format_pattern_or_sensor_id() -> None:
    rules = RulesConfig(devices=[
        DeviceRule(sensor="door-7", sleeping=True),
        DeviceRule(format="zigbee2mqtt", address="hall_*", sleeping=False),
        DeviceRule(address="hall_*", sleeping=True),
    ])
    assert rules.sleeping("shelly", "anything", "door-7")
    assert not rules.sleeping("zigbee2mqtt", "hall_door", "s9")  # the first match decides
    assert rules.sleeping("native", "hall_door", "s9")
    assert not rules.sleeping("native", "kitchen", "s9")


@pytest.mark.parametrize("data", [
    {"sleeping": True},
    {"address": "a*", "sensor": "s1"},
    {"sensor": "bad id"},
    {"address": "a*", "format": "lora"},
    {"address": "a*", "sleepy": True},
])
def test_bad_device_rules_are_refused(data: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        DeviceRule.model_validate(data)
