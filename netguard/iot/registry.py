"""Households, quarantine periods, allowed windows and sensors: the operator's registry.

The CLI and the daemon share these functions; the intake keeps an in-memory
:class:`RegistryView` that it reloads when the registry changes.
"""

from __future__ import annotations

import csv
import io
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, tzinfo
from typing import Any

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from netguard.clock import as_utc
from netguard.csvsafe import is_formula
from netguard.errors import NotFoundError, RegistryError, RegistryInputError
from netguard.iot import schedule
from netguard.iot.codecs import codec_names
from netguard.iot.events import check_sensor_id
from netguard.iot.models import AllowedWindow, Household, QuarantinePeriod, Sensor, fit_text
from netguard.iot.rules import AllowedSpan, HouseholdRules, Period, SensorState
from netguard.localtime import TimeInputError, parse_wall, zone
from netguard.names import check_name

# The registered codecs' names; a new device family registers itself there.
FORMATS = codec_names()
TEXT_MAX = 200

_log = logging.getLogger(__name__)


def check_text(value: str, what: str, max_length: int = TEXT_MAX) -> str:
    """A free-text field (label, reason): at most ``max_length`` characters and no control
    characters (PostgreSQL refuses NUL; a newline would break a log line or a table).

    Raises:
        ValueError: It is too long or holds a control character.
    """
    if len(value) > max_length:
        raise ValueError(f"{what} is {len(value)} characters long; at most {max_length}")
    if fit_text(value, max_length) != value:
        raise ValueError(f"{what} contains a control character: {fit_text(value, 60)!r}")
    return value


async def add_household(session: AsyncSession, household_id: str, community: str, *,
                        label: str = "", start: datetime | None = None,
                        end: datetime | None = None, now: datetime) -> Household:
    """Register a household, optionally with a first quarantine period.

    Raises:
        InvalidNameError: The id or community does not follow :mod:`netguard.names`.
    """
    check_name(household_id, "household id")
    check_name(community, "community")
    label = check_text(label, "label")
    if await session.get(Household, household_id) is not None:
        raise RegistryError(f"household {household_id!r} already exists")
    household = Household(id=household_id, community=community, label=label, created_at=now)
    session.add(household)
    if start is not None:
        await session.flush()
        await add_quarantine(session, household_id, start, end)
    return household


async def get_household(session: AsyncSession, household_id: str) -> Household:
    """The household, or NotFoundError."""
    household = await session.get(Household, household_id)
    if household is None:
        raise NotFoundError("household", household_id)
    return household


async def add_quarantine(session: AsyncSession, household_id: str, start: datetime,
                         end: datetime | None) -> QuarantinePeriod:
    """Add a quarantine period ``[start, end)``."""
    await get_household(session, household_id)
    start, end = as_utc(start), None if end is None else as_utc(end)
    if end is not None and end <= start:
        raise RegistryError("a quarantine period must end after it starts")
    period = QuarantinePeriod(household_id=household_id, start_at=start, end_at=end)
    session.add(period)
    return period


async def add_window(session: AsyncSession, household_id: str, start: datetime,
                     end: datetime, reason: str = "") -> AllowedWindow:
    """Allow the door to open in ``[start, end)`` (e.g. a scheduled test visit)."""
    reason = check_text(reason, "reason")
    await get_household(session, household_id)
    start, end = as_utc(start), as_utc(end)
    if end <= start:
        raise RegistryError("an allowed window must end after it starts")
    window = AllowedWindow(household_id=household_id, start_at=start, end_at=end,
                           reason=reason)
    session.add(window)
    return window


