"""The poll scheduler: intervals, overruns, concurrency bound and graceful stop."""

from __future__ import annotations

import asyncio
import inspect
import time
from dataclasses import dataclass

from netguard.daemon import scheduler as scheduler_module
from netguard.daemon.scheduler import PollScheduler, phase_of
from tests.support.wait import async_wait_until


@dataclass(frozen=True)
class Target:
    id: str
    interval_seconds: float


@dataclass(frozen=True)
class Result:
    reachable: bool


class Poller:
    """Records polls; a poll of a target in ``hold`` blocks until released."""

    def __init__(self) -> None:
        self.calls: list[str] = []
        self.running = 0
        self.peak = 0
        self.hold: dict[str, asyncio.Event] = {}
        self.finished: list[str] = []

    async def __call__(self, target_id: str) -> Result:
        self.calls.append(target_id)
        self.running += 1
        self.peak = max(self.peak, self.running)
        try:
            if target_id in self.hold:
                await self.hold[target_id].wait()
            else:
                await asyncio.sleep(0)
            self.finished.append(target_id)
        finally:
            self.running -= 1
        return Result(reachable=not target_id.startswith("dead"))


async def test_polls_every_target_repeatedly_and_counts_results() -> None:
    poller = Poller()
    sched = PollScheduler([Target("a", 0.1), Target("dead-b", 0.1)], poller,
                          jitter_seconds=0.05, misfire_grace_seconds=5)
    sched.start()
    try:
        assert sched.running
        await async_wait_until(
            lambda: _ready(poller.calls.count("a") >= 3 and poller.calls.count("dead-b") >= 3),
            what="three polls of each target")
    finally:
        await sched.stop(1.0)
    assert not sched.running
    stats = sched.stats()
    assert stats.polls["success"] >= 3
    assert stats.polls["failure"] >= 3
    assert stats.targets_scheduled == 2


async def test_slow_poll_is_an_overrun_not_an_overlap() -> None:
    poller = Poller()
    poller.hold["slow"] = asyncio.Event()
    sched = PollScheduler([Target("slow", 0.05)], poller, jitter_seconds=0,
                          misfire_grace_seconds=5)
    sched.start()
    try:
        await async_wait_until(lambda: _ready(sched.overruns >= 2), what="two overruns")
        assert poller.calls == ["slow"]
        assert poller.peak == 1
        assert sched.poll_now("slow") is False
    finally:
        poller.hold["slow"].set()
        await sched.stop(1.0)


async def test_concurrency_is_bounded() -> None:
    poller = Poller()
    gate = asyncio.Event()
    targets = [Target(f"t{i}", 60) for i in range(10)]
    for t in targets:
        poller.hold[t.id] = gate
    sched = PollScheduler(targets, poller, jitter_seconds=0, max_concurrency=3)
    sched.start()
    try:
        await async_wait_until(lambda: _ready(poller.running == 3), what="three polls running")
        assert sched.inflight == 10  # the other seven wait for the semaphore
        gate.set()
        await async_wait_until(lambda: _ready(len(poller.finished) == 10), what="all polls")
        assert poller.peak == 3
    finally:
        await sched.stop(1.0)


async def test_stop_lets_polls_finish_then_cancels_the_late_ones() -> None:
    poller = Poller()
    finishing = asyncio.Event()
    poller.hold["quick"] = finishing
    poller.hold["stuck"] = asyncio.Event()  # never set
    sched = PollScheduler([Target("quick", 60), Target("stuck", 60)], poller, jitter_seconds=0)
    sched.start()
    await async_wait_until(lambda: _ready(poller.running == 2), what="both polls running")
    asyncio.get_running_loop().call_later(0.05, finishing.set)
    await sched.stop(0.5)
    assert "quick" in poller.finished
    assert "stuck" not in poller.finished
    assert sched.polls["cancelled"] == 1
    assert sched.inflight == 0
    assert not sched.running


async def test_poll_now_brings_a_poll_forward() -> None:
    poller = Poller()
    sched = PollScheduler([Target("a", 3600)], poller, jitter_seconds=0)
    sched.start()
    try:
        await async_wait_until(lambda: _ready(poller.finished == ["a"]), what="first poll")
        assert sched.poll_now("a") is True
        assert sched.poll_now("unknown") is False
        await async_wait_until(lambda: _ready(len(poller.finished) == 2), what="second poll")
    finally:
        await sched.stop(1.0)


