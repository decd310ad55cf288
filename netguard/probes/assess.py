"""Assessment: judge a sample against thresholds, with hysteresis, into faults. No I/O.

Each check yields an :class:`Observation` per (component, condition): *bad* (beyond the
raise threshold), *recovered* (back past the separate clear threshold) or neither (in
the hysteresis band, or unknown). A :class:`Assessor` keeps per-fault counters: a fault
opens after ``raise_after`` consecutive bad polls and clears after ``clear_after``
consecutive recovered polls. The target's state is the worst level among its active
faults, or ``unreachable`` when the agent did not answer this poll.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

from netguard.faults import FaultCleared, FaultEvent, FaultKey, FaultOpened, FaultSeverity
from netguard.probes.config import LinkKind, TargetConfig, Thresholds
from netguard.probes.state import LinkSample, TargetState

Level = Literal["degraded", "down"]

# The kinds whose defaults differ from Thresholds' own.
KIND_DEFAULTS: Mapping[LinkKind, Thresholds] = {
    "fiber": Thresholds(),
    "wireless": Thresholds(),
    "private_line": Thresholds(error_rate_high_per_s=0.1, error_rate_high_clear_per_s=0.05),
    "cabin_5g": Thresholds(),
    "pon": Thresholds(rx_power_low_dbm=-27.0, rx_power_low_clear_dbm=-26.0),
}

# The effective thresholds of a target: the same model, every value decided.
Limits = Thresholds


def limits_for(kind: LinkKind, overrides: Thresholds | None = None) -> Limits:
    """The effective thresholds of a target of ``kind``: its kind's, then what it set."""
    defaults = KIND_DEFAULTS[kind]
    return defaults if overrides is None else defaults.overridden_by(overrides)


@dataclass(frozen=True, slots=True)
class Observation:
    """One check's verdict on this poll."""

    component: str
    condition: str
    level: Level
    severity: FaultSeverity
    bad: bool
    recovered: bool
    reason: str


def _obs(component: str, condition: str, level: Level, severity: FaultSeverity,
         value: float | None, *checks: bool | str) -> Observation:
    raise_if, clear_if, reason = bool(checks[0]), bool(checks[1]), str(checks[2])
    if value is None:
        return Observation(component, condition, level, severity, False, False, reason)
    return Observation(component, condition, level, severity, raise_if, clear_if, reason)


def observe(kind: LinkKind, sample: LinkSample, limits: Limits) -> list[Observation]:
    """Every check for this kind against one sample (pure)."""
    return [*_observe_interfaces(kind, sample, limits), *_observe_optical(sample, limits),
            *_observe_radio(sample, limits), *_observe_ups(sample, limits),
            *_observe_pon(sample, limits), *_observe_dsx1(sample)]


# DS1-MIB dsx1LineStatus bits (1 = dsx1NoAlarm); loss of frame or signal means no line.
_DSX1_BITS = {2: "far-end LOF", 4: "near-end sending LOF", 8: "far-end AIS",
              16: "near-end sending AIS", 32: "loss of frame", 64: "loss of signal",
              128: "loopback", 256: "T16 AIS", 512: "far-end LOMF", 1024: "near-end LOMF",
              2048: "near-end test code", 4096: "other failure"}
_DSX1_DOWN = 32 | 64


def dsx1_alarms(status: int) -> list[str]:
    """Names of the alarms set in a dsx1LineStatus bitmap (empty for no alarm)."""
    return [name for bit, name in _DSX1_BITS.items() if status & bit]


def _observe_dsx1(sample: LinkSample) -> list[Observation]:
    out: list[Observation] = []
    for name, value in sample.extra:
        if not name.startswith("dsx1_line_status.") or not isinstance(value, float | int):
            continue
        line = name.removeprefix("dsx1_line_status.")
        status = int(value)
        alarms = dsx1_alarms(status)
        out.append(Observation(f"dsx1:{line}", "line_alarm",
                               "down" if status & _DSX1_DOWN else "degraded", "major",
                               bool(alarms), not alarms,
                               f"E1/T1 line {line} alarm: {', '.join(alarms) or status}"))
    return out


