"""Counter maths: wraps, reboots and discontinuities never produce a spike."""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given
from hypothesis import strategies as st

from netguard.probes.counters import (
    apply_rates,
    counter_delta,
    elapsed_seconds,
    interface_rates,
    rate,
    reset_reason,
)
from netguard.probes.state import InterfaceReading, LinkSample


@given(start=st.integers(0, 2**32 - 1), step=st.integers(0, 2**32 - 1))
def test_counter32_delta_survives_one_wrap(start: int, step: int) -> None:
    assert counter_delta(start, (start + step) % 2**32, 32) == step


@given(start=st.integers(0, 2**64 - 1), step=st.integers(0, 2**64 - 1))
def test_counter64_delta_survives_one_wrap(start: int, step: int) -> None:
    assert counter_delta(start, (start + step) % 2**64, 64) == step


def test_counter_delta_rejects_other_widths() -> None:
    with pytest.raises(ValueError, match="32 or 64"):
        counter_delta(1, 2, 16)


def test_rate_is_none_without_both_readings() -> None:
    assert rate(None, 5, 1.0) is None
    assert rate(5, None, 1.0) is None
    assert rate(1, 2, 0.0) is None
    assert rate(2**32 - 10, 10, 2.0, 32) == 10.0


def _iface(**kw: object) -> InterfaceReading:
    base: dict[str, object] = {
        "index": 1, "name": "eth0", "admin_status": 1, "oper_status": 1, "in_octets": 1000,
        "out_octets": 2000, "in_errors": 0, "out_errors": 0, "in_discards": 0,
        "out_discards": 0, "speed_bps": 1_000_000, "counter_bits": 64, "discontinuity_time": 0}
    base.update(kw)
    return InterfaceReading(**base)  # type: ignore[arg-type]


def test_interface_rates_bps_utilisation_and_errors() -> None:
    before = _iface()
    after = _iface(in_octets=1000 + 12_500, out_octets=2000 + 25_000, in_errors=20)
    got = interface_rates(before, after, 10.0)
    assert got.in_bps == pytest.approx(10_000.0)
    assert got.out_bps == pytest.approx(20_000.0)
    assert got.utilisation == pytest.approx(0.02)
    assert got.in_error_rate == pytest.approx(2.0)
    assert got.out_error_rate == 0.0


def test_interface_rates_keep_every_reading_field() -> None:
    rates = {"in_bps", "out_bps", "utilisation", "in_error_rate", "out_error_rate",
             "in_discard_rate", "out_discard_rate"}
    after = _iface(alias="uplink", in_octets=5000, out_octets=6000, in_errors=3,
                   out_errors=4, in_discards=5, out_discards=6, discontinuity_time=7)
    before = _iface(discontinuity_time=7)
    got = interface_rates(before, after, 10.0)
    for field in dataclasses.fields(InterfaceReading):
        if field.name not in rates:
            assert getattr(got, field.name) == getattr(after, field.name), field.name
    assert all(getattr(got, name) is not None for name in rates)


def test_discontinuity_change_gives_no_rate() -> None:
    before = _iface()
    after = _iface(in_octets=5, discontinuity_time=12345)
    got = interface_rates(before, after, 10.0)
    assert got.in_bps is None
    assert got.utilisation is None


def test_counter_width_change_gives_no_rate() -> None:
    got = interface_rates(_iface(counter_bits=64), _iface(counter_bits=32, in_octets=1), 1.0)
    assert got.in_bps is None


@given(uptime=st.integers(100, 2**31), drop=st.integers(1, 100),
       before=st.integers(0, 2**64 - 1), after=st.integers(0, 2**64 - 1))
def test_reboot_never_produces_a_rate(uptime: int, drop: int, before: int, after: int) -> None:
    prev = LinkSample(sys_uptime_ticks=uptime, interfaces=(_iface(in_octets=before),))
    cur = LinkSample(sys_uptime_ticks=uptime - drop, interfaces=(_iface(in_octets=after),))
    out, reason = apply_rates(prev, cur, 30.0)
    assert reason is not None
    assert "sysUpTime went back" in reason
    assert all(i.in_bps is None and i.out_bps is None for i in out.interfaces)


def test_engine_boots_change_is_a_reset() -> None:
    prev = LinkSample(sys_uptime_ticks=100, engine_boots=3)
    cur = LinkSample(sys_uptime_ticks=200, engine_boots=4)
    reason = reset_reason(prev, cur)
    assert reason is not None
    assert "snmpEngineBoots" in reason


def test_apply_rates_first_sample_and_new_interfaces() -> None:
    cur = LinkSample(sys_uptime_ticks=100, interfaces=(_iface(),))
    assert apply_rates(None, cur, 1.0) == (cur, None)
    prev = LinkSample(sys_uptime_ticks=100, interfaces=(_iface(index=2),))
    later = dataclasses.replace(cur, sys_uptime_ticks=1100)
    out, reason = apply_rates(prev, later, 10.0)
    assert reason is None
    assert out.interfaces[0].in_bps is None  # interface 1 was not in the previous sample


def test_elapsed_prefers_agent_uptime() -> None:
    prev, cur = LinkSample(sys_uptime_ticks=1000), LinkSample(sys_uptime_ticks=3000)
    assert elapsed_seconds(prev, cur, 99.0) == 20.0
    assert elapsed_seconds(LinkSample(), cur, 7.5) == 7.5


def test_uptime_that_advanced_less_than_the_clock_is_a_restart() -> None:
    prev = LinkSample(sys_uptime_ticks=500)       # 5 s up
    cur = LinkSample(sys_uptime_ticks=3000)       # 30 s up, but 300 s passed here
    reason = reset_reason(prev, cur, wall_seconds=300.0)
    assert reason == "sysUpTime advanced less than the clock (agent restarted)"
    assert reset_reason(prev, cur, wall_seconds=25.5) is None  # jitter is not a restart


def test_64_bit_counter_going_back_is_a_reset_not_a_wrap() -> None:
    got = interface_rates(_iface(in_octets=10**12), _iface(in_octets=5), 10.0)
    assert got.in_bps is None
    wrapped = interface_rates(_iface(counter_bits=32, in_octets=2**32 - 100),
                              _iface(counter_bits=32, in_octets=300), 10.0)
    assert wrapped.in_bps == pytest.approx(320.0)