async def test_a_crashing_poll_is_counted_and_the_scheduler_goes_on() -> None:
    calls = 0

    async def crash(_target_id: str) -> Result:
        nonlocal calls
        calls += 1
        raise RuntimeError("boom")

    sched = PollScheduler([Target("a", 0.05)], crash, jitter_seconds=0)
    sched.start()
    try:
        await async_wait_until(lambda: _ready(calls >= 2), what="two crashing polls")
        assert sched.polls["error"] >= 2
        assert sched.running
    finally:
        await sched.stop(1.0)


async def _ready(value: bool) -> bool:
    return value


async def test_update_targets_adds_removes_and_retimes_jobs() -> None:
    poller = Poller()
    sched = PollScheduler([Target("a", 0.05), Target("b", 60)], poller, jitter_seconds=0,
                          misfire_grace_seconds=5)
    sched.start()
    try:
        await async_wait_until(lambda: _ready(poller.calls.count("a") >= 2), what="a polled")
        assert poller.calls.count("b") == 1  # first poll at start, next one in a minute
        sched.update_targets([Target("b", 0.05), Target("c", 0.05)])
        await async_wait_until(
            lambda: _ready(poller.calls.count("c") >= 2 and poller.calls.count("b") >= 3),
            what="c polled and b on its new interval")
        polls_of_a = poller.calls.count("a")
        await async_wait_until(lambda: _ready(poller.calls.count("c") >= 4), what="more polls")
        assert poller.calls.count("a") == polls_of_a
        assert sched.stats().targets_scheduled == 2
        assert sched.poll_now("a") is False
    finally:
        await sched.stop(1.0)


def test_phases_spread_ten_thousand_targets_evenly() -> None:
    # The wheel's steady state: each target polls at its phase of the interval. At 10,000
    # targets on 60 s no second of the minute may carry a burst.
    per_second = [0] * 60
    for i in range(10_000):
        per_second[int(phase_of(f"olt-{i:05d}") * 60)] += 1
    mean = 10_000 / 60
    assert max(per_second) <= 1.4 * mean
    assert min(per_second) >= 0.6 * mean


async def test_a_stalled_loop_polls_each_target_once_late_then_realigns() -> None:
    # A loop blocked for longer than the grace (a stalled event loop, a suspended VM):
    # each target's late slot counts one misfire and one poll, not one per missed slot
    # (1 s / 0.02 s = 50 each), and polling goes on on the targets' phases.
    poller = Poller()
    sched = PollScheduler([Target("a", 0.02), Target("b", 0.02)], poller, jitter_seconds=0,
                          misfire_grace_seconds=0.2)
    sched.start()
    try:
        await async_wait_until(lambda: _ready(len(poller.calls) >= 2), what="first polls")
        misfires_before, overruns_before = sched.misfires, sched.overruns
        time.sleep(1.0)  # noqa: ASYNC251 - blocking the loop is the stall under test
        await async_wait_until(lambda: _ready(sched.misfires >= misfires_before + 2),
                               what="misfires")
        resumed = len(poller.calls)
        await async_wait_until(lambda: _ready(len(poller.calls) >= resumed + 4),
                               what="polling resumed")
        # Room for a natural stall or two of a loaded machine, far below 50 per target.
        assert sched.misfires - misfires_before <= 8
        assert sched.overruns - overruns_before <= 8
    finally:
        await sched.stop(1.0)


async def test_first_polls_run_even_when_the_loop_starts_late() -> None:
    # A daemon started on a busy machine: the loop is blocked right after start, past the
    # grace. The first polls still happen (counted as misfires), they are not skipped.
    poller = Poller()
    sched = PollScheduler([Target("a", 3600), Target("b", 3600)], poller, jitter_seconds=0,
                          misfire_grace_seconds=0.1)
    sched.start()
    try:
        time.sleep(0.5)  # noqa: ASYNC251 - blocking the loop is the late start under test
        await async_wait_until(lambda: _ready(sorted(poller.finished) == ["a", "b"]),
                               what="first polls")
        assert sched.misfires == 2
    finally:
        await sched.stop(1.0)


