"""Recurring allowed windows: local wall-clock times, midnight, daylight saving, validity,
and their path through the registry (SQLite and PostgreSQL) into the door rules."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlmodel import select

from netguard.display import DisplayConfig
from netguard.errors import RegistryError
from netguard.iot import registry
from netguard.iot.config import IotConfig, RulesConfig
from netguard.iot.events import AlertType, DoorEvent, EventKind
from netguard.iot.models import AllowedWindow
from netguard.iot.rules import HouseholdRules, Period, RaiseAlert, SensorState, evaluate
from netguard.iot.schedule import (
    EVERY_DAY,
    RecurringWindow,
    ScheduleError,
    format_days,
    parse_days,
    parse_spec,
)
from netguard.localtime import TimeZoneError, zone
from netguard.store import Store

SHANGHAI = zone("Asia/Shanghai")
BERLIN = zone("Europe/Berlin")
ALWAYS = Period(datetime(2026, 1, 1, tzinfo=UTC), datetime(2027, 1, 1, tzinfo=UTC))


def local(tz: ZoneInfo, year: int, month: int, day: int, hour: int, minute: int) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=tz)


def test_a_daily_window_across_midnight_in_shanghai() -> None:
    night = parse_spec("daily 22:00-06:00", SHANGHAI, ALWAYS)
    assert night.spec == "daily 22:00-06:00"
    # 23:30 and 05:59 local are inside; the second belongs to the window that started
    # the evening before.
    inside = night.window_at(local(SHANGHAI, 2026, 3, 1, 23, 30))
    assert inside == Period(datetime(2026, 3, 1, 14, 0, tzinfo=UTC),
                            datetime(2026, 3, 1, 22, 0, tzinfo=UTC))
    assert night.window_at(local(SHANGHAI, 2026, 3, 2, 5, 59)) == inside
    # The end is exclusive, and noon is outside.
    assert not night.contains(local(SHANGHAI, 2026, 3, 2, 6, 0))
    assert not night.contains(local(SHANGHAI, 2026, 3, 2, 12, 0))
    # The same UTC instant read in UTC would be 15:30 on the 1st: the zone decides.
    assert night.contains(datetime(2026, 3, 1, 15, 30, tzinfo=UTC))
    assert not parse_spec("daily 22:00-06:00", zone("UTC"), ALWAYS).contains(
        datetime(2026, 3, 1, 15, 30, tzinfo=UTC))


def test_weekdays_and_a_window_that_started_on_an_allowed_day() -> None:
    # Fridays 23:00 to 01:00: Saturday 00:30 is inside (it started on Friday), Friday
    # 00:30 is not (Thursday has no window).
    late = parse_spec("fri 23:00-01:00", SHANGHAI, ALWAYS)
    assert late.contains(local(SHANGHAI, 2026, 3, 7, 0, 30))  # a Saturday
    assert not late.contains(local(SHANGHAI, 2026, 3, 6, 0, 30))  # a Friday
    assert late.contains(local(SHANGHAI, 2026, 3, 6, 23, 0))
    weekdays = parse_spec("mon-fri 18:00-18:30", SHANGHAI, ALWAYS)
    assert weekdays.contains(local(SHANGHAI, 2026, 3, 2, 18, 10))  # Monday
    assert not weekdays.contains(local(SHANGHAI, 2026, 3, 1, 18, 10))  # Sunday


@pytest.mark.parametrize(("text", "days"), [
    ("daily", EVERY_DAY), ("mon", {0}), ("mon,thu", {0, 3}), ("Mon-Wed", {0, 1, 2}),
    ("fri-mon", {4, 5, 6, 0}), ("sat,sun", {5, 6}), ("mon-sun", EVERY_DAY)])
def test_day_lists(text: str, days: set[int]) -> None:
    assert parse_days(text) == frozenset(days)
    assert parse_days(format_days(parse_days(text))) == frozenset(days)


@pytest.mark.parametrize("spec", [
    "", "daily", "daily 18:00", "daily 18:00-18:00", "daily 24:00-01:00", "daily 18:0-19:00",
    "someday 18:00-19:00", "mon,xyz 18:00-19:00", "daily 18:00-19:00-20:00",
    "daily 18:00\u201319:00", "x" * 200])
def test_malformed_specs_are_refused_with_a_reason(spec: str) -> None:
    with pytest.raises(ScheduleError):
        parse_spec(spec, SHANGHAI, ALWAYS)


@pytest.mark.parametrize("name", ["", "Mars/Olympus", "../../etc/passwd", "Asia/Shanghai\n",
                                  "x" * 65])
def test_unknown_or_odd_zone_names_are_refused(name: str) -> None:
    with pytest.raises(TimeZoneError):
        zone(name)


def test_daylight_saving_days_shorten_or_lengthen_a_window_but_never_lose_it() -> None:
    # Berlin skips 02:00-03:00 on 2026-03-29 and repeats it on 2026-10-25.
    window = parse_spec("daily 02:30-04:00", BERLIN, ALWAYS)
    # Spring: 02:30 does not exist; zoneinfo reads it at the winter offset (+01:00), so
    # the window opens at 01:30 UTC = 03:30 summer time, and closes at 04:00 (02:00 UTC).
    spring = window.occurrence(datetime(2026, 3, 29).date())
    assert spring == Period(datetime(2026, 3, 29, 1, 30, tzinfo=UTC),
                            datetime(2026, 3, 29, 2, 0, tzinfo=UTC))
    assert window.contains(datetime(2026, 3, 29, 1, 45, tzinfo=UTC))
    # Autumn: 02:30 happens twice; the first (summer time, 00:30 UTC) is meant, so the
    # window lasts 2.5 hours that night.
    autumn = window.occurrence(datetime(2026, 10, 25).date())
    assert autumn == Period(datetime(2026, 10, 25, 0, 30, tzinfo=UTC),
                            datetime(2026, 10, 25, 3, 0, tzinfo=UTC))
    # An ordinary day in summer and winter: 90 minutes at the local offset.
    summer = window.occurrence(datetime(2026, 7, 1).date())
    assert summer.start == datetime(2026, 7, 1, 0, 30, tzinfo=UTC)
    assert summer.end is not None
    assert summer.end - summer.start == timedelta(minutes=90)
    winter = window.occurrence(datetime(2026, 12, 1).date())
    assert winter.start == datetime(2026, 12, 1, 1, 30, tzinfo=UTC)


def test_windows_start_only_within_their_validity() -> None:
    valid = Period(local(SHANGHAI, 2026, 3, 1, 0, 0), local(SHANGHAI, 2026, 3, 3, 0, 0))
    window = RecurringWindow(EVERY_DAY, time(23, 0), time(1, 0), SHANGHAI, valid)
    assert not window.contains(local(SHANGHAI, 2026, 2, 28, 23, 30))
    assert window.contains(local(SHANGHAI, 2026, 3, 2, 23, 30))
    # Started inside the validity, so it runs to its end past the validity's end.
    assert window.contains(local(SHANGHAI, 2026, 3, 3, 0, 30))
    assert not window.contains(local(SHANGHAI, 2026, 3, 3, 23, 30))


def _household_rules(windows: tuple[RecurringWindow, ...]) -> HouseholdRules:
    return HouseholdRules("h1", "c1", (Period(ALWAYS.start),), windows)


def test_the_door_rule_reads_recurring_windows_at_the_events_time() -> None:
    household = _household_rules((parse_spec("daily 18:00-18:30", SHANGHAI, ALWAYS),))
    state = SensorState("n1", "h1", contact="closed")
    rules = RulesConfig()

    def opened_at(at: datetime) -> list[object]:
        event = DoorEvent(format="native", address="n1", kind=EventKind.OPEN,
                          contact="open", edge=True)
        return [a for a in evaluate(state, event, household, rules, at).actions
                if isinstance(a, RaiseAlert) and a.type is AlertType.DOOR_OPEN]

    assert opened_at(local(SHANGHAI, 2026, 3, 5, 18, 15)) == []
    assert len(opened_at(local(SHANGHAI, 2026, 3, 5, 18, 45))) == 1


async def test_recurring_windows_through_the_registry(store: Store) -> None:
    now = datetime(2026, 3, 1, 0, 0, tzinfo=UTC)
    start, end = now, now + timedelta(days=14)
    async with store.session() as s:
        await registry.add_household(s, "h1", "c1", start=start, end=end, now=now)
        await s.flush()
        await registry.add_recurring_window(s, "h1", "daily 18:00-18:30",
                                            timezone="Asia/Shanghai", start=start, end=end,
                                            reason="deliveries")
        for bad, zone_name in (("daily 18:00", "Asia/Shanghai"),
                               ("daily 18:00-18:30", "Nowhere/Else")):
            with pytest.raises(RegistryError):
                await registry.add_recurring_window(s, "h1", bad, timezone=zone_name,
                                                    start=start, end=end)
        await s.commit()
    async with store.session() as s:
        [row] = (await s.exec(select(AllowedWindow))).all()
        assert (row.repeat, row.timezone) == ("daily 18:00-18:30", "Asia/Shanghai")
        view = await registry.load_view(s)
        household = await registry.get_household(s, "h1")
        shown = await registry.household_dict(s, household, now)
    rules = view.households["h1"]
    assert rules.allowed_window(local(SHANGHAI, 2026, 3, 5, 18, 10)) is not None
    assert rules.allowed_window(local(SHANGHAI, 2026, 3, 5, 19, 10)) is None
    # Past the validity, no window starts.
    assert rules.allowed_window(local(SHANGHAI, 2026, 3, 20, 18, 10)) is None
    [window] = shown["allowed_windows"]
    assert (window["repeat"], window["timezone"], window["reason"]) == (
        "daily 18:00-18:30", "Asia/Shanghai", "deliveries")


async def test_csv_import_reads_the_allow_column(store: Store) -> None:
    now = datetime(2026, 3, 1, tzinfo=UTC)
    text = ("id,community,start,end,allow\n"
            "h1,c1,2026-03-01T00:00:00+08:00,2026-03-15T00:00:00+08:00,"
            "daily 18:00-18:30; sat 09:00-10:00\n")
    async with store.session() as s:
        assert await registry.import_households(s, text, now, timezone="Asia/Shanghai") == 1
        await s.commit()
    async with store.session() as s:
        rows = (await s.exec(select(AllowedWindow))).all()
        assert sorted(r.repeat or "" for r in rows) == ["daily 18:00-18:30", "sat 09:00-10:00"]
    for bad in ("h2,c1,2026-03-01T00:00:00+08:00,2026-03-15T00:00:00+08:00,daily 25:00-26:00\n",
                "h3,c1,,,daily 18:00-18:30\n"):
        async with store.session() as s:
            with pytest.raises(registry.CsvImportError, match="line 2"):
                await registry.import_households(s, "id,community,start,end,allow\n" + bad,
                                                 now, timezone="Asia/Shanghai")
            await s.rollback()


def test_the_configured_zone_is_checked() -> None:
    assert DisplayConfig().timezone == "Asia/Shanghai"
    with pytest.raises(ValueError, match="time zone"):
        DisplayConfig(timezone="Mars/Olympus")
    # One option, not two: the old place is refused rather than silently ignored.
    with pytest.raises(ValueError, match="extra"):
        IotConfig.model_validate({"timezone": "Asia/Shanghai"})


async def test_registry_times_given_in_local_offsets_are_stored_as_the_same_instant(
        store: Store) -> None:
    # SQLite keeps no offset: 00:00+08:00 stored as such would read back as 00:00 UTC,
    # eight hours late, and a quarantine would start in the afternoon.
    start = datetime(2026, 3, 1, 0, 0, tzinfo=SHANGHAI)
    async with store.session() as s:
        await registry.add_household(s, "h1", "c1", start=start,
                                     end=start + timedelta(days=14), now=start)
        await s.flush()
        await registry.add_window(s, "h1", start + timedelta(hours=9),
                                  start + timedelta(hours=10))
        await s.commit()
    async with store.session() as s:
        view = await registry.load_view(s)
    rules = view.households["h1"]
    assert rules.quarantines[0].start == datetime(2026, 2, 28, 16, 0, tzinfo=UTC)
    assert rules.allowed_window(datetime(2026, 3, 1, 1, 30, tzinfo=UTC)) is not None
    assert rules.allowed_window(datetime(2026, 3, 1, 9, 30, tzinfo=UTC)) is None
