"""Assessment: thresholds per kind, hysteresis, flaps, suppression and fault events."""

from __future__ import annotations

from datetime import UTC, datetime

from netguard.config import Settings, settings_from_data
from netguard.daemon.reload import plan_reload
from netguard.faults import FaultCleared, FaultKey, FaultOpened
from netguard.probes.assess import Assessor, limits_for
from netguard.probes.config import TargetConfig, Thresholds
from netguard.probes.state import (
    InterfaceReading,
    LinkSample,
    OpticalReading,
    PonPortReading,
    UpsReading,
)

NOW = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)


def _fiber(rx: float) -> LinkSample:
    return LinkSample(sys_uptime_ticks=1, optical=(OpticalReading("Te1/1", rx, -2.0),))


def _target(**thresholds: float) -> TargetConfig:
    return TargetConfig(id="f1", kind="fiber", address="127.0.0.1:161", site="s1",
                        thresholds=Thresholds(**thresholds))


def test_kind_defaults_and_target_override() -> None:
    assert limits_for("fiber").rx_power_low_dbm == -25.0
    assert limits_for("pon").rx_power_low_dbm == -27.0
    assert limits_for("fiber", Thresholds(rx_power_low_dbm=-20.0)).rx_power_low_dbm == -20.0


def test_a_target_override_keeps_its_kinds_other_defaults() -> None:
    # One model declares the thresholds; what a target did not set comes from its kind.
    pon = limits_for("pon", Thresholds(raise_after=1))
    assert (pon.raise_after, pon.rx_power_low_dbm, pon.rx_power_low_clear_dbm) == (1, -27.0, -26.0)
    line = limits_for("private_line", Thresholds.model_validate({"error_rate_high_per_s": None,
                                                                "clear_after": 3}))
    assert (line.error_rate_high_per_s, line.clear_after) == (0.1, 3)
    assert limits_for("fiber", Thresholds()) is limits_for("fiber")


def test_setting_a_threshold_to_its_generic_default_is_a_config_change() -> None:
    # On a pon target {} keeps -27 dBm and an explicit -25 does not: a reload must see it.
    def settings(thresholds: dict[str, float]) -> Settings:
        return settings_from_data({"targets": [{"id": "p", "kind": "pon",
                                                "address": "127.0.0.1",
                                                "thresholds": thresholds}]})

    before, after = settings({}), settings({"rx_power_low_dbm": -25.0})
    assert plan_reload(before, after).changed == ("p",)
    assert plan_reload(before, settings({})).changed == ()
    assert limits_for("pon", Thresholds(rx_power_low_dbm=-25.0)).rx_power_low_dbm == -25.0


def test_raise_after_n_bad_polls_clear_after_m_good_with_separate_threshold() -> None:
    a = Assessor.for_target(_target(raise_after=2, clear_after=2))
    v1 = a.assess(_fiber(-27.4), now=NOW)
    assert v1.state == "up"
    assert v1.events == ()
    assert any("pending 1/2" in r for r in v1.reasons)
    v2 = a.assess(_fiber(-27.4), now=NOW)
    assert v2.state == "degraded"
    (opened,) = v2.events
    assert isinstance(opened, FaultOpened)
    assert opened.key == FaultKey("f1", "sensor:Te1/1", "rx_power_low")
    assert opened.reasons == ("Te1/1 rx power -27.4 dBm below -25.0",)
    assert opened.category == "fiber"
    assert opened.site == "s1"
    # -24.5 is above the raise threshold but below the clear threshold (-24): stays raised.
    for _ in range(3):
        v = a.assess(_fiber(-24.5), now=NOW)
        assert v.state == "degraded"
        assert v.events == ()
    assert a.assess(_fiber(-10.0), now=NOW).events == ()
    v = a.assess(_fiber(-10.0), now=NOW)
    assert v.state == "up"
    (cleared,) = v.events
    assert isinstance(cleared, FaultCleared)
    assert cleared.key == opened.key


def test_flaps_are_counted() -> None:
    a = Assessor.for_target(_target(raise_after=1, clear_after=1))
    for _ in range(3):
        a.assess(_fiber(-27.0), now=NOW)
        a.assess(_fiber(-5.0), now=NOW)
    v = a.assess(_fiber(-27.0), now=NOW)
    assert v.flaps == 3
    assert isinstance(v.events[0], FaultOpened)
    assert v.events[0].flaps == 3


def test_healthy_polls_keep_no_hysteresis_state_but_history_is_kept() -> None:
    # Memory per target: a track per (component, condition) is kept only while it has
    # something to remember (a bad streak, an active fault, a past opening for flaps).
    a = Assessor.for_target(_target(raise_after=2, clear_after=1))
    for _ in range(3):
        assert a.assess(_fiber(-5.0), now=NOW).state == "up"
    assert a.tracks == {}
    a.assess(_fiber(-27.0), now=NOW)  # pending 1/2: the streak is remembered
    assert set(a.tracks) == {("sensor:Te1/1", "rx_power_low")}
    a.assess(_fiber(-5.0), now=NOW)  # streak broken before it raised: forgotten
    assert a.tracks == {}
    a.assess(_fiber(-27.0), now=NOW)
    (opened,) = a.assess(_fiber(-27.0), now=NOW).events
    assert isinstance(opened, FaultOpened)
    (cleared,) = a.assess(_fiber(-5.0), now=NOW).events
    assert isinstance(cleared, FaultCleared)
    assert set(a.tracks) == {("sensor:Te1/1", "rx_power_low")}  # opened once: a flap later
    a.assess(_fiber(-27.0), now=NOW)
    (again,) = a.assess(_fiber(-27.0), now=NOW).events
    assert isinstance(again, FaultOpened)
    assert again.flaps == 1


