"""The pure parts of repeat-opening and recovery messages: the rate-limit and fold
decision, the texts, and the bounded reasons history."""

from __future__ import annotations

import itertools
import json
from datetime import timedelta

import pytest

from netguard.iot.config import RulesConfig
from netguard.iot.events import DoorEvent, EventKind
from netguard.iot.followups import (
    REASONS_MAX_CHARS,
    append_reason,
    openings_to_send,
    ordinal,
    repeat_text,
)
from netguard.iot.rules import (
    ClearAlert,
    HouseholdRules,
    Period,
    SensorState,
    evaluate,
    format_duration,
)
from tests.iot.conftest import T0


def test_nothing_is_sent_without_new_openings() -> None:
    assert openings_to_send(3, 3, None, 1000.0, 120.0) == 0
    assert openings_to_send(1, 1, 0.0, 1000.0, 120.0) == 0


def test_an_opening_after_the_interval_is_sent_at_once() -> None:
    assert openings_to_send(2, 1, 0.0, 120.0, 120.0) == 1


def test_openings_within_the_interval_are_folded_then_sent_together() -> None:
    assert openings_to_send(5, 1, 0.0, 119.9, 120.0) == 0
    assert openings_to_send(5, 1, 0.0, 120.0, 120.0) == 4


def test_after_a_restart_nothing_holds_a_folded_opening_back() -> None:
    assert openings_to_send(4, 2, None, 0.0, 120.0) == 2


def test_a_zero_interval_tells_every_opening() -> None:
    assert openings_to_send(2, 1, 5.0, 5.0, 0.0) == 1


def _simulate(openings: list[float], sweeps: list[float], interval: float
              ) -> list[tuple[float, int, int]]:
    """The messages ``(time, count, folded)`` the rules send for openings at the given
    monotonic times (the first raises the alert) and sweeps at the given times."""
    sent: list[tuple[float, int, int]] = [(openings[0], 1, 1)]
    count, told, last = 1, 1, openings[0]
    for kind, at in sorted([("open", t) for t in openings[1:]] + [("sweep", t) for t in sweeps],
                           key=lambda e: e[1]):
        count += kind == "open"
        folded = openings_to_send(count, told, last, at, interval)
        if folded:
            sent.append((at, count, folded))
            told, last = count, at
    return sent


def test_a_burst_of_ten_in_a_minute_makes_two_messages_with_the_right_count() -> None:
    openings = [6.0 * i for i in range(10)]
    sweeps = [15.0 * i for i in range(1, 20)]
    assert _simulate(openings, sweeps, 120.0) == [(0.0, 1, 1), (120.0, 10, 9)]


def test_a_long_run_of_openings_is_told_at_most_once_per_interval() -> None:
    openings = [10.0 * i for i in range(60)]  # one every 10 s for 10 minutes
    sweeps = [15.0 * i for i in range(1, 60)]
    sent = _simulate(openings, sweeps, 120.0)
    gaps = [b[0] - a[0] for a, b in itertools.pairwise(sent)]
    assert all(gap >= 120.0 for gap in gaps)
    assert sent[-1][1] == 60  # every opening told by the end
    assert sum(folded for _, _, folded in sent) == 60


@pytest.mark.parametrize(("n", "text"), [(1, "1st"), (2, "2nd"), (3, "3rd"), (4, "4th"),
                                         (11, "11th"), (12, "12th"), (13, "13th"),
                                         (21, "21st"), (22, "22nd"), (101, "101st"),
                                         (111, "111th")])
def test_ordinal(n: int, text: str) -> None:
    assert ordinal(n) == text


@pytest.mark.parametrize(("seconds", "text"), [
    (0, "0 s"), (59, "59 s"), (60, "1 min"), (150, "2 min"), (3600, "1 h"),
    (3 * 3600 + 12 * 60 + 30, "3 h 12 min"), (86400, "1 d"), (2 * 86400 + 4 * 3600, "2 d 4 h"),
    (-5, "0 s")])
def test_format_duration(seconds: int, text: str) -> None:
    assert format_duration(timedelta(seconds=seconds)) == text


def test_repeat_text_names_the_count_the_span_and_the_first_opening() -> None:
    assert repeat_text(3, 1, T0, T0 + timedelta(hours=2)) == (
        "door opened again (3rd time in 2 h; first opening at 2026-03-01T08:00:00+00:00)")
    assert repeat_text(10, 9, T0, T0 + timedelta(seconds=54)).endswith(
        "; 9 openings since the last message")


def test_the_reasons_history_keeps_the_first_line_and_the_newest_within_bounds() -> None:
    reasons = ["door opened at T0 during quarantine of household h1"]
    for i in range(2, 200):
        reasons = append_reason(reasons, f"door opened again at T{i} ({ordinal(i)} opening)")
        assert len(json.dumps(reasons, ensure_ascii=False)) <= REASONS_MAX_CHARS
    assert reasons[0] == "door opened at T0 during quarantine of household h1"
    assert reasons[-1] == "door opened again at T199 (199th opening)"
    kept = len(reasons) - 2
    assert reasons[1] == f"({198 - kept} earlier lines not kept)"
    assert reasons[2] == f"door opened again at T{200 - kept} ({ordinal(200 - kept)} opening)"


def test_a_short_history_is_kept_whole() -> None:
    assert append_reason(["a"], "b") == ["a", "b"]
    assert append_reason([], "a") == ["a"]


def _household() -> HouseholdRules:
    return HouseholdRules("h1", "c1", quarantines=(Period(T0 - timedelta(days=1)),))


def test_an_offline_sensor_heard_again_clears_with_how_long_it_was_silent() -> None:
    state = SensorState("n1", "h1", last_seen=T0, online=False)
    now = T0 + timedelta(hours=3, minutes=12)
    result = evaluate(state, DoorEvent("native", "n1", EventKind.HEARTBEAT), _household(),
                      RulesConfig(), now)
    assert result.actions == (ClearAlert(
        result.actions[0].type, "sensor back online after 3 h 12 min (heartbeat)"),)
    assert result.state.online


def test_an_offline_sensor_never_heard_before_clears_without_a_duration() -> None:
    state = SensorState("n1", "h1", online=False)
    result = evaluate(state, DoorEvent("native", "n1", EventKind.HEARTBEAT), _household(),
                      RulesConfig(), T0)
    assert [a.reason for a in result.actions if isinstance(a, ClearAlert)] == [
        "sensor back online (heartbeat)"]