def _observe_interfaces(kind: LinkKind, sample: LinkSample,
                        limits: Limits) -> list[Observation]:
    out: list[Observation] = []
    # Cabins and OLTs have many ports; one port down degrades them, an uplink link kind is down.
    if_down_level: Level = "down" if kind in ("fiber", "private_line", "wireless") else "degraded"
    for iface in sample.interfaces:
        comp = f"if:{iface.name}"
        if iface.admin_status == 1 and iface.oper_status is not None:
            down = iface.oper_status not in (1, 5)  # up, dormant
            out.append(Observation(comp, "oper_down", if_down_level, "major", down, not down,
                                   f"interface {iface.name} is oper-down"))
        util = iface.utilisation
        out.append(_obs(comp, "utilisation_high", "degraded", "warning", util,
                        util is not None and util > limits.utilisation_high_ratio,
                        util is not None and util <= limits.utilisation_high_clear_ratio,
                        f"interface {iface.name} utilisation {util or 0:.0%} above "
                        f"{limits.utilisation_high_ratio:.0%}"))
        errs = None
        if iface.in_error_rate is not None or iface.out_error_rate is not None:
            errs = (iface.in_error_rate or 0.0) + (iface.out_error_rate or 0.0)
        out.append(_obs(comp, "errors_high", "degraded", "minor", errs,
                        errs is not None and errs > limits.error_rate_high_per_s,
                        errs is not None and errs <= limits.error_rate_high_clear_per_s,
                        f"interface {iface.name} errors {errs or 0:.2f}/s above "
                        f"{limits.error_rate_high_per_s:g}/s"))
    return out


def _observe_optical(sample: LinkSample, limits: Limits) -> list[Observation]:
    out: list[Observation] = []
    for optic in sample.optical:
        rx = optic.rx_dbm
        comp = f"sensor:{optic.sensor}"
        down = rx is not None and rx < limits.rx_power_down_dbm
        out.append(_obs(comp, "rx_power_down", "down", "critical", rx, down,
                        rx is not None and rx >= limits.rx_power_low_clear_dbm,
                        f"{optic.sensor} rx power {rx or 0:.1f} dBm below "
                        f"{limits.rx_power_down_dbm:.1f} (no light)"))
        out.append(_obs(comp, "rx_power_low", "degraded", "minor", rx,
                        rx is not None and not down and rx < limits.rx_power_low_dbm,
                        rx is not None and rx >= limits.rx_power_low_clear_dbm,
                        f"{optic.sensor} rx power {rx or 0:.1f} dBm below "
                        f"{limits.rx_power_low_dbm:.1f}"))
    return out


def _observe_radio(sample: LinkSample, limits: Limits) -> list[Observation]:
    out: list[Observation] = []
    if sample.radio is not None:
        sig, snr = sample.radio.signal_dbm, sample.radio.snr_db
        out.append(_obs("radio", "signal_low", "degraded", "minor", sig,
                        sig is not None and sig < limits.signal_low_dbm,
                        sig is not None and sig >= limits.signal_low_clear_dbm,
                        f"radio signal {sig or 0:.1f} dBm below {limits.signal_low_dbm:.1f}"))
        out.append(_obs("radio", "snr_low", "degraded", "minor", snr,
                        snr is not None and snr < limits.snr_low_db,
                        snr is not None and snr >= limits.snr_low_clear_db,
                        f"radio SNR {snr or 0:.1f} dB below {limits.snr_low_db:.1f}"))
    return out