def test_no_light_is_down_not_low() -> None:
    a = Assessor.for_target(_target(raise_after=1))
    v = a.assess(_fiber(-40.0), now=NOW)
    assert v.state == "down"
    assert [e.key.condition for e in v.events] == ["rx_power_down"]


def test_unreachable_is_a_fault_and_state_is_immediate() -> None:
    a = Assessor.for_target(_target(raise_after=2, clear_after=1))
    v = a.assess(None, now=NOW, unreachable_reason="no response")
    assert v.state == "unreachable"
    assert v.reasons == ("no response",)
    assert v.events == ()
    v = a.assess(None, now=NOW, unreachable_reason="no response")
    (opened,) = v.events
    assert opened.key == FaultKey("f1", "agent", "unreachable")
    assert isinstance(opened, FaultOpened)
    assert opened.severity == "critical"
    v = a.assess(_fiber(-5.0), now=NOW)
    assert v.state == "up"
    assert [type(e) for e in v.events] == [FaultCleared]


def test_suppression_change_reannounces_active_faults() -> None:
    a = Assessor.for_target(_target(raise_after=1, clear_after=1))
    (first,) = a.assess(None, now=NOW).events
    assert isinstance(first, FaultOpened)
    assert first.suppressed_by is None
    (again,) = a.assess(None, now=NOW, suppressed_by="olt-1").events
    assert isinstance(again, FaultOpened)
    assert again.suppressed_by == "olt-1"
    assert a.assess(None, now=NOW, suppressed_by="olt-1").events == ()
    (lifted,) = a.assess(None, now=NOW).events
    assert isinstance(lifted, FaultOpened)
    assert lifted.suppressed_by is None


def test_new_fault_under_down_upstream_is_suppressed_from_the_start() -> None:
    a = Assessor.for_target(_target(raise_after=1))
    (opened,) = a.assess(None, now=NOW, suppressed_by="olt-1").events
    assert isinstance(opened, FaultOpened)
    assert opened.suppressed_by == "olt-1"


def test_ups_on_battery_and_depleted() -> None:
    t = TargetConfig(id="c1", kind="cabin_5g", address="127.0.0.1",
                     thresholds=Thresholds(raise_after=1))
    a = Assessor.for_target(t)
    v = a.assess(LinkSample(ups=UpsReading(battery_status=2, charge_percent=90,
                                           minutes_remaining=60, seconds_on_battery=30,
                                           on_battery=True)), now=NOW)
    assert v.state == "degraded"
    assert v.reasons == ("cabin on battery for 30 s",)
    v = a.assess(LinkSample(ups=UpsReading(battery_status=4, charge_percent=2,
                                           minutes_remaining=1, on_battery=True)), now=NOW)
    assert v.state == "down"
    assert "battery depleted, 1 min remaining, charge 2%" in v.reasons


def test_pon_onus_offline_ratio() -> None:
    t = TargetConfig(id="o1", kind="pon", address="127.0.0.1",
                     thresholds=Thresholds(raise_after=1, clear_after=1))
    a = Assessor.for_target(t)
    v = a.assess(LinkSample(pon=(PonPortReading("GPON 0/1/0", 5, 8),)), now=NOW)
    assert v.state == "degraded"
    assert v.reasons == ("PON GPON 0/1/0: 3 of 8 ONUs offline",)
    v = a.assess(LinkSample(pon=(PonPortReading("GPON 0/1/0", 0, 8),)), now=NOW)
    assert v.state == "down"
    v = a.assess(LinkSample(pon=(PonPortReading("GPON 0/1/0", 8, 8),)), now=NOW)
    assert v.state == "up"
    assert {e.key.condition for e in v.events} == {"onus_offline", "all_onus_offline"}


def test_incomplete_poll_keeps_faults_of_missing_components() -> None:
    a = Assessor.for_target(_target(raise_after=1, clear_after=1))
    down = LinkSample(interfaces=(InterfaceReading(1, "ge1", admin_status=1, oper_status=2),))
    assert a.assess(down, now=NOW).state == "down"
    # The table walk failed: the interface is missing, but that is no recovery.
    partial = a.assess(LinkSample(), now=NOW, complete=False)
    assert partial.events == ()
    assert partial.state == "down"
    # A complete poll without the interface (it was removed) does clear it.
    gone = a.assess(LinkSample(), now=NOW)
    assert [type(e) for e in gone.events] == [FaultCleared]
    assert gone.state == "up"


def test_private_line_dsx1_alarms() -> None:
    t = TargetConfig(id="p1", kind="private_line", address="127.0.0.1",
                     thresholds=Thresholds(raise_after=1, clear_after=1))
    a = Assessor.for_target(t)
    assert a.assess(LinkSample(extra=(("dsx1_line_status.1", 1.0),)), now=NOW).state == "up"
    v = a.assess(LinkSample(extra=(("dsx1_line_status.1", 8.0),)), now=NOW)
    assert v.state == "degraded"
    assert v.reasons == ("E1/T1 line 1 alarm: far-end AIS",)
    v = a.assess(LinkSample(extra=(("dsx1_line_status.1", 64.0 + 32.0),)), now=NOW)
    assert v.state == "down"
    assert v.reasons == ("E1/T1 line 1 alarm: loss of frame, loss of signal",)
    assert [e.key for e in v.events] == []  # same fault key, already open