async def add_recurring_window(session: AsyncSession, household_id: str, spec: str, *,
                               timezone: str, start: datetime, end: datetime,
                               reason: str = "") -> AllowedWindow:
    """Allow the door to open in a repeating local-time window, e.g. ``daily 18:00-18:30``.

    Args:
        session: Where the row is added (the caller commits).
        household_id: The household.
        spec: ``DAYS HH:MM-HH:MM`` (:func:`netguard.iot.schedule.parse_spec`).
        timezone: The IANA zone the times are read in; stored with the window.
        start: The first instant a window may start (e.g. the quarantine's start).
        end: The instant after which no window starts.
        reason: Free text (e.g. "daily PCR test").

    Raises:
        RegistryError: A bad spec, zone or span, or an unknown household.
    """
    reason = check_text(reason, "reason")
    await get_household(session, household_id)
    start, end = as_utc(start), as_utc(end)
    if end <= start:
        raise RegistryInputError("an allowed window must end after it starts")
    try:
        window = schedule.parse_spec(spec, zone(timezone), Period(start, end))
    except ValueError as exc:
        raise RegistryInputError(str(exc)) from None
    row = AllowedWindow(household_id=household_id, start_at=start, end_at=end, reason=reason,
                        repeat=window.spec, timezone=timezone)
    session.add(row)
    return row


def allowed_span(row: AllowedWindow) -> AllowedSpan:
    """The rules' view of a stored window: a one-off span or a recurring window.

    Raises:
        RegistryError: A stored recurring window no longer parses (edited by hand, or a
            zone this machine does not know).
    """
    span = Period(as_utc(row.start_at), as_utc(row.end_at))
    if row.repeat is None:
        return span
    try:
        return schedule.parse_spec(row.repeat, zone(row.timezone or "UTC"), span)
    except ValueError as exc:
        raise RegistryError(f"allowed window {row.id} of household {row.household_id}: "
                            f"{exc}") from None


async def end_quarantine(session: AsyncSession, household_id: str, at: datetime) -> int:
    """End the household's open (or future-ending) quarantine periods at ``at``."""
    await get_household(session, household_id)
    at = as_utc(at)
    periods = (await session.exec(select(QuarantinePeriod).where(
        col(QuarantinePeriod.household_id) == household_id))).all()
    ended = 0
    for period in periods:
        if period.end_at is None or as_utc(period.end_at) > at:
            period.end_at = max(at, as_utc(period.start_at))
            session.add(period)
            ended += 1
    if not ended:
        raise RegistryError(f"household {household_id!r} has no open quarantine period")
    return ended


async def add_sensor(session: AsyncSession, sensor_id: str, household_id: str, *,
                     fmt: str = "native", address: str | None = None, kind: str = "door",
                     now: datetime) -> Sensor:
    """Bind a sensor to a household; ``address`` defaults to the sensor id.

    Raises:
        InvalidNameError: The id, address or kind does not follow :mod:`netguard.names`.
    """
    check_sensor_id(sensor_id)
    check_name(kind, "sensor kind")
    if fmt not in FORMATS:
        raise RegistryError(f"unknown format {fmt!r}; use one of {', '.join(FORMATS)}")
    await get_household(session, household_id)
    address = check_sensor_id(address or sensor_id, "sensor address")
    if await session.get(Sensor, sensor_id) is not None:
        raise RegistryError(f"sensor {sensor_id!r} already exists")
    taken = (await session.exec(select(Sensor).where(col(Sensor.format) == fmt,
                                                     col(Sensor.address) == address))).first()
    if taken is not None:
        raise RegistryError(f"{fmt} address {address!r} is already sensor {taken.id!r}")
    sensor = Sensor(id=sensor_id, household_id=household_id, kind=kind, format=fmt,
                    address=address, created_at=now)
    session.add(sensor)
    return sensor


class CsvImportError(RegistryError):
    """A households CSV was refused (bad header or bad row); nothing was imported."""


IMPORT_REQUIRED = ("id", "community")
IMPORT_COLUMNS = (*IMPORT_REQUIRED, "label", "start", "end", "sensor", "format", "address",
                  "allow")


def _ts(value: str, what: str, tz: tzinfo) -> datetime | None:
    # The same reading as the CLI's times: a date, or a time without offset, is local.
    value = value.strip()
    if not value:
        return None
    try:
        return parse_wall(value, tz, what)
    except TimeInputError:
        raise RegistryError(f"{what} is not an ISO 8601 date or time: {value[:64]!r}"
                            ) from None