def _observe_ups(sample: LinkSample, limits: Limits) -> list[Observation]:
    out: list[Observation] = []
    if sample.ups is not None:
        ups = sample.ups
        on_batt = ups.on_battery
        secs = ups.seconds_on_battery or 0
        out.append(_obs("ups", "on_battery", "degraded", "major",
                        None if on_batt is None else 1.0, bool(on_batt), on_batt is False,
                        f"cabin on battery for {secs:.0f} s"))
        mins, charge = ups.minutes_remaining, ups.charge_percent
        status_low = ups.battery_status in (3, 4)
        low = status_low \
            or (mins is not None and mins < limits.battery_runtime_low_minutes) \
            or (charge is not None and charge < limits.battery_charge_low_percent)
        fine = not status_low \
            and (mins is None or mins >= limits.battery_runtime_low_clear_minutes) \
            and (charge is None or charge >= limits.battery_charge_low_clear_percent)
        known = ups.battery_status is not None or mins is not None or charge is not None
        depleted = ups.battery_status == 4
        parts = []
        if ups.battery_status in (3, 4):
            parts.append("battery " + ("depleted" if depleted else "low"))
        if mins is not None:
            parts.append(f"{mins:.0f} min remaining")
        if charge is not None:
            parts.append(f"charge {charge:.0f}%")
        out.append(_obs("ups", "battery_low", "down" if depleted else "degraded", "critical",
                        1.0 if known else None, low, fine, ", ".join(parts)))
    return out


def _observe_pon(sample: LinkSample, limits: Limits) -> list[Observation]:
    out: list[Observation] = []
    for port in sample.pon:
        if port.onus_total == 0:
            continue
        offline = port.onus_total - port.onus_online
        ratio = offline / port.onus_total
        comp = f"pon:{port.port}"
        all_down = port.onus_online == 0
        out.append(Observation(comp, "all_onus_offline", "down", "critical", all_down,
                               ratio <= limits.onu_offline_clear_ratio,
                               f"PON {port.port}: all {port.onus_total} ONUs offline"))
        out.append(Observation(comp, "onus_offline", "degraded", "major",
                               not all_down and ratio > limits.onu_offline_ratio,
                               ratio <= limits.onu_offline_clear_ratio,
                               f"PON {port.port}: {offline} of {port.onus_total} "
                               f"ONUs offline"))
        weak = [o for o in port.onus if o.rx_dbm is not None
                and o.rx_dbm < limits.rx_power_low_dbm]
        out.append(Observation(comp, "onu_rx_power_low", "degraded", "minor", bool(weak),
                               not any(o.rx_dbm is not None
                                       and o.rx_dbm < limits.rx_power_low_clear_dbm
                                       for o in port.onus),
                               f"PON {port.port}: {len(weak)} ONUs with rx power below "
                               f"{limits.rx_power_low_dbm:.1f} dBm "
                               f"(worst {min((o.rx_dbm or 0) for o in weak) if weak else 0:.1f})"))
    return out


AGENT = "agent"
UNREACHABLE = "unreachable"


@dataclass(slots=True)
class _FaultTrack:
    bad: int = 0
    good: int = 0
    active: bool = False
    opened_once: bool = False
    flaps: int = 0
    reason: str = ""
    level: Level = "degraded"
    severity: FaultSeverity = "minor"
    suppressed_by: str | None = None

    @property
    def pristine(self) -> bool:
        """Nothing to remember: as a fresh track (no streak, never opened)."""
        return self.bad == 0 and not self.active and not self.opened_once


@dataclass(frozen=True, slots=True)
class ActiveFault:
    """A fault held active by the probes, as exported and restored across services.

    The probes' hysteresis lives in memory; a new probe service (after a restart) is
    seeded with these from the open tickets, and a target replaced by a reload hands them
    to its successor, so that a fault whose ticket is still open clears through the
    normal path (``clear_after`` good polls) instead of being forgotten, and is not
    raised again while it persists.

    Attributes:
        key: The fault.
        suppressed_by: The upstream its last report blamed (``None``: not suppressed).
        reason: Shown in the target's reasons until the next poll judges the fault.
        level: How bad it makes the target until then (``degraded`` when unknown).
        severity: Its severity until then.
    """

    key: FaultKey
    suppressed_by: str | None = None
    reason: str = ""
    level: Level = "degraded"
    severity: FaultSeverity = "minor"


