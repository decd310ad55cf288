"""Reason lines in the message language: every line the rules and follow-ups write is
translated in zh-CN, the stored English line is what the en message and the audit trail
show, and a rendered zh-CN alert with several reasons matches its expected text."""

from __future__ import annotations

import dataclasses
import re
from datetime import timedelta
from pathlib import Path

import pytest

from netguard.iot.config import RulesConfig
from netguard.iot.events import DoorEvent, EventKind
from netguard.iot.followups import append_reason, ordinal, repeat_text
from netguard.iot.messages import MessageRenderer
from netguard.iot.notifiers.base import Notification
from netguard.iot.reasons import translate
from netguard.iot.rules import (
    ClearAlert,
    HouseholdRules,
    Period,
    RaiseAlert,
    SensorState,
    check_heartbeat,
    evaluate,
)
from tests.iot.conftest import T0

RULES = RulesConfig(heartbeat_timeout_seconds=600, battery_low_percent=20,
                    battery_clear_percent=30)
HOME = HouseholdRules("B3-1201", "lotus", quarantines=(Period(T0 - timedelta(days=1), None),))
STATE = SensorState("s1", "B3-1201", last_seen=T0 - timedelta(minutes=1), contact="closed")


def _event(kind: EventKind, **fields: object) -> DoorEvent:
    return DoorEvent(format="native", address="s1", kind=kind, **fields)  # type: ignore[arg-type]


def _reasons(state: SensorState, event: DoorEvent) -> list[str]:
    out: list[str] = []
    for action in evaluate(state, event, HOME, RULES, T0).actions:
        if isinstance(action, RaiseAlert):
            out.extend(action.reasons)
        elif isinstance(action, ClearAlert):
            out.append(action.reason)
    return out


def _every_reason_line() -> list[str]:
    """What the real rules and follow-ups write, one of each wording."""
    lines = [
        *_reasons(STATE, _event(EventKind.OPEN, contact="open", edge=True)),
        *_reasons(dataclasses.replace(STATE, contact="open"),
                  _event(EventKind.CLOSE, contact="closed")),
        *_reasons(STATE, _event(EventKind.OFFLINE, online=False)),
        *_reasons(dataclasses.replace(STATE, online=False,
                                      last_seen=T0 - timedelta(hours=3, minutes=12)),
                  _event(EventKind.HEARTBEAT)),
        *_reasons(dataclasses.replace(STATE, online=False, last_seen=None),
                  _event(EventKind.HEARTBEAT)),
        *_reasons(STATE, _event(EventKind.BATTERY, battery=12.5)),
        *_reasons(dataclasses.replace(STATE, battery=12.5), _event(EventKind.BATTERY,
                                                                    battery=95)),
        *_reasons(STATE, _event(EventKind.TAMPER, tamper=True)),
        *_reasons(dataclasses.replace(STATE, tamper=True),
                  _event(EventKind.TAMPER, tamper=False)),
    ]
    silent = check_heartbeat(dataclasses.replace(STATE, last_seen=T0 - timedelta(hours=2)),
                             RULES, T0)
    lines.extend(r for a in silent.actions if isinstance(a, RaiseAlert) for r in a.reasons)
    lines.append(repeat_text(3, 1, T0, T0 + timedelta(minutes=12)))
    lines.append(repeat_text(12, 4, T0, T0 + timedelta(days=2, hours=1)))
    # The line followups.py appends on each opening, and the marker of dropped lines.
    kept = append_reason(["first"] * 1, f"door opened again at "
                         f"{T0.isoformat(timespec='seconds')} ({ordinal(2)} opening)",
                         limit=10_000)
    lines.append(kept[-1])
    marker = append_reason(["first", "x" * 50, "y" * 50], "z", limit=60)
    lines.append(next(line for line in marker if line.startswith("(")))
    return lines


LINES = _every_reason_line()
# What may stay Latin in a zh-CN line: ids, the event kind, ISO instants, numbers.
_KEPT = re.compile(r"B3-1201|heartbeat|\d{4}-\d{2}-\d{2}T[0-9:.]+(?:Z|[+-]\d{2}:\d{2})")


def test_the_rules_wrote_every_wording_once() -> None:
    assert len(LINES) == 14, LINES
    assert len(set(LINES)) == len(LINES)


@pytest.mark.parametrize("line", LINES)
def test_every_reason_line_is_translated_to_chinese(line: str) -> None:
    zh = translate(line, "zh-CN")
    assert zh != line
    assert not re.search(r"[A-Za-z]{2,}", _KEPT.sub("", zh)), zh
    # The numbers and times of the line survive the translation.
    assert sorted(re.findall(r"\d+", _KEPT.sub("", line))) == sorted(
        re.findall(r"\d+", _KEPT.sub("", zh))), (line, zh)
    assert sorted(_KEPT.findall(line)) == sorted(_KEPT.findall(zh))


@pytest.mark.parametrize("line", [*LINES, "an operator's note"])
def test_english_and_unknown_lines_are_shown_as_stored(line: str) -> None:
    assert translate(line, "en") == line
    assert translate("door opened sometime", "zh-CN") == "door opened sometime"


SEVERAL = Notification(
    alert_id=7, reason="renotify", type="door_open", severity="critical", community="lotus",
    household="B3-1201", sensor="door-1201",
    reasons=("door opened at 2026-03-05T10:15:00+00:00 during quarantine of household "
             "B3-1201", "(3 earlier lines not kept)",
             "door opened again at 2026-03-05T10:40:00+00:00 (5th opening)"),
    count=5, first_seen="2026-03-05T10:15:00+00:00")
EXPECTED = Path(__file__).resolve().parent / "expected_messages"


@pytest.mark.parametrize("language", ["zh-CN", "en"])
def test_an_alert_with_several_reasons_renders_as_expected(language: str) -> None:
    expected = (EXPECTED / f"reasons.{language}.md").read_text(encoding="utf-8")
    assert MessageRenderer(language).markdown([SEVERAL]) == expected.rstrip("\n")
    # The notification keeps the stored lines: only the text people read changes.
    assert SEVERAL.reasons[0].startswith("door opened at 2026-03-05T10:15:00+00:00")