def test_the_wheel_never_reads_the_wall_clock() -> None:
    # A backward step of the wall clock stopped every poll for its size under APScheduler,
    # which computes run times in wall time. The wheel runs on the loop's monotonic clock
    # only; keep it that way.
    source = inspect.getsource(scheduler_module)
    for wall in ("datetime", "time.time(", "apscheduler"):
        assert wall not in source, wall


async def test_aligned_first_polls_wait_for_their_slot_on_the_grid() -> None:
    # A cluster's scheduler (align): a target taken over is first polled at its next slot
    # on the shared grid, never within the first-poll spread.
    loop = asyncio.get_running_loop()
    polled: dict[str, float] = {}

    async def poll(target_id: str) -> Result:
        polled.setdefault(target_id, loop.time())
        return Result(reachable=True)

    now = loop.time()
    # The grid puts "soon" 0.3 s from now; "later" is a target whose slot is far off.
    epoch = now + 0.3 - phase_of("soon") * 3600
    later = next(f"later-{i}" for i in range(100)
                 if scheduler_module.next_slot(epoch, phase_of(f"later-{i}"), 3600, now)
                 - now > 900)
    soon_slot = scheduler_module.next_slot(epoch, phase_of("soon"), 3600, now)
    sched = PollScheduler([Target("soon", 3600), Target(later, 3600)], poll,
                          jitter_seconds=5.0)
    sched.align(epoch)
    sched.start()
    try:
        await async_wait_until(lambda: _ready("soon" in polled), what="the first poll")
    finally:
        await sched.stop(1.0)
    assert polled["soon"] >= soon_slot
    # Unaligned, it would have been polled within the 5 s spread of the start.
    assert later not in polled


def test_next_slot_is_on_the_grid_and_strictly_after() -> None:
    for after in (-5.0, 0.0, 2.5, 7.0, 12.5, 1e6):
        slot = scheduler_module.next_slot(1.0, 0.25, 10.0, after)
        assert slot > after
        assert slot - after <= 10.0
        assert ((slot - 1.0 - 2.5) / 10.0) % 1 == 0


async def test_targets_taken_from_a_dead_member_catch_up_a_missed_slot() -> None:
    # On a cluster's grid (interval one hour), three targets are taken over at once:
    # "missed" had a slot 1 s ago, after the dead member's lease expiry (2 s ago): polled
    # at once. "kept" had its last slot before the expiry (the dead member may have polled
    # it), and "left" came from a clean leave (no expiry): both wait for their slot,
    # at least 15 minutes away.
    loop = asyncio.get_running_loop()
    polled: dict[str, float] = {}

    async def poll(target_id: str) -> Result:
        polled.setdefault(target_id, loop.time())
        return Result(reachable=True)

    now = loop.time()
    epoch = now - 1.0 - phase_of("missed") * 3600  # missed's last slot: now - 1

    def far(target_id: str) -> bool:
        return scheduler_module.next_slot(epoch, phase_of(target_id), 3600, now) - now > 900
    kept, left = [t for t in (f"other-{i}" for i in range(100)) if far(t)][:2]
    sched = PollScheduler([], poll, jitter_seconds=0.5)
    sched.align(epoch)
    sched.start()
    try:
        expiry = now - 2.0
        caught = sched.update_targets(
            [Target("missed", 3600), Target(kept, 3600), Target(left, 3600)],
            catch_up={"missed": expiry, kept: expiry})
        assert caught == 1
        await async_wait_until(lambda: _ready("missed" in polled), what="the catch-up poll")
    finally:
        await sched.stop(1.0)
    # Well before its next slot (an hour after the missed one).
    assert polled["missed"] < scheduler_module.next_slot(epoch, phase_of("missed"), 3600,
                                                         now)
    assert kept not in polled
    assert left not in polled


def test_the_catch_up_rule_on_the_scheduler_s_grid() -> None:
    # Slots at 2.5 + 10k; the previous owner's lease ran out at 14.
    rule = scheduler_module.missed_since
    assert not rule(0.0, 0.25, 10.0, 14.0, 20.0)   # last slot 12.5: it may have polled
    assert rule(0.0, 0.25, 10.0, 14.0, 22.5)       # 22.5 > 14: nobody did
    assert rule(0.0, 0.25, 10.0, 11.0, 14.0)       # 12.5 > 11
