"""Configuration of the ticket service: severities, site criticality, SLAs, timings."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from netguard.faults import Severity

Criticality = Literal["normal", "quarantine_hotel", "hospital", "test_site", "government"]


_DEFAULT_SLA: dict[Severity, float] = {
    Severity.CRITICAL: 60.0, Severity.MAJOR: 240.0, Severity.MINOR: 1440.0,
    Severity.WARNING: 4320.0}
_DEFAULT_RAISE: dict[Criticality, int] = {
    "normal": 0, "quarantine_hotel": 1, "hospital": 1, "test_site": 1, "government": 1}


class SiteConfig(BaseModel):
    """A site and how critical it is; critical sites raise ticket severity."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str
    criticality: Criticality = "normal"
    label: str | None = None


class TicketsConfig(BaseModel):
    """Ticket lifecycle timings and severity policy."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id_prefix: str = Field(default="NG", pattern=r"^[A-Z]{1,8}$")
    # A cleared fault resolves its ticket only after staying clear this long.
    resolve_hold_seconds: float = Field(default=300.0, ge=0)
    # A recurrence within this window after resolution reopens the same ticket.
    reopen_window_seconds: float = Field(default=3600.0, ge=0)
    sla_minutes: dict[Severity, float] = Field(default_factory=lambda: dict(_DEFAULT_SLA))
    # How many severity steps a site's criticality raises a ticket (critical is the cap).
    criticality_raise: dict[Criticality, int] = Field(
        default_factory=lambda: dict(_DEFAULT_RAISE))
    # A suppressed child whose upstream has no ticket after this long gets its own.
    orphan_grace_seconds: float = Field(default=300.0, ge=0)
    # A fault that opened its own ticket, then is reported suppressed by an upstream, is
    # moved under the upstream's root ticket if its own ticket is younger than this and
    # untouched by a human (the probes may see a child fail a moment before its upstream).
    group_window_seconds: float = Field(default=300.0, ge=0)
    sites: list[SiteConfig] = Field(default_factory=list)
    page_size: int = Field(default=50, ge=1)