def _check_header(fieldnames: Sequence[str] | None) -> None:
    names = [n.strip() for n in fieldnames or ()]
    problems = []
    missing = [c for c in IMPORT_REQUIRED if c not in names]
    if missing:
        problems.append(f"missing column(s): {', '.join(missing)}")
    unknown = [n for n in names if n not in IMPORT_COLUMNS]
    if unknown:
        problems.append(f"unknown column(s): {', '.join(unknown)}")
    if problems:
        raise CsvImportError(f"line 1: bad header: {'; '.join(problems)} "
                             f"(columns: {','.join(IMPORT_COLUMNS)}); nothing imported")


def _check_formulas(row: dict[Any, Any]) -> None:
    for column, value in row.items():
        if isinstance(value, str) and (is_formula(value) or is_formula(value.strip())):
            # Stored, it would run as a formula in every later export opened in a
            # spreadsheet: refuse it where the operator can see and fix it.
            raise RegistryError(f"column {column}: {fit_text(value.strip(), 40)!r} starts with "
                                f"{value.strip()[0]!r} and would run as a spreadsheet formula")


def _check_width(row: dict[Any, Any]) -> None:
    if None in row:  # DictReader files surplus fields under the key None
        raise RegistryError("the row has more fields than the header")


async def import_households(session: AsyncSession, text: str, now: datetime, *,
                            timezone: str = "Asia/Shanghai") -> int:
    """Import households from CSV with header ``id,community,label,start,end``
    (optional ``sensor,format,address`` columns bind a sensor; an optional ``allow``
    column lists recurring windows such as ``daily 18:00-18:30; sat 09:00-10:00``, read
    in ``timezone`` and valid from ``start`` to ``end``). A ``start`` or ``end`` without
    an offset (or a bare date) is read in ``timezone`` too.

    All or nothing: the rows are added to ``session`` and the caller commits only if
    every row was accepted.

    Raises:
        CsvImportError: An unknown or missing column, or a bad row; the message names the
            columns or the line (where the row ends) and says that nothing was imported.
    """
    local = zone(timezone)
    reader = csv.DictReader(io.StringIO(text), skipinitialspace=True)
    _check_header(reader.fieldnames)
    reader.fieldnames = [n.strip() for n in reader.fieldnames or ()]
    count = 0
    for row in reader:
        try:
            _check_width(row)
            _check_formulas(row)
            household_id = (row.get("id") or "").strip()
            start = _ts(row.get("start") or "", "start", local)
            end = _ts(row.get("end") or "", "end", local)
            await add_household(session, household_id, (row.get("community") or "").strip(),
                                label=(row.get("label") or "").strip(), start=start, end=end,
                                now=now)
            sensor = (row.get("sensor") or "").strip()
            await session.flush()
            await _import_windows(session, household_id, (row.get("allow") or "").strip(),
                                  start=start, end=end, timezone=timezone)
            if sensor:
                await add_sensor(session, sensor, household_id,
                                 fmt=(row.get("format") or "native").strip(),
                                 address=(row.get("address") or "").strip() or None, now=now)
                await session.flush()
        except (ValueError, RegistryError, NotFoundError) as exc:
            raise CsvImportError(f"line {reader.line_num}: {exc}; nothing imported") from None
        count += 1
    return count


async def _import_windows(session: AsyncSession, household_id: str, specs: str, *,
                          start: datetime | None, end: datetime | None, timezone: str) -> None:
    if not specs:
        return
    if start is None or end is None:
        raise RegistryError("allow needs the row's start and end (the windows run between "
                            "them)")
    for spec in filter(None, (p.strip() for p in specs.split(";"))):
        await add_recurring_window(session, household_id, spec, timezone=timezone,
                                   start=start, end=end)


def _iso(value: datetime | None) -> str | None:
    return None if value is None else as_utc(value).isoformat()


