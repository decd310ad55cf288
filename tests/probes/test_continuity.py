"""Fault-state continuity: seeding restored faults into the hysteresis (pure, no network)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from netguard.faults import FaultCleared, FaultKey, FaultOpened
from netguard.probes.assess import ActiveFault, Assessor
from netguard.probes.config import TargetConfig, Thresholds
from netguard.probes.service import ProbeService
from netguard.probes.state import LinkSample, OpticalReading

NOW = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)
LOW = FaultKey("f1", "sensor:Te1/1", "rx_power_low")


def _fiber(rx: float) -> LinkSample:
    return LinkSample(sys_uptime_ticks=1, optical=(OpticalReading("Te1/1", rx, -2.0),))


def _target(tid: str = "f1", **thresholds: float) -> TargetConfig:
    return TargetConfig(id=tid, kind="fiber", address="127.0.0.1:161", site="s1",
                        thresholds=Thresholds(**thresholds))


def _restored(**thresholds: float) -> Assessor:
    a = Assessor.for_target(_target(raise_after=2, clear_after=2, **thresholds))
    a.restore(ActiveFault(LOW, reason="Te1/1 rx power -27.4 dBm below -25.0"))
    return a


def test_a_restored_fault_that_is_gone_clears_after_clear_after_good_polls() -> None:
    a = _restored()
    assert [f.key for f in a.active_faults()] == [LOW]
    first = a.assess(_fiber(-8.0), now=NOW)
    assert first.events == ()
    assert first.state == "degraded"  # still held until the clear is confirmed
    second = a.assess(_fiber(-8.0), now=NOW)
    (cleared,) = second.events
    assert isinstance(cleared, FaultCleared)
    assert cleared.key == LOW
    assert second.state == "up"
    assert a.active_faults() == []


def test_a_restored_fault_that_persists_is_not_raised_again() -> None:
    a = _restored()
    for _ in range(5):
        v = a.assess(_fiber(-27.4), now=NOW)
        assert v.events == ()
        assert v.state == "degraded"
        assert v.active == (str(LOW),)
    # The evidence is the poll's, not the restored text.
    assert a.active_faults()[0].reason == "Te1/1 rx power -27.4 dBm below -25.0"


def test_a_restored_fault_in_the_hysteresis_band_stays_and_shows_its_reason() -> None:
    a = _restored()
    v = a.assess(_fiber(-24.5), now=NOW)  # above raise (-25), below clear (-24)
    assert v.events == ()
    assert v.reasons == ("Te1/1 rx power -27.4 dBm below -25.0",)


def test_a_recurrence_after_the_restored_fault_cleared_is_a_flap() -> None:
    a = Assessor.for_target(_target(raise_after=1, clear_after=1))
    a.restore(ActiveFault(LOW))
    assert isinstance(a.assess(_fiber(-8.0), now=NOW).events[0], FaultCleared)
    v = a.assess(_fiber(-27.0), now=NOW)
    (opened,) = v.events
    assert isinstance(opened, FaultOpened)
    assert opened.flaps == 1


def test_a_restored_unreachable_agent_clears_when_it_answers() -> None:
    a = Assessor.for_target(_target(raise_after=2, clear_after=1))
    a.restore(ActiveFault(FaultKey("f1", "agent", "unreachable"), level="down",
                          severity="critical"))
    dead = a.assess(None, now=NOW, unreachable_reason="no response")
    assert dead.events == ()
    assert dead.state == "unreachable"
    (cleared,) = a.assess(_fiber(-8.0), now=NOW).events
    assert cleared.key == FaultKey("f1", "agent", "unreachable")


def test_a_restored_fault_of_a_component_no_longer_reported_clears() -> None:
    a = Assessor.for_target(_target(raise_after=1, clear_after=1))
    a.restore(ActiveFault(FaultKey("f1", "if:gone0", "oper_down"), level="down"))
    v = a.assess(_fiber(-8.0), now=NOW)
    assert [type(e) for e in v.events] == [FaultCleared]
    assert v.state == "up"


def test_restored_suppression_is_kept_and_a_change_is_reannounced() -> None:
    a = Assessor.for_target(_target(raise_after=1, clear_after=2))
    a.restore(ActiveFault(LOW, suppressed_by="olt-1"))
    # Same upstream still down: nothing to say.
    assert a.assess(_fiber(-27.0), now=NOW, suppressed_by="olt-1").events == ()
    # Suppression lifted while still faulty: the fault is announced on its own.
    (opened,) = a.assess(_fiber(-27.0), now=NOW).events
    assert isinstance(opened, FaultOpened)
    assert opened.suppressed_by is None


def test_restoring_an_active_fault_changes_nothing() -> None:
    a = Assessor.for_target(_target(raise_after=1, clear_after=1))
    (opened,) = a.assess(_fiber(-27.0), now=NOW).events
    a.restore(ActiveFault(LOW, reason="stale text"))
    assert a.active_faults()[0].reason == opened.reasons[0]
    assert a.assess(_fiber(-27.0), now=NOW).events == ()


def test_restore_refuses_another_targets_fault() -> None:
    a = Assessor.for_target(_target())
    with pytest.raises(ValueError, match="not a fault of f1"):
        a.restore(ActiveFault(FaultKey("other", "agent", "unreachable")))


def test_service_seeds_known_targets_and_counts_unknown_ones() -> None:
    service = ProbeService([_target("f1"), _target("f2")])
    seeded = service.restore_active([
        LOW,
        ActiveFault(FaultKey("f2", "agent", "unreachable"), level="down"),
        FaultKey("removed-1", "agent", "unreachable"),
    ])
    assert seeded == 2
    assert service.restore_ignored == 1
    assert {str(f.key) for f in service.active_faults()} == {
        "f1|sensor:Te1/1|rx_power_low", "f2|agent|unreachable"}


def test_an_unpolled_upstream_does_not_change_a_restored_faults_suppression() -> None:
    a = Assessor.for_target(_target(raise_after=1, clear_after=2))
    a.restore(ActiveFault(LOW))
    # The upstream's placeholder state says "down" before its first poll: no regrouping.
    v = a.assess(_fiber(-27.0), now=NOW, suppressed_by="olt-1", suppression_known=False)
    assert v.events == ()
    assert a.active_faults()[0].suppressed_by is None
    # Once the upstream has been polled and really is down, the change is announced.
    (opened,) = a.assess(_fiber(-27.0), now=NOW, suppressed_by="olt-1").events
    assert isinstance(opened, FaultOpened)
    assert opened.suppressed_by == "olt-1"
