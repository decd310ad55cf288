"""Domain events that link probes to tickets: a fault opened or cleared on a target.

These are the only types the ticket service needs from the probes; neither side imports
the other's internals.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Literal, get_args


class Severity(StrEnum):
    """How urgent a fault (and its ticket) is, most urgent first: the one definition.

    The values are what config files, the database and the CLI spell; the order is the
    rank the ticket queue sorts on (``severity_rank`` column: 0 critical .. 3 warning).
    """

    CRITICAL = "critical"
    MAJOR = "major"
    MINOR = "minor"
    WARNING = "warning"

    @property
    def rank(self) -> int:
        """0 for critical up to 3 for warning."""
        return SEVERITIES.index(self)

    def raised(self, steps: int) -> Severity:
        """Raised by ``steps`` towards critical (critical is the cap; negative: none)."""
        return SEVERITIES[max(0, self.rank - max(0, steps))]


SEVERITIES: tuple[Severity, ...] = tuple(Severity)
"""Most urgent first; a severity's index is its rank."""

FaultSeverity = Literal["critical", "major", "minor", "warning"]
"""The same names as a ``Literal``, for code that passes them as plain strings (the
probes' tables). Checked against :class:`Severity` below, so the two cannot drift."""

if get_args(FaultSeverity) != tuple(s.value for s in SEVERITIES):  # pragma: no cover
    raise AssertionError("FaultSeverity and Severity disagree")


@dataclass(frozen=True, slots=True, order=True)
class FaultKey:
    """Stable identity of one fault: (target, component, condition).

    ``component`` names the part (``if:3``, ``sensor:rx-1``, ``pon:0/1/2``, ``ups``, ``agent``)
    and ``condition`` the problem (``oper_down``, ``rx_power_low``, ``on_battery``, ...).
    """

    target: str
    component: str
    condition: str

    def __post_init__(self) -> None:
        for name in ("target", "component", "condition"):
            value = getattr(self, name)
            if not value or "|" in value:
                raise ValueError(f"FaultKey.{name} must be non-empty and contain no '|': "
                                 f"{value!r}")

    def __str__(self) -> str:
        return f"{self.target}|{self.component}|{self.condition}"

    @classmethod
    def parse(cls, text: str) -> FaultKey:
        """Parse the ``target|component|condition`` form produced by ``str()``."""
        parts = text.split("|")
        if len(parts) != 3:
            raise ValueError(f"not a fault key: {text!r}")
        return cls(*parts)


@dataclass(frozen=True, slots=True)
class FaultOpened:
    """A fault became active (after hysteresis).

    Attributes:
        key: The fault's stable key.
        category: The link kind (fiber, wireless, private_line, cabin_5g, pon).
        site: The target's site, if any.
        severity: The condition's base severity (site criticality may raise it).
        summary: One line for humans.
        reasons: Evidence, e.g. ``rx power -27.4 dBm below -25.0``.
        at: When it was raised (timezone-aware UTC).
        suppressed_by: The upstream target whose outage explains this fault, if any.
    """

    key: FaultKey
    category: str
    site: str | None
    severity: FaultSeverity
    summary: str
    reasons: tuple[str, ...]
    at: datetime
    suppressed_by: str | None = None
    flaps: int = 0

    def __post_init__(self) -> None:
        if self.at.tzinfo is None:
            raise ValueError("FaultOpened.at must be timezone-aware")


@dataclass(frozen=True, slots=True)
class FaultCleared:
    """A fault is no longer active (after hysteresis)."""

    key: FaultKey
    at: datetime
    reasons: tuple[str, ...] = field(default=())

    def __post_init__(self) -> None:
        if self.at.tzinfo is None:
            raise ValueError("FaultCleared.at must be timezone-aware")


FaultEvent = FaultOpened | FaultCleared
