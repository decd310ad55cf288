"""The demo's scripted faults: what happens when, in the first minute.

The script is data (:data:`TIMELINE`); :func:`run_timeline` plays it against an
:class:`Actuator` that changes the simulated agents and sensors. Time comes from an
injected sleep function so tests can play the script instantly.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

log = logging.getLogger(__name__)

Action = Literal[
    "rx_power_low", "rx_power_normal",
    "on_battery", "on_mains",
    "onus_lost", "onus_restored",
    "radio_degraded", "radio_normal",
    "agent_down", "agent_up",
    "door_open", "door_closed",
    "sensor_silent",
    "battery_low",
    "prometheus_alert",
]


@dataclass(frozen=True, slots=True)
class Step:
    """One scripted change.

    Attributes:
        at_seconds: Seconds after the demo starts.
        action: What changes.
        subject: The target id (SNMP actions) or sensor id (door actions).
        description: One line for the live view.
        after: ``(target, reachable)`` pairs netguard must have reported before the step
            applies (up to the runner's ``max_wait``), so the story's order does not
            depend on poll timing.
    """

    at_seconds: float
    action: Action
    subject: str
    description: str
    after: tuple[tuple[str, bool], ...] = ()

    def __post_init__(self) -> None:
        if self.at_seconds < 0:
            raise ValueError(f"step at {self.at_seconds}s: time must not be negative")


TIMELINE: tuple[Step, ...] = (
    Step(4, "rx_power_low", "fib-field-hospital", "field hospital fiber: rx power falls"),
    Step(6, "on_battery", "cab-stadium", "stadium 5G cabin: mains lost, on battery"),
    Step(8, "door_open", "door-riverside-02", "riverside household 02: door opens"),
    Step(10, "onus_lost", "pon-riverside", "riverside OLT: ONUs drop off"),
    Step(12, "radio_degraded", "wl-lake-camp", "lake camp radio: signal degrades"),
    Step(14, "battery_low", "door-hillview-03", "hillview household 03: sensor battery low"),
    Step(16, "agent_down", "pl-east-uplink", "east uplink down"),
    Step(18, "sensor_silent", "door-old-town-01", "old-town household 01: sensor goes silent"),
    # The sites behind the uplink go dark once netguard has seen the uplink fail, so their
    # faults join its ticket as children.
    Step(20, "agent_down", "fib-east-clinic", "east clinic unreachable behind the uplink",
         after=(("pl-east-uplink", False),)),
    Step(20, "agent_down", "cab-east-school", "east school unreachable behind the uplink",
         after=(("pl-east-uplink", False),)),
    # A Prometheus rule firing, as Alertmanager posts it to netguard's webhook.
    Step(24, "prometheus_alert", "NetguardPonOnuDrop",
         "Alertmanager posts a Prometheus alert (PON ONUs dropped)"),
    Step(26, "rx_power_normal", "fib-field-hospital", "field hospital fiber: rx power recovers"),
    Step(30, "door_closed", "door-riverside-02", "riverside household 02: door closed again"),
    # The sites come back first: one still dark after its uplink returns would get a
    # ticket of its own.
    Step(34, "agent_up", "fib-east-clinic", "east clinic back"),
    Step(34, "agent_up", "cab-east-school", "east school back"),
    Step(34, "agent_up", "pl-east-uplink", "east uplink restored",
         after=(("fib-east-clinic", True), ("cab-east-school", True))),
    Step(38, "onus_restored", "pon-riverside", "riverside OLT: ONUs back online"),
    Step(42, "radio_normal", "wl-lake-camp", "lake camp radio: signal recovers"),
    Step(46, "on_mains", "cab-stadium", "stadium 5G cabin: mains restored"),
)


class Actuator(Protocol):
    """Applies a scripted step to the simulated world."""

    async def apply(self, step: Step) -> None:
        """Make ``step`` happen."""
        ...


async def run_timeline(steps: Sequence[Step], actuator: Actuator, *,
                       elapsed: Callable[[], float],
                       sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
                       on_step: Callable[[Step], None] | None = None,
                       reachable: Callable[[str], bool | None] | None = None,
                       max_wait: float = 20.0) -> None:
    """Play ``steps`` in time order (steps at the same time keep their order).

    A step that fails is logged and skipped: one broken simulated agent must not stop
    the rest of the demo.

    Args:
        steps: The script.
        actuator: What applies each step.
        elapsed: Seconds since the demo started.
        sleep: Waits (injected so tests need not wait).
        on_step: Called after each step is applied.
        reachable: What netguard last reported for a target (``None``: not yet polled),
            for steps with ``after``.
        max_wait: How long a step waits for its ``after`` conditions before it applies
            anyway.
    """
    for step in sorted(steps, key=lambda s: s.at_seconds):
        delay = step.at_seconds - elapsed()
        if delay > 0:
            await sleep(delay)
        if step.after and reachable is not None:
            waited = 0.0
            while not all(reachable(t) is want for t, want in step.after):
                if waited >= max_wait:
                    log.warning("demo step %r applied without waiting further for %s",
                                step.description, step.after)
                    break
                await sleep(0.2)
                waited += 0.2
        try:
            await actuator.apply(step)
        except Exception:
            log.exception("demo step failed: %s", step.description)
            continue
        log.info("demo: %s", step.description)
        if on_step is not None:
            on_step(step)
