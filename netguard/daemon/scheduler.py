"""Poll every target on its interval from one scheduling wheel on the monotonic clock.

Each target keeps a fixed *phase* inside its interval, taken from a stable hash of its id,
so 10,000 targets on a 60 s interval are spread evenly over the minute (about 167 polls a
second) instead of firing in bursts. The first poll of each target comes within
``first_poll_spread_seconds`` of start, so a (re)started daemon sees its estate at once;
from then on each target keeps its phase.

In a cluster (:meth:`PollScheduler.align`) the phases sit on a grid shared by every
instance, on the database's clock (:mod:`netguard.cluster.handover`), and a target's
first poll is at its next slot on that grid instead: a target taken over is polled one
interval after its previous owner's poll at the same place, not twice within an interval.
A target taken over from a member whose lease ran out is polled at once, within the
first-poll spread, if its last slot came after that expiry (:func:`missed_since`):
nobody polled that slot.

One task sleeps until the next due poll on the event loop's clock, which is monotonic: a
step of the wall clock neither stalls nor hurries polling. (APScheduler 3 computes run
times in wall time, so a backward step of Δ stopped every poll for Δ; one job per target
also cost more than the polls at 10,000 targets. See docs/decisions.md.)

A poll that falls due while the previous poll of the same target still runs is an
*overrun*: it is skipped and counted, never overlapped. When the wheel itself falls more
than ``misfire_grace_seconds`` behind (a suspended VM, a stalled or starved loop), each
late poll is a *misfire*: it is counted and still runs, once however many of its slots
were missed, and the target then re-aligns to its next slot. (Skipping it instead would
leave a target unpolled for a whole extra interval after every stall, and a daemon
started on a busy machine would skip its very first polls.) A semaphore bounds how many
polls run at once across all targets, so a catch-up after a stall queues rather than
bursts.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import heapq
import logging
import math
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from netguard.metrics import DaemonStats

log = logging.getLogger(__name__)

_WHEEL_TASK = "netguard[daemon].poll-wheel"


class PollResult(Protocol):
    """What a poll reports back: whether the agent answered."""

    @property
    def reachable(self) -> bool: ...


PollFn = Callable[[str], Awaitable[PollResult]]


class ScheduledTarget(Protocol):
    """The part of a target's config the scheduler needs."""

    @property
    def id(self) -> str: ...
    @property
    def interval_seconds(self) -> float: ...