async def household_dict(session: AsyncSession, household: Household,
                         now: datetime) -> dict[str, Any]:
    """A JSON-ready view of a household with its periods, windows and sensors."""
    periods = (await session.exec(select(QuarantinePeriod).where(
        col(QuarantinePeriod.household_id) == household.id)
        .order_by(col(QuarantinePeriod.start_at)))).all()
    windows = (await session.exec(select(AllowedWindow).where(
        col(AllowedWindow.household_id) == household.id)
        .order_by(col(AllowedWindow.start_at)))).all()
    sensors = (await session.exec(select(Sensor).where(
        col(Sensor.household_id) == household.id).order_by(col(Sensor.id)))).all()
    quarantined = any(Period(as_utc(p.start_at), p.end_at and as_utc(p.end_at)).contains(now)
                      for p in periods)
    return {
        "id": household.id, "community": household.community, "label": household.label,
        "quarantined": quarantined,
        "quarantines": [{"start": _iso(p.start_at), "end": _iso(p.end_at)} for p in periods],
        "allowed_windows": [{"start": _iso(w.start_at), "end": _iso(w.end_at),
                             "reason": w.reason, "repeat": w.repeat,
                             "timezone": w.timezone} for w in windows],
        "sensors": [s.id for s in sensors],
    }


def sensor_dict(sensor: Sensor) -> dict[str, Any]:
    """A JSON-ready view of a sensor and its last known state."""
    return {
        "id": sensor.id, "household": sensor.household_id, "kind": sensor.kind,
        "format": sensor.format, "address": sensor.address,
        "last_seen": _iso(sensor.last_seen_at), "battery": sensor.battery,
        "contact": sensor.contact, "online": sensor.online, "tamper": sensor.tamper,
    }


@dataclass(frozen=True, slots=True)
class SensorEntry:
    """A registered sensor as the intake needs it."""

    sensor_id: str
    household_id: str
    fmt: str
    address: str


@dataclass(frozen=True, slots=True)
class RegistryView:
    """An immutable in-memory copy of the registry for the intake's hot path."""

    sensors: dict[tuple[str, str], SensorEntry] = field(default_factory=dict)
    households: dict[str, HouseholdRules] = field(default_factory=dict)
    states: dict[str, SensorState] = field(default_factory=dict)
    by_id: dict[str, SensorEntry] = field(default_factory=dict)

    def lookup(self, fmt: str, address: str) -> SensorEntry | None:
        """The sensor with this bus address in this format."""
        return self.sensors.get((fmt, address))


async def load_view(session: AsyncSession) -> RegistryView:
    """Read the whole registry (households, periods, windows, sensors and their state)."""
    periods: dict[str, list[Period]] = {}
    for p in (await session.exec(select(QuarantinePeriod))).all():
        periods.setdefault(p.household_id, []).append(
            Period(as_utc(p.start_at), None if p.end_at is None else as_utc(p.end_at)))
    windows: dict[str, list[AllowedSpan]] = {}
    for w in (await session.exec(select(AllowedWindow))).all():
        try:
            windows.setdefault(w.household_id, []).append(allowed_span(w))
        except RegistryError as exc:
            # The door stays supervised: a window that cannot be read allows nothing.
            _log.error("%s; the window is ignored", exc)
    households = {
        h.id: HouseholdRules(h.id, h.community, tuple(periods.get(h.id, ())),
                             tuple(windows.get(h.id, ())))
        for h in (await session.exec(select(Household))).all()}
    sensors: dict[tuple[str, str], SensorEntry] = {}
    states: dict[str, SensorState] = {}
    for s in (await session.exec(select(Sensor))).all():
        sensors[(s.format, s.address)] = SensorEntry(s.id, s.household_id, s.format, s.address)
        contact = s.contact if s.contact in ("open", "closed") else None
        states[s.id] = SensorState(
            sensor_id=s.id, household_id=s.household_id,
            last_seen=None if s.last_seen_at is None else as_utc(s.last_seen_at),
            battery=s.battery, contact=contact,  # type: ignore[arg-type]
            online=s.online, tamper=s.tamper, since=as_utc(s.created_at))
    return RegistryView(sensors, households, states,
                        {e.sensor_id: e for e in sensors.values()})


def states_to_rows(states: Iterable[SensorState]) -> list[dict[str, Any]]:
    """Bulk-update parameters for the sensors' persisted state."""
    return [{"id": s.sensor_id, "last_seen_at": s.last_seen, "battery": s.battery,
             "contact": s.contact, "online": s.online, "tamper": s.tamper} for s in states]
