"""Poll every target on its own interval with APScheduler 3.11, and count what went wrong.

Each target is one interval job with jitter, ``coalesce=True`` (a backlog collapses into
one run), ``max_instances=1`` (a poll never overlaps itself) and a generous misfire grace
time. A job that fires while its previous poll still runs is an *overrun*; APScheduler
reports it as ``EVENT_JOB_MAX_INSTANCES`` and we count it. A semaphore bounds how many
polls run at once across all targets.

APScheduler's asyncio executor cancels in-flight jobs abruptly when shut down, so
:meth:`PollScheduler.stop` pauses the scheduler first, lets running polls finish within
the shutdown budget, and cancels only what is left.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from apscheduler.events import (
    EVENT_JOB_ERROR,
    EVENT_JOB_MAX_INSTANCES,
    EVENT_JOB_MISSED,
    JobExecutionEvent,
    JobSubmissionEvent,
)
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.interval import IntervalTrigger

from netguard.daemon.metrics import DaemonStats

log = logging.getLogger(__name__)

# APScheduler logs every added job and every run at INFO; with thousands of targets that
# drowns the operator's view. Overrun warnings still come through.
_APS_LOG = logging.getLogger("netguard.daemon.apscheduler")
_APS_LOG.setLevel(logging.WARNING)


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


class PollScheduler:
    """Runs ``poll(target_id)`` for every target on its interval.

    Args:
        targets: What to poll and how often.
        poll: Polls one target and returns its new status (anything with ``reachable``).
            It should not raise; if it does, the failure is logged and counted.
        jitter_seconds: Random delay added to each run, so that targets with the same
            interval do not all fire in the same instant; the first poll of each target is
            also spread over this window.
        misfire_grace_seconds: How late a run may start before it is skipped.
        max_concurrency: Polls running at once, across all targets.
    """

    def __init__(self, targets: Sequence[ScheduledTarget], poll: PollFn, *,
                 jitter_seconds: float = 2.0, misfire_grace_seconds: float = 30.0,
                 max_concurrency: int = 64) -> None:
        self._targets = list(targets)
        self._ids = {t.id for t in self._targets}
        self._poll = poll
        self._jitter = jitter_seconds
        self._grace = misfire_grace_seconds
        self._semaphore = asyncio.Semaphore(max_concurrency)
        self._scheduler: AsyncIOScheduler | None = None
        self._inflight: set[asyncio.Task[Any]] = set()
        self._busy: set[str] = set()
        self._stopping = False
        self.overruns = 0
        self.misfires = 0
        self.polls: dict[str, int] = {"success": 0, "failure": 0, "error": 0, "cancelled": 0}

    @property
    def running(self) -> bool:
        """True between :meth:`start` and :meth:`stop`."""
        return self._scheduler is not None and self._scheduler.running and not self._stopping

    @property
    def inflight(self) -> int:
        """Polls running right now."""
        return len(self._inflight)

    def stats(self) -> DaemonStats:
        """The scheduler's counters as an immutable snapshot for the metrics."""
        return DaemonStats(polls=dict(self.polls), overruns=self.overruns,
                           misfires=self.misfires, scheduler_running=self.running,
                           targets_scheduled=len(self._targets))

    def start(self) -> None:
        """Start the scheduler on the running event loop and add one job per target."""
        loop = asyncio.get_running_loop()
        scheduler = AsyncIOScheduler(event_loop=loop, timezone=UTC, logger=_APS_LOG)
        scheduler.add_listener(self._on_event,
                               EVENT_JOB_MAX_INSTANCES | EVENT_JOB_MISSED | EVENT_JOB_ERROR)
        now = datetime.now(UTC)
        for target in self._targets:
            self._add_job(scheduler, target, now)
        scheduler.start()
        self._scheduler = scheduler
        log.info("scheduler started", extra={"targets": len(self._targets)})

    def update_targets(self, targets: Sequence[ScheduledTarget]) -> None:
        """Poll ``targets`` from now on: add new jobs, drop removed ones, re-time the rest.

        A removed target's poll that is already running finishes; its job never fires
        again. A new target's first poll is spread over the jitter window, like at start.
        A target whose interval changed starts its new interval from now.
        """
        old = {t.id: t for t in self._targets}
        self._targets = list(targets)
        self._ids = {t.id for t in self._targets}
        scheduler = self._scheduler
        if scheduler is None:
            return
        now = datetime.now(UTC)
        for target in self._targets:
            before = old.get(target.id)
            if before is None:
                self._add_job(scheduler, target, now)
            elif before.interval_seconds != target.interval_seconds:
                scheduler.reschedule_job(target.id, trigger=self._trigger(target))
        for target_id in old.keys() - self._ids:
            if scheduler.get_job(target_id) is not None:
                scheduler.remove_job(target_id)

    def _trigger(self, target: ScheduledTarget) -> IntervalTrigger:
        return IntervalTrigger(seconds=target.interval_seconds, jitter=self._jitter or None,
                               timezone=UTC)

    def _add_job(self, scheduler: AsyncIOScheduler, target: ScheduledTarget,
                 now: datetime) -> None:
        first = now + timedelta(seconds=random.uniform(0, self._jitter))  # noqa: S311 - spreading load, not security
        scheduler.add_job(
            self._run, self._trigger(target), args=(target.id,), id=target.id,
            name=f"poll {target.id}", coalesce=True, max_instances=1,
            misfire_grace_time=max(1, int(self._grace)), next_run_time=first,
            replace_existing=True)

    def poll_now(self, target_id: str) -> bool:
        """Poll a target right away (e.g. on a trap), unless its poll is already running.

        Returns:
            True if a poll was brought forward.
        """
        if self._scheduler is None or self._stopping or target_id in self._busy:
            return False
        job = self._scheduler.get_job(target_id)
        if job is None:
            return False
        # Through the scheduler, so that max_instances still prevents overlap.
        job.modify(next_run_time=datetime.now(UTC))
        return True

    async def stop(self, grace_seconds: float) -> None:
        """Stop firing, give running polls ``grace_seconds``, then cancel the rest."""
        scheduler = self._scheduler
        if scheduler is None:
            return
        self._stopping = True
        if scheduler.running:
            scheduler.pause()
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
        if scheduler.running:
            scheduler.shutdown(wait=False)
        self._scheduler = None

    async def _run(self, target_id: str) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._inflight.add(task)
        self._busy.add(target_id)
        try:
            async with self._semaphore:
                # A job submitted just before a reload removed its target: nothing to do.
                if self._stopping or target_id not in self._ids:
                    return
                result = await self._poll(target_id)
            self.polls["success" if result.reachable else "failure"] += 1
        except asyncio.CancelledError:
            # Only stop() cancels polls; ending quietly keeps APScheduler from logging the
            # cancellation as a job crash.
            self.polls["cancelled"] += 1
        except Exception:
            self.polls["error"] += 1
            log.exception("poll crashed", extra={"target": target_id})
        finally:
            self._inflight.discard(task)
            self._busy.discard(target_id)

    def _on_event(self, event: JobExecutionEvent | JobSubmissionEvent) -> None:
        if event.code == EVENT_JOB_MAX_INSTANCES:
            self.overruns += 1
        elif event.code == EVENT_JOB_MISSED:
            self.misfires += 1
            log.warning("poll missed its start time", extra={"target": event.job_id})