def phase_of(target_id: str) -> float:
    """A target's fixed place in its interval, as a fraction in [0, 1).

    A hash rather than the target's position in the list, so adding or removing one
    target does not move every other target's polls.
    """
    digest = hashlib.blake2b(target_id.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64


def next_slot(epoch: float, phase: float, interval: float, after: float) -> float:
    """The first slot ``epoch + (phase + k) x interval`` (any integer k >= 0) after ``after``.

    Args:
        epoch: Where the slots start (monotonic time).
        phase: The target's place in its interval, in [0, 1) (:func:`phase_of`).
        interval: Its interval in seconds.
        after: Monotonic time.
    """
    base = epoch + phase * interval
    k = math.floor((after - base) / interval) + 1
    return base + max(k, 0) * interval


def missed_since(epoch: float, phase: float, interval: float, expiry: float,
                 now: float) -> bool:
    """Whether the target's most recent slot (at or before ``now``) came after ``expiry``.

    The catch-up rule of a target taken over from a member whose lease ran out at
    ``expiry`` (docs/scale-out.md, "Hand-over"): that member polled nothing after its
    expiry, so a slot after it was certainly missed and the target is polled at once; a
    slot before it may have been polled, and the target waits for its next slot.

    Args:
        epoch: Where the slots start (monotonic time, the cluster's grid).
        phase: The target's place in its interval (:func:`phase_of`).
        interval: Its interval in seconds.
        expiry: The previous owner's lease expiry, on the same monotonic clock.
        now: Monotonic time.
    """
    return next_slot(epoch, phase, interval, now) - interval > expiry


@dataclass(slots=True)
class _Slot:
    interval: float
    phase: float
    generation: int


class PollScheduler:
    """Runs ``poll(target_id)`` for every target on its interval.

    Args:
        targets: What to poll and how often.
        poll: Polls one target and returns its new status (anything with ``reachable``).
            It should not raise; if it does, the failure is logged and counted.
        jitter_seconds: The window over which the *first* polls are spread after start
            (or after a target is added), capped at each target's interval. Later polls
            are spread over the whole interval by the targets' phases.
        misfire_grace_seconds: How late a poll may start before it counts as a misfire.
        max_concurrency: Polls running at once, across all targets.
    """

    def __init__(self, targets: Sequence[ScheduledTarget], poll: PollFn, *,
                 jitter_seconds: float = 2.0, misfire_grace_seconds: float = 30.0,
                 max_concurrency: int = 64) -> None:
        self._targets = list(targets)
        self._poll = poll
        self._spread = max(0.0, jitter_seconds)
        self._grace = misfire_grace_seconds
        self._semaphore = asyncio.Semaphore(max_concurrency)
        self._slots: dict[str, _Slot] = {}
        self._heap: list[tuple[float, int, str, int]] = []
        self._seq = 0
        self._epoch = 0.0
        self._aligned = False
        self._wake: asyncio.Event | None = None
        self._wheel: asyncio.Task[None] | None = None
        self._inflight: set[asyncio.Task[Any]] = set()
        self._busy: set[str] = set()
        self._stopping = False
        self.overruns = 0
        self.misfires = 0
        self.polls: dict[str, int] = {"success": 0, "failure": 0, "error": 0, "cancelled": 0}

    @property
    def running(self) -> bool:
        """True between :meth:`start` and :meth:`stop` while the wheel turns."""
        return self._wheel is not None and not self._wheel.done() and not self._stopping

    @property
    def inflight(self) -> int:
        """Polls running (or waiting for the concurrency bound) right now."""
        return len(self._inflight)

    def stats(self) -> DaemonStats:
        """The scheduler's counters as an immutable snapshot for the metrics."""
        return DaemonStats(polls=dict(self.polls), overruns=self.overruns,
                           misfires=self.misfires, scheduler_running=self.running,
                           targets_scheduled=len(self._targets))

    def start(self) -> None:
        """Start the wheel on the running event loop; first polls come within the spread."""
        loop = asyncio.get_running_loop()
        now = loop.time()
        if not self._aligned:
            self._epoch = now
        self._wake = asyncio.Event()
        for target in self._targets:
            self._add(target, now)
        self._wheel = loop.create_task(self._turn(), name=_WHEEL_TASK)
        log.info("scheduler started", extra={"targets": len(self._targets)})

    def update_targets(self, targets: Sequence[ScheduledTarget], *,
                       catch_up: Mapping[str, float] | None = None) -> int:
        """Poll ``targets`` from now on: add new ones, drop removed ones, re-time the rest.

        A removed target's poll that is already running finishes; it is never polled
        again. A new target's first poll is spread like at start (on a cluster's grid: at
        its next slot). A target whose interval changed moves to its next slot on the new
        interval.

        Args:
            targets: What to poll from now on.
            catch_up: On a cluster's grid, new targets taken over from a member whose
                lease ran out, with that expiry (the loop's clock). One whose last slot
                came after it was missed (:func:`missed_since`): its first poll comes
                within the first-poll spread instead of at its next slot.

        Returns:
            How many new targets catch up.
        """
        self._targets = list(targets)
        if self._wake is None:
            return 0
        now = asyncio.get_running_loop().time()
        expiries = catch_up or {}
        caught = 0
        wanted = {t.id: t for t in self._targets}
        for target_id in self._slots.keys() - wanted.keys():
            del self._slots[target_id]
        for target in self._targets:
            slot = self._slots.get(target.id)
            if slot is None:
                caught += self._add(target, now, expiries.get(target.id))
            elif slot.interval != target.interval_seconds:
                slot.interval = target.interval_seconds
                slot.generation += 1
                self._push(self._next_slot(slot, now), target.id, slot)
        self._wake.set()
        return caught

    def align(self, epoch: float) -> None:
        """Put every target's slots on a grid shared by a cluster, from now on.

        A target's slots become ``epoch + (phase + k) x interval`` on the loop's
        (monotonic) clock, and a target added later (or at :meth:`start`) is first polled
        at its next slot, not within the first-poll spread. Polls already queued keep
        their time; each target's later slots follow the new grid. Call it again when
        the estimate of the grid moves (a few milliseconds at a time).

        Args:
            epoch: The grid's origin on the loop's clock
                (:func:`netguard.cluster.handover.grid_epoch`).
        """
        self._epoch = epoch
        self._aligned = True

    def poll_now(self, target_id: str) -> bool:
        """Poll a target right away (e.g. on a trap), unless its poll is already running.

        Returns:
            True if a poll was started.
        """
        if not self.running or target_id in self._busy or target_id not in self._slots:
            return False
        self._launch(target_id)
        return True

    async def stop(self, grace_seconds: float) -> None:
        """Stop the wheel, give running polls ``grace_seconds``, then cancel the rest."""
        wheel = self._wheel
        if wheel is None:
            return
        self._stopping = True
        wheel.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await wheel
        pending = set(self._inflight)
        if pending:
            log.info("waiting for in-flight polls", extra={"polls": len(pending)})
            _done, late = await asyncio.wait(pending, timeout=grace_seconds)
            for task in late:
                task.cancel()
            if late:
                log.warning("cancelled polls still running at shutdown",
                            extra={"polls": len(late)})
                await asyncio.wait(late)
        self._wheel = None

    # -- the wheel -------------------------------------------------------------------------

    def _add(self, target: ScheduledTarget, now: float, expiry: float | None = None) -> bool:
        """Queue a new target's first poll; whether it catches up a missed slot."""
        slot = _Slot(target.interval_seconds, phase_of(target.id), 0)
        self._slots[target.id] = slot
        spread = now + slot.phase * min(self._spread, slot.interval)
        caught = False
        if self._aligned:  # a cluster: the slot another instance may just have polled at
            first = self._next_slot(slot, now)
            if expiry is not None and missed_since(self._epoch, slot.phase, slot.interval,
                                                   expiry, now):
                # Nobody polled its last slot: now (spread so that a dead member's
                # targets do not all fire at once), unless its next slot comes sooner.
                first, caught = min(first, spread), True
        else:
            first = spread
        self._push(first, target.id, slot)
        return caught

    def _push(self, due: float, target_id: str, slot: _Slot) -> None:
        self._seq += 1
        heapq.heappush(self._heap, (due, self._seq, target_id, slot.generation))

    def _next_slot(self, slot: _Slot, after: float) -> float:
        """The first of the target's slots (epoch + phase + k x interval) after ``after``."""
        return next_slot(self._epoch, slot.phase, slot.interval, after)

    async def _turn(self) -> None:
        assert self._wake is not None
        loop = asyncio.get_running_loop()
        while True:
            if not self._heap:
                self._wake.clear()
                await self._wake.wait()
                continue
            delay = self._heap[0][0] - loop.time()
            if delay > 0:
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(delay):
                        await self._wake.wait()
                continue
            self._fire_due(loop.time())
            # Let the polls just started run before the next batch is examined.
            await asyncio.sleep(0)

    def _fire_due(self, now: float) -> None:
        missed = 0
        while self._heap and self._heap[0][0] <= now:
            due, _seq, target_id, generation = heapq.heappop(self._heap)
            slot = self._slots.get(target_id)
            if slot is None or slot.generation != generation:
                continue  # removed or re-timed since this entry was queued
            if now - due > self._grace:
                missed += 1
            if target_id in self._busy:
                self.overruns += 1
            else:
                self._launch(target_id)
            # From now, not from ``due``: a wheel running late coalesces to one poll.
            self._push(self._next_slot(slot, max(due, now)), target_id, slot)
        if missed:
            self.misfires += missed
            log.warning("polls started late (the loop was stalled or starved); each runs "
                        "once and returns to its slot", extra={"polls": missed})

    def _launch(self, target_id: str) -> None:
        # Busy from the moment the task exists, so a second trigger cannot overlap it.
        self._busy.add(target_id)
        task = asyncio.get_running_loop().create_task(
            self._run(target_id), name=f"netguard[daemon].poll {target_id}")
        self._inflight.add(task)
        task.add_done_callback(self._inflight.discard)

    async def _run(self, target_id: str) -> None:
        try:
            async with self._semaphore:
                # Queued just before a reload removed its target, or shutdown began.
                if self._stopping or target_id not in self._slots:
                    return
                result = await self._poll(target_id)
            self.polls["success" if result.reachable else "failure"] += 1
        except asyncio.CancelledError:
            # Only stop() cancels polls.
            self.polls["cancelled"] += 1
        except Exception:
            self.polls["error"] += 1
            log.exception("poll crashed", extra={"target": target_id})
        finally:
            self._busy.discard(target_id)
