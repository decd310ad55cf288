"""Alert rules as pure functions of (sensor state, event, household, now).

The rules never touch the store: they return the sensor's next state and a list of
:class:`RaiseAlert` / :class:`ClearAlert` actions, which :mod:`netguard.iot.alerts` applies.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Protocol

from netguard.faults import Severity
from netguard.iot.config import RulesConfig
from netguard.iot.events import AlertType, Contact, DoorEvent, EventKind

# Door alerts share the fault severities (netguard.faults.Severity), so that a ticket and
# an alert of the same urgency are spelled and ranked alike.
SEVERITY: dict[AlertType, Severity] = {
    AlertType.DOOR_OPEN: Severity.CRITICAL,
    AlertType.TAMPER: Severity.MAJOR,
    AlertType.OFFLINE: Severity.MAJOR,
    AlertType.BATTERY_LOW: Severity.WARNING,
}
# Offline and battery alerts close by themselves when the condition ends; a door opening
# or a tamper needs a human to acknowledge it even after the door shut again.
AUTO_CLOSE = frozenset({AlertType.OFFLINE, AlertType.BATTERY_LOW})


@dataclass(frozen=True, slots=True)
class Period:
    """A half-open time span ``[start, end)``; ``end`` None means open-ended."""

    start: datetime
    end: datetime | None = None

    def contains(self, now: datetime) -> bool:
        """True when ``now`` lies in the span."""
        return self.start <= now and (self.end is None or now < self.end)

    def window_at(self, now: datetime) -> Period | None:
        """The span itself when it contains ``now`` (see :class:`AllowedSpan`)."""
        return self if self.contains(now) else None


class AllowedSpan(Protocol):
    """A one-off :class:`Period` or a :class:`netguard.iot.schedule.RecurringWindow`."""

    def window_at(self, now: datetime) -> Period | None:
        """The concrete span that contains ``now``, if any."""
        ...


@dataclass(frozen=True, slots=True)
class HouseholdRules:
    """What the rules need to know about a household."""

    household_id: str
    community: str
    quarantines: tuple[Period, ...] = ()
    allowed: tuple[AllowedSpan, ...] = ()

    def quarantined(self, now: datetime) -> bool:
        """True during an active quarantine period."""
        return any(p.contains(now) for p in self.quarantines)

    def supervised(self, now: datetime) -> bool:
        """True during a quarantine period or before a planned one: the sensor must work."""
        return any(p.end is None or now < p.end for p in self.quarantines)

    def allowed_window(self, now: datetime) -> Period | None:
        """The allowed window ``now`` falls in, if any."""
        return next((span for w in self.allowed if (span := w.window_at(now)) is not None),
                    None)


@dataclass(frozen=True, slots=True)
class SensorState:
    """What netguard last knew about a sensor."""

    sensor_id: str
    household_id: str
    last_seen: datetime | None = None
    battery: float | None = None
    contact: Contact | None = None
    online: bool = True
    tamper: bool = False
    # Baseline for the heartbeat timeout of a sensor never heard from.
    since: datetime | None = None


@dataclass(frozen=True, slots=True)
class RaiseAlert:
    """Open an alert, or bump the open one of the same (sensor, type)."""

    type: AlertType
    severity: Severity
    reasons: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class ClearAlert:
    """The condition behind an alert ended."""

    type: AlertType
    reason: str


AlertAction = RaiseAlert | ClearAlert


@dataclass(frozen=True, slots=True)
class Evaluation:
    """The result of one rule evaluation."""

    state: SensorState
    actions: tuple[AlertAction, ...] = field(default=())


def _raise(kind: AlertType, *reasons: str) -> RaiseAlert:
    return RaiseAlert(kind, SEVERITY[kind], reasons)


def evaluate(state: SensorState, event: DoorEvent, household: HouseholdRules,
             rules: RulesConfig, now: datetime) -> Evaluation:
    """Apply every rule to one event.

    Args:
        state: The sensor's state before the event.
        event: The decoded event.
        household: The sensor's household (quarantine periods, allowed windows).
        rules: Thresholds.
        now: The receive time; rules never trust the sensor's own clock.
    """
    if event.kind is EventKind.OFFLINE and rules.sleeping(event.format, event.address,
                                                           state.sensor_id):
        # A sleeping device's last will fires as it goes to sleep: recorded, but it is
        # no offline alert, and the device was not seen now (offline comes from the
        # heartbeat timeout, measured from its last real message).
        return Evaluation(state)
    actions: list[AlertAction] = []
    new = dataclasses.replace(state, last_seen=now)
    if event.kind is EventKind.OFFLINE:
        new = dataclasses.replace(new, online=False)
        if state.online:
            actions.append(_raise(AlertType.OFFLINE, "availability topic reports offline"))
    elif not state.online:
        new = dataclasses.replace(new, online=True)
        heard = state.last_seen or state.since
        after = "" if heard is None or now < heard else f" after {format_duration(now - heard)}"
        actions.append(ClearAlert(AlertType.OFFLINE,
                                  f"sensor back online{after} ({event.kind.value})"))

    if event.contact is not None:
        # Native "open" events report each opening; state reports (Z2M, Shelly, native
        # ``door``) are republished, so there an opening is a change to "open".
        opening = event.contact == "open" and (event.edge or state.contact != "open")
        new = dataclasses.replace(new, contact=event.contact)
        if opening:
            actions.extend(_door_opened(household, now))
        elif event.contact == "closed" and state.contact != "closed":
            actions.append(ClearAlert(AlertType.DOOR_OPEN, "door closed"))

    if event.battery is not None:
        new = dataclasses.replace(new, battery=event.battery)
        if event.battery < rules.battery_low_percent:
            actions.append(_raise(AlertType.BATTERY_LOW,
                                  f"battery {event.battery:g}% below "
                                  f"{rules.battery_low_percent:g}%"))
        elif event.battery >= rules.battery_clear_percent and (
                state.battery is None or state.battery < rules.battery_clear_percent):
            actions.append(ClearAlert(AlertType.BATTERY_LOW,
                                      f"battery {event.battery:g}% (replaced)"))

    if event.tamper is not None:
        new = dataclasses.replace(new, tamper=event.tamper)
        if event.tamper:
            actions.append(_raise(AlertType.TAMPER, "tamper switch triggered"))
        elif state.tamper:
            actions.append(ClearAlert(AlertType.TAMPER, "tamper switch restored"))
    return Evaluation(new, tuple(actions))


def _door_opened(household: HouseholdRules, now: datetime) -> list[AlertAction]:
    if not household.quarantined(now):
        return []
    window = household.allowed_window(now)
    if window is not None:
        return []
    return [_raise(AlertType.DOOR_OPEN, f"door opened at {now.isoformat(timespec='seconds')} "
                                        f"during quarantine of household "
                                        f"{household.household_id}")]


def check_heartbeat(state: SensorState, rules: RulesConfig, now: datetime, *,
                    timeout_seconds: float | None = None,
                    lag: timedelta = timedelta(0)) -> Evaluation:
    """Mark a sensor offline when it has been silent longer than the heartbeat timeout
    (``timeout_seconds``, the sensor's own from :meth:`RulesConfig.heartbeat_timeout`, or
    the rules' global one) plus ``lag``, how far ``state.last_seen`` may be behind (in a
    cluster: :data:`netguard.iot.liveness.LAG`)."""
    timeout = rules.heartbeat_timeout_seconds if timeout_seconds is None else timeout_seconds
    seen = state.last_seen or state.since
    if not state.online or seen is None:
        return Evaluation(state)
    silent = now - seen
    if silent < timedelta(seconds=timeout) + lag:
        return Evaluation(state)
    return Evaluation(
        dataclasses.replace(state, online=False),
        (_raise(AlertType.OFFLINE, f"no message for {int(silent.total_seconds())} s "
                                   f"(timeout {timeout:g} s)"),),
    )


def format_duration(span: timedelta) -> str:
    """A span for people: ``3 h 12 min``, ``45 min``, ``2 d 4 h``, ``30 s``."""
    seconds = int(span.total_seconds())
    if seconds < 60:
        return f"{max(seconds, 0)} s"
    minutes, hours, days = seconds // 60 % 60, seconds // 3600 % 24, seconds // 86400
    if days:
        return f"{days} d {hours} h" if hours else f"{days} d"
    if hours:
        return f"{hours} h {minutes} min" if minutes else f"{hours} h"
    return f"{minutes} min"


def next_notify_at(first_seen: datetime, notify_count: int,
                   schedule: Sequence[float]) -> datetime | None:
    """When an unacknowledged alert re-notifies next, or None when the schedule is spent.

    ``schedule`` holds minutes after the first notification (e.g. 5, 15, 30), and
    ``notify_count`` counts the notifications sent so far (the first one included).
    """
    index = notify_count - 1
    if index < 0 or index >= len(schedule):
        return None
    return first_seen + timedelta(minutes=schedule[index])
