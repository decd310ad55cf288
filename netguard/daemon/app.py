"""The composition root: startup, serve, graceful shutdown.

:class:`Daemon` opens the store, the probe, ticket and IoT services and the HTTP endpoint
(startup, in ``async with``), then :meth:`Daemon.serve` runs the poll scheduler and the
periodic sweeps under one ``TaskGroup`` until asked to stop, and finally shuts down within
``daemon.shutdown_timeout_seconds``: running polls get most of that budget to finish and
hand their fault events to the ticket service, then the services close (the IoT service
drains its outbox and event log on exit).

On SIGHUP (:meth:`Daemon.request_reload`) the configuration file is read again; see
:meth:`Daemon.reload` and :mod:`netguard.daemon.reload` for what applies live.

The services are reached through small Protocols (the "ports" below), so the daemon's own
behaviour is tested with simple stand-ins and the real services are wired in
:mod:`netguard.daemon.wiring`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable, Mapping, Sequence
from contextlib import AsyncExitStack
from dataclasses import dataclass, replace
from types import TracebackType
from typing import Protocol

from netguard.clock import Clock, ClockWatch, SystemClock
from netguard.config import Settings
from netguard.daemon.http import MetricsServer
from netguard.daemon.reload import ReloadPlan, plan_reload
from netguard.daemon.scheduler import PollScheduler
from netguard.errors import ConfigError, TransientError
from netguard.faults import FaultEvent
from netguard.metrics import IotView, MetricsSnapshot, TargetView, TicketCountsView
from netguard.probes.config import TargetConfig
from netguard.tickets.config import TicketsConfig

log = logging.getLogger(__name__)

# How long a readiness probe may wait for the store before calling it unreachable.
READY_TIMEOUT_SECONDS = 2.0
# Fault events kept for retry while the store is down; beyond this the oldest are dropped
# (and counted) rather than growing without bound. A restart recovers both kinds: the
# probes re-raise a still-active fault whose FaultOpened was dropped, and are seeded with
# the faults of open tickets (netguard.daemon.continuity), so a dropped FaultCleared is
# sent again once the link is seen healthy.
MAX_EVENT_BACKLOG = 100_000
# A full backlog logs its first drop and then every this many, so that an outage long
# enough to overflow it is visible without a log line per lost event.
DROP_LOG_EVERY = 1_000
# Sweeps in a row that a backlogged fault event may fail, with the database answering,
# before it is set aside as one the ticket store will never accept.
POISON_EVENT_ATTEMPTS = 3


# --------------------------------------------------------------------------- ports


class PollOutcomeView(Protocol):
    """What one poll produced."""

    @property
    def status(self) -> TargetView: ...
    @property
    def events(self) -> Sequence[FaultEvent]: ...


class ProbesPort(Protocol):
    """The probe service (``netguard.probes.service.ProbeService``)."""

    def statuses(self) -> Mapping[str, TargetView]: ...
    async def poll(self, target_id: str) -> PollOutcomeView: ...


class TicketsPort(Protocol):
    """The ticket service (``netguard.tickets.service.TicketService``)."""

    async def handle(self, event: FaultEvent) -> object: ...
    async def sweep(self) -> object: ...
    async def counts(self) -> TicketCountsView: ...


class IotPort(Protocol):
    """The door-sensor service (``netguard.iot.service.IotService``)."""

    async def sweep(self) -> object: ...
    async def on_clock_step(self, step_seconds: float) -> None: ...
    def snapshot(self) -> IotView: ...
    @property
    def mqtt_connected(self) -> bool: ...


class StorePort(Protocol):
    """The database handle."""

    async def ping(self) -> bool: ...


Retarget = Callable[[Sequence[TargetConfig], Callable[[], None], float], Awaitable[None]]
"""Switches the probes to a new target list (``ProbeRoster.replace``)."""


@dataclass
class Services:
    """The opened services the daemon runs (each already entered on the exit stack).

    ``retarget`` and ``make_tickets`` let a configuration reload swap the target list and
    the ticket settings live; ``None`` means that part needs a restart.
    """

    store: StorePort
    probes: ProbesPort
    tickets: TicketsPort
    iot: IotPort | None = None
    retarget: Retarget | None = None
    make_tickets: Callable[[TicketsConfig], TicketsPort] | None = None


ServiceOpener = Callable[[Settings, Clock, AsyncExitStack, Callable[[str], object]],
                         Awaitable[Services]]
"""Opens the services on the exit stack; the last argument is the trap re-poll hook."""

PollListener = Callable[[PollOutcomeView], None]


async def _default_opener(settings: Settings, clock: Clock, stack: AsyncExitStack,
                          on_trap: Callable[[str], object]) -> Services:
    from netguard.daemon.wiring import open_services

    return await open_services(settings, clock, stack, on_trap)


# --------------------------------------------------------------------------- daemon


class Daemon:
    """The long-lived netguard process.

    Args:
        settings: The validated configuration.
        clock: Time source handed to the services (``SystemClock`` by default).
        open_services: Opens store, probes, tickets and IoT; the real services by default.
        load_settings: Reads and validates the configuration file again on reload
            (raises ``ConfigError``); ``None`` disables reloading.

    Example::

        async with Daemon(settings) as daemon:
            await daemon.serve(stop_event)

    Attributes:
        store, probes, tickets, iot: The running services, typed by the Protocols above
            (with the default opener they are ``Store``, ``ProbeService``,
            ``TicketService`` and ``IotService``; the IoT service runs even with MQTT
            disabled, for its outbox and sweeps).
        scheduler: The :class:`PollScheduler` (``stats()``, ``poll_now(target_id)``).
        metrics_url: Base URL of the HTTP endpoint, ``None`` when disabled.
        on_poll: Callables invoked (on the event loop) with every poll outcome, e.g. by the
            demo's live view. They must not block; exceptions are logged and ignored.
    """

    def __init__(self, settings: Settings, *, clock: Clock | None = None,
                 open_services: ServiceOpener | None = None,
                 load_settings: Callable[[], Settings] | None = None) -> None:
        self.settings = settings
        self._load_settings = load_settings
        self._reload_requested = asyncio.Event()
        self.reloads: dict[str, int] = {"success": 0, "error": 0}
        self.last_reload_ok = True
        self.clock: Clock = clock or SystemClock()
        self._open_services = open_services or _default_opener
        self._stack: AsyncExitStack | None = None
        self._services: Services | None = None
        self._http: MetricsServer | None = None
        self.metrics_url: str | None = None
        self.on_poll: list[PollListener] = []
        daemon = settings.daemon
        self.scheduler = PollScheduler(
            settings.targets, self._poll, jitter_seconds=daemon.poll_jitter_seconds,
            misfire_grace_seconds=daemon.misfire_grace_seconds,
            max_concurrency=daemon.max_concurrent_polls)
        self.clock_watch = ClockWatch(self.clock, daemon.clock_step_threshold_seconds)
        self._backlog: deque[FaultEvent] = deque()
        self._ticket_counts: TicketCountsView | None = None
        self._started_at = time.time()
        self.last_reload_success_at = self._started_at
        self._stopping_since: float | None = None
        self.sweep_errors = 0
        self.events_dropped = 0
        self.events_handled = 0
        self.events_rejected = 0
        self._head_failures = 0

    # -- services ------------------------------------------------------------------------

    def _require(self) -> Services:
        if self._services is None:
            raise RuntimeError("Daemon used outside `async with`")
        return self._services

    @property
    def store(self) -> StorePort:
        """The store."""
        return self._require().store

    @property
    def probes(self) -> ProbesPort:
        """The probe service."""
        return self._require().probes

    @property
    def tickets(self) -> TicketsPort:
        """The ticket service."""
        return self._require().tickets

    @property
    def iot(self) -> IotPort | None:
        """The IoT service (``None`` only when an opener provides none)."""
        return self._require().iot

    # -- startup -------------------------------------------------------------------------

    async def __aenter__(self) -> Daemon:
        started = time.monotonic()
        stack = AsyncExitStack()
        await stack.__aenter__()
        try:
            self._services = await self._open_services(self.settings, self.clock, stack,
                                                       self.scheduler.poll_now)
            await self._refresh_ticket_counts()
            if self.settings.metrics.enabled:
                self._http = await stack.enter_async_context(
                    MetricsServer(self.settings.metrics, self.metrics_snapshot, self.readiness))
                self.metrics_url = self._http.url
        except BaseException as exc:
            await stack.__aexit__(type(exc), exc, exc.__traceback__)
            self._services = None
            raise
        self._stack = stack
        log.info("netguard started", extra={
            "targets": len(self.settings.targets),
            "startup_seconds": round(time.monotonic() - started, 3),
            "metrics_url": self.metrics_url or "disabled"})
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        stack, self._stack = self._stack, None
        if stack is None:
            return
        budget = self.settings.daemon.shutdown_timeout_seconds
        spent = 0.0 if self._stopping_since is None else time.monotonic() - self._stopping_since
        try:
            # The whole shutdown stays within its budget (systemd's stop timeout is set
            # from it), so closing the services gets what the polls left over.
            async with asyncio.timeout(max(budget - spent, 1.0)):
                # Whatever is still queued for the ticket service gets one last chance.
                with contextlib.suppress(Exception):
                    await self._drain_backlog()
                await stack.__aexit__(exc_type, exc, tb)
        except TimeoutError:
            log.exception("services did not close within the shutdown timeout",
                      extra={"timeout_seconds": budget, "undelivered_events": self.backlog})
        self._services = None
        self.metrics_url = None
        log.info("netguard stopped")

    # -- serve ---------------------------------------------------------------------------

    async def serve(self, stop: asyncio.Event) -> None:
        """Poll, sweep and serve metrics until ``stop`` is set, then stop polling gracefully.

        Running polls get up to 80% of ``daemon.shutdown_timeout_seconds`` to finish
        (their fault events still reach the ticket service); the rest is cancelled. The
        services themselves close when the ``async with`` block exits.
        """
        self._require()
        budget = self.settings.daemon.shutdown_timeout_seconds
        self.scheduler.start()
        try:
            async with asyncio.TaskGroup() as tg:
                tg.create_task(self._sweep_loop(stop), name="netguard[daemon].sweeps")
                tg.create_task(self._reload_loop(stop), name="netguard[daemon].reload")
                await stop.wait()
                # Wakes the reload loop so it ends; a reload under way finishes first
                # (cutting it off could leave a half-switched probe service).
                self._reload_requested.set()
        finally:
            self._stopping_since = time.monotonic()
            log.info("shutting down", extra={"inflight_polls": self.scheduler.inflight})
            await self.scheduler.stop(budget * 0.8)

    async def _sweep_loop(self, stop: asyncio.Event) -> None:
        interval = self.settings.daemon.sweep_interval_seconds
        while not stop.is_set():
            await self.sweep()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(interval):
                    await stop.wait()

    # -- reload --------------------------------------------------------------------------

    def request_reload(self) -> None:
        """Ask for a configuration reload (the SIGHUP handler calls this).

        Requests made while a reload runs are merged into one more reload afterwards;
        requests before :meth:`serve` starts are handled once it does.
        """
        self._reload_requested.set()

    async def _reload_loop(self, stop: asyncio.Event) -> None:
        while True:
            await self._reload_requested.wait()
            if stop.is_set():
                return
            self._reload_requested.clear()
            await self.reload()

    async def reload(self) -> bool:
        """Read the configuration file again and apply what can change live.

        An invalid file is logged (file and problem paths), counted in
        ``netguard_config_reloads_total{result="error"}``, and the daemon keeps running on
        the configuration it has. A valid one applies the target inventory (new targets
        are polled, removed ones dropped, changed ones re-created with their new
        interval, credentials and thresholds), the logging section and the ticket
        settings; changed options that need a restart are logged and kept as they run.

        Returns:
            True if the file was valid and applied.
        """
        if self._load_settings is None:
            log.warning("configuration reload is not available for this daemon")
            return False
        try:
            loaded = await asyncio.to_thread(self._load_settings)
        except ConfigError as exc:
            self._reload_failed()
            log.error("configuration reload failed; keeping the running configuration",  # noqa: TRY400 - the problems say it all; a traceback would only add noise
                      extra={"config": exc.source, "problems": "; ".join(exc.problems)})
            return False
        except Exception:
            self._reload_failed()
            log.exception("configuration reload failed; keeping the running configuration")
            return False
        from netguard.logsetup import SECRETS, collect_secrets

        SECRETS.add(collect_secrets(loaded))
        plan = plan_reload(self.settings, loaded)
        try:
            await self._apply(plan)
        except Exception:
            self._reload_failed()
            log.exception("applying the reloaded configuration failed; "
                          "keeping the running configuration")
            return False
        self.reloads["success"] += 1
        self.last_reload_ok = True
        self.last_reload_success_at = time.time()
        log.info("configuration reloaded", extra={
            "targets_added": _id_list(plan.added), "targets_removed": _id_list(plan.removed),
            "targets_changed": _id_list(plan.changed), "logging_changed": plan.logging_changed,
            "tickets_changed": plan.tickets_changed})
        return True

    def _reload_failed(self) -> None:
        self.reloads["error"] += 1
        self.last_reload_ok = False

    async def _apply(self, plan: ReloadPlan) -> None:
        services = self._require()
        new = plan.settings
        needs_restart = list(plan.needs_restart)
        if plan.tickets_changed:
            if services.make_tickets is not None:
                services.tickets = services.make_tickets(new.tickets)
            else:
                needs_restart.append("tickets")
                new = new.model_copy(update={"tickets": self.settings.tickets})
        if plan.targets_changed:
            if services.retarget is None:
                needs_restart.append("targets")
                new = new.model_copy(update={"targets": self.settings.targets})
            else:
                def switch() -> None:
                    self.scheduler.update_targets(new.targets)

                await services.retarget(new.targets, switch,
                                        new.daemon.shutdown_timeout_seconds)
                if new.daemon.trap_listen:
                    needs_restart.append("targets (trap receiver)")
        if plan.logging_changed:
            from netguard.logsetup import configure_logging

            configure_logging(new.logging.level, new.logging.format)
        self.settings = new
        if needs_restart:
            log.warning("configuration changes need a restart; running values kept",
                        extra={"options": ", ".join(needs_restart)})

    async def sweep(self) -> None:
        """One round of periodic work; a failing part is logged, counted and skipped.

        Retries fault events the store refused earlier, runs the ticket sweep
        (auto-resolve, SLA overdue), the IoT sweep (offline sensors, outbox retries,
        retention) and refreshes the ticket counts the metrics export. A step of the wall
        clock since the last sweep is logged first and re-baselines what compares wall
        stamps with "now", so the sweep does not act on it.
        """
        steps: list[tuple[str, Callable[[], Awaitable[object]]]] = [
            ("clock", self._check_clock),
            ("fault backlog", self._drain_backlog),
            ("tickets", self.tickets.sweep),
        ]
        iot = self.iot
        if iot is not None:
            steps.append(("iot", iot.sweep))
        steps.append(("ticket counts", self._refresh_ticket_counts))
        for name, step in steps:
            try:
                await step()
            except Exception:
                self.sweep_errors += 1
                log.exception("sweep failed", extra={"sweep": name})

    async def _check_clock(self) -> None:
        step = self.clock_watch.check()
        if not step:
            return
        log.warning("wall clock stepped; polling is unaffected (it runs on the monotonic "
                    "clock)", extra={"step_seconds": round(step, 3)})
        iot = self.iot
        if iot is not None:
            await iot.on_clock_step(step)

    # -- polling -------------------------------------------------------------------------

    async def _poll(self, target_id: str) -> TargetView:
        outcome = await self.probes.poll(target_id)
        if outcome.events:
            await self._deliver(outcome.events)
        for listener in self.on_poll:
            try:
                listener(outcome)
            except Exception:
                log.exception("poll listener failed")
        return outcome.status

    async def _deliver(self, events: Sequence[FaultEvent]) -> None:
        # Events for one fault must reach the tickets in order, so once anything waits in
        # the backlog, new events queue behind it instead of overtaking.
        if self._backlog:
            self._queue(events)
            return
        for i, event in enumerate(events):
            try:
                await self.tickets.handle(event)
                self.events_handled += 1
            except Exception:
                log.exception("ticket service refused a fault event; will retry",
                              extra={"fault": str(event.key)})
                self._queue(events[i:])
                return

    def _queue(self, events: Sequence[FaultEvent]) -> None:
        for event in events:
            if len(self._backlog) >= MAX_EVENT_BACKLOG:
                dropped = self._backlog.popleft()
                self.events_dropped += 1
                if (self.events_dropped - 1) % DROP_LOG_EVERY == 0:
                    log.error("fault event backlog is full; dropping the oldest events",
                              extra={"fault": str(dropped.key),
                                     "dropped_total": self.events_dropped,
                                     "backlog_limit": MAX_EVENT_BACKLOG})
            self._backlog.append(event)

    async def _drain_backlog(self) -> None:
        while self._backlog:
            event = self._backlog[0]
            try:
                await self.tickets.handle(event)
            except Exception as exc:
                if not await self._is_poison(event, exc):
                    raise
                self._backlog.popleft()
                continue
            self._backlog.popleft()
            self._head_failures = 0
            self.events_handled += 1

    async def _is_poison(self, event: FaultEvent, exc: Exception) -> bool:
        """Whether the backlog's head is an event the ticket store will never accept.

        Events wait in order, so one the database refuses while it answers (a site name
        too long for its column, say) would hold every later event behind it for good.
        An outage must drop nothing: transient errors and a store that does not answer
        keep the event.
        """
        if isinstance(exc, TransientError | OSError) or not await self.store.ping():
            self._head_failures = 0
            return False
        self._head_failures += 1
        if self._head_failures < POISON_EVENT_ATTEMPTS:
            return False
        self._head_failures = 0
        self.events_rejected += 1
        log.error("the ticket store keeps refusing a fault event while the database "
                  "answers; set aside so that later events are not held behind it",
                  exc_info=exc, extra={"fault": str(event.key), "event": repr(event)})
        return True

    @property
    def backlog(self) -> int:
        """Fault events waiting for the ticket service."""
        return len(self._backlog)

    # -- metrics and health ------------------------------------------------------------

    async def _refresh_ticket_counts(self) -> None:
        self._ticket_counts = await self.tickets.counts()

    def metrics_snapshot(self) -> MetricsSnapshot:
        """What ``/metrics`` exports now: references to immutable snapshots only."""
        services = self._require()
        stats = replace(self.scheduler.stats(), sweep_errors=self.sweep_errors,
                        config_reloads=dict(self.reloads),
                        config_last_reload_successful=self.last_reload_ok,
                        config_last_reload_success=self.last_reload_success_at,
                        fault_event_backlog=len(self._backlog),
                        fault_events_dropped=self.events_dropped,
                        fault_events_rejected=self.events_rejected,
                        clock_steps={"forward": self.clock_watch.forward,
                                     "backward": self.clock_watch.backward})
        return MetricsSnapshot(
            targets=services.probes.statuses(),
            tickets=self._ticket_counts,
            iot=services.iot.snapshot() if services.iot is not None else None,
            daemon=stats,
            started_at=self._started_at,
        )

    async def readiness(self) -> dict[str, bool]:
        """Named readiness checks: ``store``, ``scheduler`` and (with MQTT) ``broker``."""
        services = self._require()
        checks = {"scheduler": self.scheduler.running}
        try:
            async with asyncio.timeout(READY_TIMEOUT_SECONDS):
                checks["store"] = await services.store.ping()
        except TimeoutError:
            checks["store"] = False
        if services.iot is not None and self.settings.iot.mqtt.enabled:
            checks["broker"] = services.iot.mqtt_connected
        return checks


# A reload of a big estate may change thousands of targets; the log names the first few.
_LOGGED_IDS = 20


def _id_list(ids: Sequence[str]) -> str:
    shown = ",".join(ids[:_LOGGED_IDS])
    return shown if len(ids) <= _LOGGED_IDS else f"{shown},... ({len(ids)} in all)"
