"""The hand-over rules, pure: the poll grid on the database's clock and the newcomer's
settle (netguard/cluster/handover.py)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import assume, given
from hypothesis import strategies as st

from netguard.cluster.handover import ClockOffset, Settle, grid_epoch, taken_from_lapsed, to_local
from netguard.cluster.members import Beat, ClockSample, Lapse
from netguard.cluster.rendezvous import assign
from netguard.daemon.scheduler import missed_since, next_slot, phase_of

T0 = datetime(2026, 12, 4, 12, 0, tzinfo=UTC)
DB_NOW = 1_796_385_600.0  # the database's clock, Unix seconds


def _at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


@given(phase=st.floats(0, 0.999999), interval=st.sampled_from([1.0, 10.0, 60.0, 300.0]),
       uptime_a=st.floats(0, 1e6), uptime_b=st.floats(0, 1e6), after=st.floats(0, 1e4))
def test_two_instances_put_a_target_on_the_same_database_times(
        phase: float, interval: float, uptime_a: float, uptime_b: float,
        after: float) -> None:
    # Two hosts whose monotonic clocks started at different times: the same instant of
    # the database's clock is uptime_a on one, uptime_b on the other.
    assume(_off_the_grid(DB_NOW + after, 0.0, phase, interval))  # no rounding on a slot
    a = next_slot(grid_epoch(DB_NOW - uptime_a), phase, interval, uptime_a + after)
    b = next_slot(grid_epoch(DB_NOW - uptime_b), phase, interval, uptime_b + after)
    db_a, db_b = a + (DB_NOW - uptime_a), b + (DB_NOW - uptime_b)
    assert abs(db_a - db_b) < 1e-3
    # The slot is the target's place in its interval on the database's clock, the first
    # one after ``after``.
    assert abs((db_a - phase * interval) / interval - round((db_a - phase * interval)
                                                             / interval)) < 1e-6
    assert 0 < a - (uptime_a + after) <= interval + 1e-6


def test_a_new_owner_polls_one_interval_after_the_old_owners_last_poll() -> None:
    interval, phase = 10.0, phase_of("line-042")
    old_epoch, new_epoch = grid_epoch(DB_NOW - 500.0), grid_epoch(DB_NOW - 90_000.0)
    old_poll = next_slot(old_epoch, phase, interval, 500.0)  # its last poll
    # The new owner takes over 3 s later (its own clock): first poll at the next slot.
    taken_over = old_poll + (DB_NOW - 500.0) - (DB_NOW - 90_000.0) + 3.0
    first = next_slot(new_epoch, phase, interval, taken_over)
    gap = (first + DB_NOW - 90_000.0) - (old_poll + DB_NOW - 500.0)
    assert abs(gap - interval) < 1e-6


def test_the_clock_offset_is_the_reading_with_the_shortest_round_trip() -> None:
    offset = ClockOffset(keep=3)
    assert offset.offset is None
    offset.add(None)
    assert offset.offset is None
    offset.add(ClockSample(db=1000.2, local=100.0, round_trip=0.4))
    offset.add(ClockSample(db=1000.0, local=100.0, round_trip=0.002))
    offset.add(ClockSample(db=1001.0, local=100.0, round_trip=0.9))  # a slow heartbeat
    assert offset.offset == 900.0
    # Older readings age out: the window keeps the last three.
    offset.add(ClockSample(db=1000.1, local=100.0, round_trip=0.5))
    offset.add(ClockSample(db=1000.3, local=100.0, round_trip=0.6))
    assert offset.offset is not None
    assert abs(offset.offset - 900.1) < 1e-9


def _beat(name: str, joined: float, beat: float) -> Beat:
    return Beat(name, _at(joined), _at(beat))


def test_a_newcomer_waits_until_every_other_member_beat_twice_since_it_joined() -> None:
    settle = Settle("ng-2", mark=_at(100.0), deadline=1005.0)
    # Their last beats were before the newcomer's: they have not seen it.
    assert not settle.settled([_beat("ng-0", 0, 99.5), _beat("ng-1", 0, 99.9),
                               _beat("ng-2", 99.8, 100.0)], now=1000.0)
    # ng-0 beat after it (it read a list with the newcomer, and switches in that round);
    # its switch is certain only once it beats again.
    assert not settle.settled([_beat("ng-0", 0, 100.4), _beat("ng-1", 0, 99.9)], now=1000.5)
    assert settle.waiting_for([_beat("ng-0", 0, 100.4), _beat("ng-1", 0, 99.9)]) == [
        "ng-0", "ng-1"]
    assert not settle.settled([_beat("ng-0", 0, 100.4), _beat("ng-1", 0, 100.8)], now=1001.0)
    assert not settle.settled([_beat("ng-0", 0, 101.4), _beat("ng-1", 0, 100.8)], now=1001.5)
    assert settle.waiting_for([_beat("ng-0", 0, 101.4), _beat("ng-1", 0, 100.8)]) == ["ng-1"]
    assert settle.settled([_beat("ng-0", 0, 101.4), _beat("ng-1", 0, 101.8)], now=1002.0)


def test_a_newcomer_alone_or_with_later_newcomers_settles_at_once() -> None:
    assert Settle("ng-0", _at(100.0), 1005.0).settled([_beat("ng-0", 99.9, 100.0)], 1000.0)
    # ng-1 joined after ng-0's first heartbeat: its first member list held ng-0.
    assert Settle("ng-0", _at(100.0), 1005.0).settled(
        [_beat("ng-0", 99.9, 100.0), _beat("ng-1", 100.2, 100.3)], 1000.0)


def test_a_member_that_does_not_beat_within_a_lease_is_waited_for_no_longer() -> None:
    settle = Settle("ng-2", mark=_at(100.0), deadline=1005.0)
    stuck = [_beat("ng-0", 0, 99.0)]
    assert not settle.settled(stuck, now=1004.9)
    # By the deadline, a lease after the newcomer's heartbeat returned, ng-0 has fenced
    # itself (it counts its lease from before its last heartbeat).
    assert settle.settled(stuck, now=1005.0)


def test_a_member_that_left_is_not_waited_for() -> None:
    settle = Settle("ng-2", mark=_at(100.0), deadline=1005.0)
    assert not settle.settled([_beat("ng-0", 0, 99.0), _beat("ng-1", 0, 99.5)], 1000.0)
    # ng-0's lease ended (it is no longer among the live members) and ng-1 beat twice.
    assert not settle.settled([_beat("ng-1", 0, 100.5)], 1001.0)
    assert settle.settled([_beat("ng-1", 0, 101.5)], 1002.0)


def test_catch_up_only_the_slots_after_the_expiry() -> None:
    # Interval 10, phase 0.5, grid origin 0: slots at 5, 15, 25, ...
    # The dead member's lease ran out at 17: the slot at 15 it may have polled, the one
    # at 25 nobody did.
    assert not missed_since(0.0, 0.5, 10.0, 17.0, now=18.0)   # last slot 15 <= 17: wait
    assert not missed_since(0.0, 0.5, 10.0, 17.0, now=24.9)   # still 15
    assert missed_since(0.0, 0.5, 10.0, 17.0, now=25.0)       # 25 > 17: missed
    assert missed_since(0.0, 0.5, 10.0, 17.0, now=31.0)
    assert not missed_since(0.0, 0.5, 10.0, 25.0, now=25.0)   # expiry exactly at the slot


def _off_the_grid(at: float, epoch: float, phase: float, interval: float) -> bool:
    place = ((at - epoch) / interval - phase) % 1
    return 1e-6 < place < 1 - 1e-6


@given(phase=st.floats(0, 0.999999), interval=st.sampled_from([1.0, 10.0, 60.0, 300.0]),
       epoch=st.floats(-1e6, 1e6), expiry_in=st.floats(0, 1e4), seen_after=st.floats(0, 1e3))
def test_a_catch_up_comes_at_least_an_interval_after_the_dead_member_s_last_poll(
        phase: float, interval: float, epoch: float, expiry_in: float,
        seen_after: float) -> None:
    expiry = epoch + expiry_in
    now = expiry + seen_after
    # Not within rounding of a slot (then either answer is right).
    assume(_off_the_grid(expiry, epoch, phase, interval))
    assume(_off_the_grid(now, epoch, phase, interval))
    # The dead member's last possible poll: its last slot at or before its expiry.
    last_polled = next_slot(epoch, phase, interval, expiry) - interval
    last_slot = next_slot(epoch, phase, interval, now) - interval
    missed = missed_since(epoch, phase, interval, expiry, now)
    assert missed == (last_slot > expiry)
    if missed:
        # Polled now: at or after a slot the dead member did not poll, one interval or
        # more after the one it may have (the process test's >= 80% of an interval).
        assert now - last_polled >= interval - 1e-6
    else:
        # It waits for its next slot, one interval after the last one it may have polled.
        assert next_slot(epoch, phase, interval, now) - last_polled >= interval - 1e-6


def test_only_targets_of_a_lapsed_member_catch_up_with_its_expiry() -> None:
    targets = [f"t{i:03d}" for i in range(90)]
    before = ("a", "b", "c")
    share = assign(targets, before)
    after = assign(targets, ("a",))
    gained = set(after["a"]) - set(share["a"])  # b's and c's targets
    # b's lease ran out; c left cleanly (no row); d lapsed long ago (not a member before).
    lapsed = [Lapse("b", DB_NOW), Lapse("d", DB_NOW - 100)]
    taken = taken_from_lapsed(gained, before, lapsed)
    assert taken == dict.fromkeys(share["b"], DB_NOW)
    assert not set(taken) & set(share["c"])
    assert taken_from_lapsed(gained, before, []) == {}
    # A target not gained (a kept it) is never in it.
    assert taken_from_lapsed(share["a"], before, lapsed) == {}


def test_an_expiry_maps_to_the_local_clock_like_the_grid() -> None:
    offset = DB_NOW - 1234.5  # database time minus local monotonic time
    assert to_local(DB_NOW, offset) == 1234.5
    assert to_local(DB_NOW, offset) == DB_NOW + grid_epoch(offset)