@dataclass(frozen=True, slots=True)
class Verdict:
    """The outcome of assessing one poll."""

    state: TargetState
    reasons: tuple[str, ...]
    events: tuple[FaultEvent, ...]
    flaps: int
    active: tuple[str, ...]


@dataclass(slots=True)
class Assessor:
    """Hysteresis state of one target's faults (one per target, kept across polls)."""

    target: TargetConfig
    limits: Limits
    tracks: dict[tuple[str, str], _FaultTrack] = field(default_factory=dict)
    flaps: int = 0

    @classmethod
    def for_target(cls, target: TargetConfig) -> Assessor:
        """An assessor with the target's effective thresholds."""
        return cls(target=target, limits=limits_for(target.kind, target.thresholds))

    def retune(self, target: TargetConfig) -> None:
        """Judge later polls by ``target``'s settings (thresholds, site), keeping the state.

        For a reload that changed how a target is judged but not what is polled: faults
        active or pending stay as they are, and the new thresholds apply from the next
        poll on.

        Raises:
            ValueError: ``target`` is another target or of another kind.
        """
        if (target.id, target.kind) != (self.target.id, self.target.kind):
            raise ValueError(f"cannot retune {self.target.id} ({self.target.kind}) "
                             f"as {target.id} ({target.kind})")
        self.target = target
        self.limits = limits_for(target.kind, target.thresholds)

    def restore(self, fault: ActiveFault) -> None:
        """Hold ``fault`` active as if it had been raised (a restored tracker).

        The next polls then judge it as usual: ``clear_after`` recovered polls emit
        ``FaultCleared``; bad polls keep it active without a new ``FaultOpened``. A later
        re-raise counts as a flap, like any recurrence.

        Raises:
            ValueError: The fault belongs to another target.
        """
        if fault.key.target != self.target.id:
            raise ValueError(f"{fault.key} is not a fault of {self.target.id}")
        track = self.tracks.setdefault((fault.key.component, fault.key.condition),
                                       _FaultTrack())
        if track.active:
            return
        track.active = True
        track.opened_once = True
        track.bad = track.good = 0
        track.suppressed_by = fault.suppressed_by
        track.reason = fault.reason or (f"{fault.key.component} "
                                        f"{fault.key.condition.replace('_', ' ')} (restored)")
        track.level, track.severity = fault.level, fault.severity

    def active_faults(self) -> list[ActiveFault]:
        """The faults active now, in the form :meth:`restore` takes."""
        return [ActiveFault(FaultKey(self.target.id, c, d), suppressed_by=t.suppressed_by,
                            reason=t.reason, level=t.level, severity=t.severity)
                for (c, d), t in self.tracks.items() if t.active]

    def assess(self, sample: LinkSample | None, *, now: datetime,
               suppressed_by: str | None = None, unreachable_reason: str = "",
               complete: bool = True, suppression_known: bool = True) -> Verdict:
        """Fold one poll into the fault state.

        Args:
            sample: The decoded sample, or ``None`` when the agent did not answer.
            now: When the poll finished (timezone-aware).
            suppressed_by: The upstream target whose outage explains ours, if any.
            unreachable_reason: Why the agent did not answer (when ``sample`` is None).
            complete: False when part of the poll failed (a table walk): components
                missing from the sample then keep their faults instead of clearing.
            suppression_known: False while the upstream has not been polled yet (its
                state is a placeholder): active faults then keep the suppression they
                had (e.g. restored from a child link) instead of being re-announced.
        """
        if sample is None:
            observations = [Observation(AGENT, UNREACHABLE, "down", "critical", True, False,
                                        unreachable_reason or "agent did not answer")]
        else:
            observations = [Observation(AGENT, UNREACHABLE, "down", "critical", False, True,
                                        "agent answers"),
                            *observe(self.target.kind, sample, self.limits)]
        events: list[FaultEvent] = []
        seen: set[tuple[str, str]] = set()
        for ob in observations:
            key = (ob.component, ob.condition)
            seen.add(key)
            track = self.tracks.get(key)
            if track is None:
                if not ob.bad:
                    continue  # a fresh track folds a good observation into nothing
                track = self.tracks[key] = _FaultTrack()
            events.extend(self._fold(ob, track, now, suppressed_by))
            if track.pristine:
                # Only tracks with history are kept: a healthy target holds none, where
                # it held one per interface and condition (bench/RESULTS.md, memory).
                del self.tracks[key]
        if sample is not None and complete:
            # A component that vanished (interface removed) counts as recovered.
            for key, track in self.tracks.items():
                if key not in seen and track.active:
                    gone = Observation(key[0], key[1], track.level, track.severity, False,
                                       True, f"{key[0]} no longer reported")
                    events.extend(self._fold(gone, track, now, suppressed_by))
        # Re-announce active faults whose suppression changed, so tickets regroup.
        for key, track in self.tracks.items():
            if suppression_known and track.active and track.suppressed_by != suppressed_by:
                track.suppressed_by = suppressed_by
                events.append(self._opened(key, track, now))
        active = [(k, t) for k, t in self.tracks.items() if t.active]
        reasons = [t.reason for _, t in active]
        pending = [f"{t.reason} (pending {t.bad}/{self.limits.raise_after})"
                   for k, t in self.tracks.items()
                   if not t.active and t.bad > 0 and k != (AGENT, UNREACHABLE)]
        if sample is None:
            state: TargetState = "unreachable"
            unreachable = self.tracks[(AGENT, UNREACHABLE)].reason
            if unreachable not in reasons:
                reasons.insert(0, unreachable)
        elif any(t.level == "down" for _, t in active):
            state = "down"
        elif active:
            state = "degraded"
        else:
            state = "up"
        return Verdict(state=state, reasons=tuple(reasons + pending), events=tuple(events),
                       flaps=self.flaps,
                       active=tuple(str(FaultKey(self.target.id, c, d)) for (c, d), _ in active))

    def _fold(self, ob: Observation, track: _FaultTrack, now: datetime,
              suppressed_by: str | None) -> list[FaultEvent]:
        key = (ob.component, ob.condition)
        if ob.bad:
            track.bad += 1
            track.good = 0
            track.reason = ob.reason
            track.level, track.severity = ob.level, ob.severity
            if not track.active and track.bad >= self.limits.raise_after:
                track.active = True
                if track.opened_once:
                    track.flaps += 1
                    self.flaps += 1
                track.opened_once = True
                track.suppressed_by = suppressed_by
                return [self._opened(key, track, now)]
            return []
        track.bad = 0
        if not track.active:
            return []
        if ob.recovered:
            track.good += 1
            if track.good >= self.limits.clear_after:
                track.active = False
                track.good = 0
                return [FaultCleared(
                    key=FaultKey(self.target.id, *key), at=now,
                    reasons=(f"{ob.component} {ob.condition.replace('_', ' ')} cleared "
                             f"after {track_polls(self.limits)} good polls",))]
        else:
            track.good = 0
        return []

    def _opened(self, key: tuple[str, str], track: _FaultTrack, now: datetime) -> FaultOpened:
        return FaultOpened(
            key=FaultKey(self.target.id, *key),
            category=self.target.kind,
            site=self.target.site,
            severity=track.severity,
            summary=f"{self.target.id}: {track.reason}",
            reasons=(track.reason,),
            at=now,
            suppressed_by=track.suppressed_by,
            flaps=track.flaps,
        )


def track_polls(limits: Limits) -> int:
    """Good polls needed to clear a fault."""
    return limits.clear_after


def reasons_text(reasons: Iterable[str]) -> str:
    """Reasons joined for one-line output."""
    return "; ".join(reasons) or "all checks pass"


def replace_limits(limits: Limits, **changes: float | int) -> Limits:
    """A copy of ``limits`` with some values changed (for tests and tuning)."""
    return limits.model_copy(update=changes)
