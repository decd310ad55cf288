"""The ``notifications:`` section: routes for ticket events and Alertmanager alerts.

Routes are matched in order, Alertmanager-style: the first route whose ``match`` fits
takes the event, and a route with ``continue: true`` lets the search go on, so one event
can reach several routes. A route names notifiers defined once under ``iot.notifiers``.
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

from netguard.faults import Severity
from netguard.iot.config import Recipient
from netguard.names import check_name

EventKind = Literal["opened", "severity", "child", "overdue", "reopened", "resolved"]
"""Ticket events that can notify (``severity``: raised; ``child``: a child attached)."""

EVENT_KINDS: tuple[EventKind, ...] = ("opened", "severity", "child", "overdue", "reopened",
                                      "resolved")

_CLOCK = re.compile(r"([01][0-9]|2[0-3]):[0-5][0-9]\Z")
# A label name as Prometheus spells it.
_LABEL = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}\Z")
_VALUE_MAX = 256


class RouteMatch(BaseModel):
    """What a route takes; every field given must fit, a list fits any of its items.

    ``labels`` are target labels (``targets[].labels``) for tickets and the alert's
    labels for Alertmanager alerts; a value starting with ``~`` is a regular expression
    that must match the whole value (``~pl-.*``).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    site: list[str] | None = None
    category: list[str] | None = None
    severity: list[Severity] | None = None
    # ticket (network fault tickets) or alertmanager (alerts posted by Alertmanager).
    source: list[Literal["ticket", "alertmanager"]] | None = None
    labels: dict[str, str] = Field(default_factory=dict)

    @field_validator("labels")
    @classmethod
    def _labels(cls, value: dict[str, str]) -> dict[str, str]:
        for name, pattern in value.items():
            if not _LABEL.match(name):
                raise ValueError(f"{name[:70]!r} is not a label name")
            if len(pattern) > _VALUE_MAX:
                raise ValueError(f"labels.{name}: longer than {_VALUE_MAX} characters")
            if pattern.startswith("~"):
                try:
                    re.compile(pattern[1:])
                except re.error as exc:
                    raise ValueError(f"labels.{name}: not a regular expression: {exc}"
                                     ) from None
        return value


class QuietHours(BaseModel):
    """A daily window, in ``display.timezone``, when only critical messages go out; the
    others wait for its end (``start`` after ``end`` spans midnight)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    start: str
    end: str

    @field_validator("start", "end")
    @classmethod
    def _clock(cls, value: str) -> str:
        if not _CLOCK.match(value):
            raise ValueError(f"{value[:20]!r} is not a time of day (HH:MM, 24 h)")
        return value

    @model_validator(mode="after")
    def _not_empty(self) -> QuietHours:
        if self.start == self.end:
            raise ValueError("start and end are the same time")
        return self


class Escalation(BaseModel):
    """An unacknowledged ticket of these severities also goes to ``route`` (the duty
    manager) once it has been open ``after_seconds``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    route: str
    after_seconds: float = Field(default=1800.0, gt=0)
    severity: list[Severity] = Field(default_factory=lambda: [Severity.CRITICAL])


class TicketRoute(BaseModel):
    """Where matching events go, and how they are grouped and repeated."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    name: str
    match: RouteMatch = Field(default_factory=RouteMatch)
    events: list[EventKind] = Field(default_factory=lambda: list(EVENT_KINDS))
    notifiers: list[str] = Field(min_length=1)
    recipients: list[Recipient] = Field(default_factory=list)
    # A root ticket waits this long for children before its one message goes out.
    group_wait_seconds: float = Field(default=30.0, ge=0, le=3600)
    # Children that arrive later are sent as one update at most this often.
    group_interval_seconds: float = Field(default=300.0, ge=0, le=86400)
    # An unacknowledged active ticket is sent again this often; 0: never.
    repeat_interval_seconds: float = Field(default=4 * 3600.0, ge=0, le=7 * 86400)
    continue_: bool = Field(default=False, alias="continue")
    quiet_hours: QuietHours | None = None
    escalate: Escalation | None = None

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        return check_name(value, "route name")


class AlertmanagerBasicAuth(BaseModel):
    """HTTP basic credentials Alertmanager's ``http_config.basic_auth`` sends."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    username: str = Field(min_length=1, max_length=64)
    password: SecretStr


class AlertmanagerIntake(BaseModel):
    """``POST /alertmanager/webhook`` on the metrics endpoint (payload version 4)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = False
    # Alertmanager's ``http_config.authorization.credentials`` (or ``token_file``).
    token: SecretStr | None = None
    basic_auth: AlertmanagerBasicAuth | None = None
    max_body_bytes: int = Field(default=256 * 1024, ge=1024, le=16 * 1024 * 1024)
    # A post with the same group key, status and alerts within this window is a retry
    # of Alertmanager's (or a duplicate from an HA pair): acknowledged, not sent again.
    dedupe_window_seconds: float = Field(default=3600.0, gt=0)

    @model_validator(mode="after")
    def _guarded(self) -> AlertmanagerIntake:
        if self.enabled and self.token is None and self.basic_auth is None:
            raise ValueError("enabled needs token (or token_file) or basic_auth: the "
                             "endpoint must not accept alerts from anyone")
        return self


class NotificationsConfig(BaseModel):
    """Routes of network-fault notifications, and the Alertmanager intake."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    routes: list[TicketRoute] = Field(default_factory=list)
    alertmanager: AlertmanagerIntake = Field(default_factory=AlertmanagerIntake)

    @model_validator(mode="after")
    def _routes(self) -> NotificationsConfig:
        names = [r.name for r in self.routes]
        if len(set(names)) != len(names):
            raise ValueError("routes: route names must be unique")
        for i, route in enumerate(self.routes):
            if route.escalate is not None and route.escalate.route not in names:
                raise ValueError(f"routes[{i}].escalate.route: unknown route "
                                 f"{route.escalate.route!r} (known: {', '.join(names)})")
            if route.escalate is not None and route.escalate.route == route.name:
                raise ValueError(f"routes[{i}].escalate.route: a route cannot escalate "
                                 "to itself")
        return self

    def route(self, name: str) -> TicketRoute | None:
        """The route called ``name``, if any."""
        return next((r for r in self.routes if r.name == name), None)

    def unknown_notifiers(self, known: set[str]) -> list[str]:
        """Problems: routes naming a notifier not in ``known`` (``iot.notifiers``)."""
        listed = ", ".join(sorted(known)) or "none configured"
        return [f"notifications.routes[{i}].notifiers: unknown notifier {name!r} in route "
                f"{route.name!r} (known: {listed})"
                for i, route in enumerate(self.routes) for name in route.notifiers
                if name not in known]
