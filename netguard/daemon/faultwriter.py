"""The fault-event writer: what polls raise reaches the ticket store, in order, once.

A poll hands its ``FaultOpened``/``FaultCleared`` events over (:meth:`FaultWriter.hand_over`)
and goes on: a slow or hung database must not stall polls. One task
(:meth:`FaultWriter.run`) delivers them to the ticket service in the order they were
raised, from a :class:`~netguard.daemon.backlog.FaultBacklog` (memory, then a journal
file). While the store refuses writes they wait, and the writer retries with backoff; an
event the store refuses for its own content is set aside after a few tries so that it does
not hold every later event behind it. At shutdown what is still waiting goes to the
journal (:meth:`FaultWriter.keep_for_next_start`) and the next start delivers it first.

In a cluster each event carries the epoch its poll ran under, and its write is fenced by
it (:class:`~netguard.cluster.fence.EpochFence`). An event refused as stale is dropped:
the target's new owner polls it and writes what it finds, so replaying the old state
could only be wrong; it is counted, logged with its fault key, and the last few are kept
for ``/readyz`` (docs/scale-out.md, "Fencing"). The cluster role also has the writer drop
the events of a poll that ended after its target was given up (:meth:`FaultWriter.only_for`):
the new owner reads the target's stored faults once the old owner let go, and an event
written after that read would make it raise the fault again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections import deque
from collections.abc import Callable, Sequence

from netguard.cluster.fence import EpochFence
from netguard.cluster.members import Epoch
from netguard.daemon.backlog import FaultBacklog
from netguard.daemon.outage import Outage
from netguard.daemon.ports import StorePort, TicketsPort
from netguard.errors import StaleEpochError
from netguard.faults import FaultEvent, FaultOpened
from netguard.store.health import bounded, describe_error, store_wide_reason

log = logging.getLogger(__name__)

# How long a write probe may take before the store counts as not writable (also the
# readiness probe's limit).
STORE_PROBE_SECONDS = 3.0
# Attempts in a row that a fault event may fail with an error specific to it (a value the
# schema refuses, a constraint) before it is set aside as one the ticket store will never
# accept. Store-wide errors (read-only, unreachable, disk full, timeout) never count.
POISON_EVENT_ATTEMPTS = 3
# The retry delay while the store refuses writes: exponential with jitter between these
# bounds (a readiness probe that finds the store writable again wakes the writer at once).
RETRY_MIN_SECONDS = 0.5
RETRY_MAX_SECONDS = 15.0
# Stale events refused in a row that are logged one by one (then one line per thousand):
# a fenced instance's backlog may hold thousands after a fault storm.
STALE_LOGGED = 20
# Refused stale events kept for /readyz.
STALE_KEPT = 5


class FaultWriter:
    """Delivers fault events to the ticket service in order, retrying while it refuses.

    Args:
        backlog: Where events wait (memory, then the journal file).
        tickets: The ticket service now (a reload may replace it).
        store: The store, for the write probe that tells a poisoned event from an outage.
        timeout: Seconds one delivery may take (``store.operation_timeout_seconds``).
        fenced: Fence each write by the epoch its event carries (``cluster.enabled``).
            Without it the epochs are ignored: a single instance writes what a clustered
            run left in the journal.

    Attributes:
        handled: Events delivered.
        rejected: Events set aside because the store keeps refusing their content.
        errors: Deliveries that failed unexpectedly (logged with a traceback, retried).
        refusing: Why the store refused the last attempt while it still does, else "".
        write_failures: Attempts the store refused for a store-wide reason.
        outages: Times the store started refusing.
        stale_refused: Events refused because their cluster epoch was stale, by
            ``fault_opened``/``fault_cleared``.
        stale_recent: The last few refused, described for an operator.
        disowned: Events dropped because their target had been given up by the time its
            poll ended (:meth:`only_for`).
    """

    def __init__(self, backlog: FaultBacklog, tickets: Callable[[], TicketsPort],
                 store: Callable[[], StorePort], *, timeout: float,
                 fenced: bool = True) -> None:
        self._backlog = backlog
        self._tickets = tickets
        self._store = store
        self._timeout = timeout
        self._fenced = fenced
        self._wake = asyncio.Event()
        self._draining = False
        self._head_failures = 0
        self.handled = 0
        self.rejected = 0
        self.errors = 0
        self.refusing = ""
        self.write_failures = 0
        self.outages = 0
        self.stale_refused: dict[str, int] = {}
        self.stale_recent: deque[str] = deque(maxlen=STALE_KEPT)
        self._stale_streak = 0
        self._owns: Callable[[str], bool] | None = None
        self.disowned = 0
        self._outage = Outage("the ticket store refuses writes; fault events wait in order "
                              "and are delivered once it takes them")

    def __len__(self) -> int:
        return len(self._backlog)

    @property
    def spilled(self) -> int:
        """Events waiting in the journal file."""
        return self._backlog.spilled

    @property
    def dropped(self) -> int:
        """Events dropped: the journal was full or could not be written."""
        return self._backlog.dropped

    def hand_over(self, events: Sequence[FaultEvent], epoch: Epoch | None = None) -> None:
        """Queue ``events`` behind everything waiting; never blocks.

        Args:
            events: What one poll raised.
            epoch: In a cluster, the registration the poll ran under: the writes are
                refused once it is stale.
        """
        owns = self._owns
        for event in events:
            if owns is not None and not owns(event.key.target):
                self.disowned += 1
                log.info("dropped a fault event of a target given up during its poll",
                         extra={"fault": str(event.key)})
                continue
            self._backlog.append(event, epoch)
        self._wake.set()

    def only_for(self, owns: Callable[[str], bool]) -> None:
        """From now on, take only the events of targets that ``owns`` (a cluster: a poll
        that ends after its target was handed over reports for a target that is no
        longer this instance's; its new owner polls it and reports what it finds)."""
        self._owns = owns

    def wake(self) -> None:
        """Try again now (a write probe just went through)."""
        self._wake.set()

    def finish(self) -> None:
        """Deliver what waits, then end :meth:`run` (at shutdown)."""
        self._draining = True
        self._wake.set()

    async def run(self) -> None:
        """Deliver waiting events until :meth:`finish` was called and they are delivered.

        While the store refuses, retries with jittered exponential backoff; an unexpected
        failure is logged with its traceback, counted in ``errors`` and retried the same
        way. Either way the events keep waiting, in order; after :meth:`finish` the
        first refusal ends the run and what is left goes to the journal.
        """
        rng = random.Random()  # noqa: S311 - jitter, not security
        attempts = 0
        while True:
            self._wake.clear()
            delivered = await self._deliver_safely()
            if delivered or not len(self._backlog):
                attempts = 0
                if self._draining:
                    return
                await self._wake.wait()
                continue
            if self._draining:
                return  # what is left goes to the journal
            attempts += 1
            delay = min(RETRY_MAX_SECONDS, RETRY_MIN_SECONDS * 2.0 ** min(attempts - 1, 16))
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(delay * (0.5 + 0.5 * rng.random())):
                    await self._wake.wait()

    async def _deliver_safely(self) -> bool:
        try:
            return await self._deliver()
        except Exception:
            self.errors += 1
            log.exception("delivering fault events failed unexpectedly; they keep waiting",
                          extra={"fault_events_waiting": len(self._backlog)})
            return False

    async def _deliver(self) -> bool:
        """Deliver waiting events in order until none is left or the store refuses.

        Returns:
            True if the backlog is empty (everything delivered or set aside).
        """
        while (event := self._backlog.head()) is not None:
            epoch = self._backlog.head_epoch() if self._fenced else None
            try:
                if epoch is None:
                    await bounded(self._tickets().handle(event), self._timeout)
                else:
                    await bounded(self._tickets().handle(event, fence=EpochFence(epoch)),
                                  self._timeout)
            except StaleEpochError as exc:
                if not exc.final:
                    return False  # the lease is about to end: the next heartbeat decides
                self._backlog.pop()
                self._stale(event, exc)
                continue
            except Exception as exc:
                if store_wide_reason(exc) is not None:
                    self._head_failures = 0
                    self._refused(describe_error(exc))
                    return False
                if not await self._is_poison(event, exc):
                    return False
                self._backlog.pop()
                continue
            self._backlog.pop()
            self._head_failures = 0
            self._stale_streak = 0
            self.handled += 1
            self.took_write()
        return True

    def _stale(self, event: FaultEvent, exc: StaleEpochError) -> None:
        """Count and log an event refused for its stale epoch; it is not retried."""
        kind = "fault_opened" if isinstance(event, FaultOpened) else "fault_cleared"
        self.stale_refused[kind] = self.stale_refused.get(kind, 0) + 1
        self._stale_streak += 1
        epoch = f"{exc.instance_id}:{exc.incarnation}"
        self.stale_recent.append(f"{kind} {event.key} at {event.at.isoformat()} "
                                 f"(epoch {epoch}: {exc.reason})")
        if self._stale_streak <= STALE_LOGGED or self._stale_streak % 1000 == 0:
            log.warning("refused a stale fault event: this instance's cluster registration "
                        "changed since its poll, and the target's owner writes its own",
                        extra={"fault": str(event.key), "event": kind, "epoch": epoch,
                               "reason": exc.reason, "refused_in_a_row": self._stale_streak})

    def _refused(self, reason: str) -> None:
        self.write_failures += 1
        if not self.refusing:
            self.outages += 1
        self.refusing = reason
        self._outage.failed(reason, waiting=len(self._backlog))

    def took_write(self) -> None:
        """The store took a write: an outage, if one was under way, is over."""
        self.refusing = ""
        self._outage.recovered(waiting=len(self._backlog))

    async def _is_poison(self, event: FaultEvent, exc: Exception) -> bool:
        """Whether the backlog's head is an event the ticket store will never accept.

        Events wait in order, so one the database refuses for its own content (a site
        name too long for its column, say) would hold every later event behind it for
        good. Only such event-specific errors count; a store that refuses every write
        (read-only, full, unreachable, timing out) never sets anything aside. An error
        not recognised as store-wide counts only if a write probe then succeeds.
        """
        health = await self._store().writable(STORE_PROBE_SECONDS)
        if not health.writable:
            self._head_failures = 0
            self._refused(health.reason)
            return False
        self.took_write()
        self._head_failures += 1
        if self._head_failures < POISON_EVENT_ATTEMPTS:
            log.warning("the ticket store refused a fault event; will retry",
                        extra={"fault": str(event.key), "attempt": self._head_failures,
                               "error": describe_error(exc)})
            return False
        self._head_failures = 0
        self.rejected += 1
        log.error("the ticket store keeps refusing a fault event for its content; set "
                  "aside so that later events are not held behind it",
                  exc_info=exc, extra={"fault": str(event.key), "event": repr(event)})
        return True

    def keep_for_next_start(self) -> int:
        """Write what still waits to the journal (at shutdown); the next start delivers it.

        Events the journal cannot take are logged as lost and counted in ``dropped``.

        Returns:
            How many events were waiting.
        """
        waiting = len(self._backlog)
        if not waiting:
            return 0
        kept = self._backlog.persist()
        if kept >= waiting:
            log.warning("fault events not delivered by shutdown are kept in the journal",
                        extra={"events": kept, "journal": str(self._backlog.journal)})
        else:
            lost = self._backlog.discard_memory()
            log.error("fault events not delivered by shutdown are lost: the journal could "
                      "not be written", extra={"events": lost, "kept": kept,
                                               "journal": str(self._backlog.journal)})
        return waiting
