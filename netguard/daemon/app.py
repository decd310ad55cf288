"""The composition root: startup, serve, graceful shutdown.

:class:`Daemon` opens the store, the probe, ticket and IoT services and the HTTP endpoint
(startup, in ``async with``), then :meth:`Daemon.serve` runs the poll scheduler, the
fault-event writer (:mod:`netguard.daemon.faultwriter`) and the periodic sweeps under one
``TaskGroup`` until asked to stop, and finally shuts down within
``daemon.shutdown_timeout_seconds``: running polls get most of that budget to finish and
hand their fault events over, then the services close (the IoT service drains its outbox
and event log on exit). ``only=Part.INTAKE`` runs the store and the IoT service alone.

On SIGHUP (:meth:`Daemon.request_reload`) the configuration file is read again; see
:meth:`Daemon.reload` and :mod:`netguard.daemon.reload` for what applies live.

The services are reached through small Protocols (:mod:`netguard.daemon.ports`), so the
daemon's own behaviour is tested with simple stand-ins; the real services are opened in
:mod:`netguard.daemon.wiring`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from contextlib import AsyncExitStack
from dataclasses import replace
from types import TracebackType

from netguard.clock import Clock, ClockWatch, SystemClock
from netguard.config import Settings
from netguard.daemon import wiring
from netguard.daemon.backlog import FaultBacklog, fault_journal_path
from netguard.daemon.clustering import ClusterRole
from netguard.daemon.faultwriter import STORE_PROBE_SECONDS, FaultWriter
from netguard.daemon.heap import estate_filling, frozen_heap, keep_settled, refreeze
from netguard.daemon.http import MetricsServer
from netguard.daemon.outage import Outage
from netguard.daemon.parts import Part
from netguard.daemon.ports import (
    IotPort,
    PollListener,
    ProbesPort,
    ServiceOpener,
    Services,
    StorePort,
    TicketsPort,
)
from netguard.daemon.reload import ReloadPlan, plan_reload
from netguard.daemon.scheduler import PollScheduler
from netguard.errors import ConfigError
from netguard.logsetup import SECRETS, collect_secrets, configure_logging
from netguard.metrics import MetricsSnapshot, TargetView, TicketCountsView
from netguard.store.health import bounded, describe_error, store_wide_reason

log = logging.getLogger(__name__)

class Daemon:
    """The long-lived netguard process.

    Args:
        settings: The validated configuration.
        clock: Time source handed to the services (``SystemClock`` by default).
        open_services: Opens store, probes, tickets and IoT; the real services by default.
        load_settings: Reads and validates the configuration file again on reload
            (raises ``ConfigError``); ``None`` disables reloading.
        only: Run one part alone (:class:`~netguard.daemon.parts.Part`): ``INTAKE`` runs
            the store and the IoT service (MQTT intake, outbox, sweeps) without polling or
            tickets. ``None`` runs everything.

    Example::

        async with Daemon(settings) as daemon:
            await daemon.serve(stop_event)

    Attributes:
        store, probes, tickets, iot: The running services, typed by the ports in
            :mod:`netguard.daemon.ports` (with the default opener they are ``Store``,
            ``ProbeService``, ``TicketService`` and ``IotService``; the IoT service runs
            even with MQTT disabled, for its outbox and sweeps).
        scheduler: The :class:`PollScheduler` (``stats()``, ``poll_now(target_id)``).
        cluster: The :class:`ClusterRole` with ``cluster.enabled`` (else ``None``).
        metrics_url: Base URL of the HTTP endpoint, ``None`` when disabled.
        on_poll: Callables invoked (on the event loop) with every poll outcome, e.g. by the
            demo's live view. They must not block; exceptions are logged and ignored.
    """

    def __init__(self, settings: Settings, *, clock: Clock | None = None,
                 open_services: ServiceOpener | None = None,
                 load_settings: Callable[[], Settings] | None = None,
                 only: Part | None = None) -> None:
        self.settings = settings
        self.only = only
        self._load_settings = load_settings
        self._reload_requested = asyncio.Event()
        self.reloads: dict[str, int] = {"success": 0, "error": 0}
        self.last_reload_ok = True
        self.clock: Clock = clock or SystemClock()
        self._open_services = open_services or (
            wiring.open_intake_services if only is Part.INTAKE else wiring.open_services)
        self._stack: AsyncExitStack | None = None
        self._services: Services | None = None
        self._http: MetricsServer | None = None
        self.metrics_url: str | None = None
        self.on_poll: list[PollListener] = []
        daemon = settings.daemon
        self.cluster: ClusterRole | None = None  # it sets the owned targets once joined
        self.scheduler = PollScheduler(
            () if only or settings.cluster.enabled else settings.targets, self._poll,
            jitter_seconds=daemon.poll_jitter_seconds,
            misfire_grace_seconds=daemon.misfire_grace_seconds,
            max_concurrency=daemon.max_concurrent_polls)
        self.clock_watch = ClockWatch(self.clock, daemon.clock_step_threshold_seconds)
        # Fault events go to the ticket store through one writer (none without tickets).
        self._faults = None if only is Part.INTAKE else FaultWriter(
            FaultBacklog(fault_journal_path(settings), memory_limit=daemon.fault_backlog_memory,
                         journal_limit=daemon.fault_journal_max_events),
            lambda: self.tickets, lambda: self.store,
            timeout=settings.store.operation_timeout_seconds, fenced=settings.cluster.enabled)
        self._ticket_counts: TicketCountsView | None = None
        self._started_at = time.time()
        self.last_reload_success_at = self._started_at
        self._stopping_since: float | None = None
        self.sweep_errors = 0
        self._sweep_outage = Outage("sweeps fail: the store is unavailable")
        self.readiness_reasons: dict[str, str] = {}

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
        """The probe service.

        Raises:
            RuntimeError: This daemon runs without probes (``only=Part.INTAKE``).
        """
        probes = self._require().probes
        if probes is None:
            raise RuntimeError(f"this daemon runs only the {self.only}: no probes")
        return probes

    @property
    def tickets(self) -> TicketsPort:
        """The ticket service.

        Raises:
            RuntimeError: This daemon runs without tickets (``only=Part.INTAKE``).
        """
        tickets = self._require().tickets
        if tickets is None:
            raise RuntimeError(f"this daemon runs only the {self.only}: no tickets")
        return tickets

    @property
    def iot(self) -> IotPort | None:
        """The IoT service (``None`` only when an opener provides none)."""
        return self._require().iot

    @property
    def backlog(self) -> int:
        """Fault events waiting for the ticket service (in memory and in the journal)."""
        return 0 if self._faults is None else len(self._faults)

    @property
    def events_handled(self) -> int:
        """Fault events the ticket service took."""
        return 0 if self._faults is None else self._faults.handled

    @property
    def events_rejected(self) -> int:
        """Fault events set aside because the ticket store kept refusing their content."""
        return 0 if self._faults is None else self._faults.rejected

    @property
    def events_dropped(self) -> int:
        """Fault events dropped because the journal was full or could not be written."""
        return 0 if self._faults is None else self._faults.dropped

    @property
    def store_refusing(self) -> str:
        """Why the store refuses fault events while it does ("" when it takes them)."""
        return "" if self._faults is None else self._faults.refusing

    @property
    def store_write_failures(self) -> int:
        """Fault-event writes the store refused as a whole (read-only, full, down, ...)."""
        return 0 if self._faults is None else self._faults.write_failures

    # -- startup -------------------------------------------------------------------------

    async def __aenter__(self) -> Daemon:
        started = time.monotonic()
        stack = AsyncExitStack()
        await stack.__aenter__()
        try:
            self._services = await self._open_services(self.settings, self.clock, stack,
                                                       self.scheduler.poll_now)
            if self.settings.cluster.enabled:
                self.cluster = await stack.enter_async_context(
                    ClusterRole(self.settings, self._services, self.scheduler, self._faults))
            await self._refresh_ticket_counts()
            if self.settings.metrics.enabled:
                self._http = await stack.enter_async_context(
                    MetricsServer(self.settings.metrics, self.metrics_snapshot, self.readiness,
                                  lambda: self.readiness_reasons,
                                  ack=self._services.ack_pages,
                                  alertmanager=self._services.am_webhook))
                self.metrics_url = self._http.url
        except BaseException as exc:
            await stack.__aexit__(type(exc), exc, exc.__traceback__)
            self._services = None
            raise
        self._stack = stack
        log.info("netguard started", extra={
            "targets": 0 if self.only else len(self.settings.targets),
            "only": str(self.only or "all"),
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
        # Fault events the store did not take are kept for the next start.
        waiting = 0 if self._faults is None else self._faults.keep_for_next_start()
        # The whole shutdown stays within its budget (systemd's stop timeout is set from
        # it), so closing the services gets what the polls left over. (Cancelling a close
        # that waits on a hung database runs cleanup that talks to it again: the store's
        # connect and statement timeouts are what bound that.)
        try:
            async with asyncio.timeout(max(budget - spent, 1.0)):
                await stack.__aexit__(exc_type, exc, tb)
        except TimeoutError:
            log.error("services did not close within the shutdown timeout",  # noqa: TRY400 - expected on a hung database: one line, no traceback
                      extra={"timeout_seconds": budget, "fault_events_waiting": waiting})
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
        services = self._require()
        budget = self.settings.daemon.shutdown_timeout_seconds
        if services.probes is not None:
            self.scheduler.start()
        try:
            # Start-up objects live as long as the daemon: no full GC pass walks them, and
            # what polling keeps is frozen every few seconds (netguard/daemon/heap.py).
            with frozen_heap():
                settler = asyncio.create_task(keep_settled(
                    warming=lambda: estate_filling(self.scheduler.stats())),
                    name="netguard[daemon].heap")
                try:
                    await self._serve_loops(stop)
                finally:
                    settler.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await settler
        finally:
            if self._stopping_since is None:
                self._stopping_since = time.monotonic()
            await self.scheduler.stop(self._budget_left(budget * 0.5))

    async def _serve_loops(self, stop: asyncio.Event) -> None:
        async with asyncio.TaskGroup() as tg:
            loops = [tg.create_task(self._sweep_loop(stop), name="netguard[daemon].sweeps"),
                     tg.create_task(self._reload_loop(stop), name="netguard[daemon].reload")]
            if self._faults is not None:
                loops.append(tg.create_task(self._faults.run(), name="netguard[daemon].faults"))
            await stop.wait()
            await self._wind_down(*loops)

    def _budget_left(self, share: float) -> float:
        """Seconds left of the first ``share`` seconds of the shutdown budget."""
        since = self._stopping_since
        return max(0.0, share - (0.0 if since is None else time.monotonic() - since))

    async def _wind_down(self, sweeps: asyncio.Task[None], reload: asyncio.Task[None],
                         writer: asyncio.Task[None] | None = None) -> None:
        """Stop every loop within the shutdown budget, in the order that loses least.

        A sweep under way is cut at once (periodic work: the next start redoes it; with a
        hung database it could otherwise take minutes). Polls get half the budget to
        finish and hand their fault events over; a reload under way may finish within
        60%; the writer delivers what waits until 80% is spent, and the rest goes to the
        journal when the services close. The remaining 20% is for closing the services.
        """
        budget = self.settings.daemon.shutdown_timeout_seconds
        self._stopping_since = time.monotonic()
        log.info("shutting down", extra={"inflight_polls": self.scheduler.inflight,
                                         "fault_events_waiting": self.backlog,
                                         "budget_seconds": budget})
        sweeps.cancel()
        # Wakes the reload loop so it ends; a reload under way finishes first if it can
        # (cutting it off could leave the targets half applied).
        self._reload_requested.set()
        await self.scheduler.stop(self._budget_left(budget * 0.5))
        await asyncio.wait({reload}, timeout=self._budget_left(budget * 0.6))
        if not reload.done():
            log.warning("a configuration reload was still running at shutdown; cancelled")
            reload.cancel()
        if writer is not None and self._faults is not None:
            self._faults.finish()
            await asyncio.wait({writer}, timeout=self._budget_left(budget * 0.8))
            if not writer.done():
                log.warning("fault events still being delivered at shutdown; the rest go "
                            "to the journal", extra={"fault_events_waiting": self.backlog})
                writer.cancel()

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
        are polled, removed ones dropped, changed ones polled with their new settings;
        kept ones keep their state), the logging section and the ticket settings;
        changed options that need a restart are logged and kept as they run.

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
        if plan.tickets_changed and services.tickets is not None:
            if services.make_tickets is not None:
                services.tickets = services.make_tickets(new.tickets)
            else:
                needs_restart.append("tickets")
                new = new.model_copy(update={"tickets": self.settings.tickets})
        if plan.targets_changed and services.probes is not None:
            if self.cluster is not None:
                await self.cluster.set_targets(new.targets)  # only the owned ones
            else:
                await services.probes.update_targets(new.targets)
                # In the same step as the probes' switch: no poll of a removed target starts.
                self.scheduler.update_targets(new.targets)
            if new.daemon.trap_listen:
                needs_restart.append("targets (trap receiver)")
        if plan.logging_changed:
            configure_logging(new.logging.level, new.logging.format)
        self.settings = new
        refreeze()  # the old settings go; the new ones live as long as the old did
        if needs_restart:
            log.warning("configuration changes need a restart; running values kept",
                        extra={"options": ", ".join(needs_restart)})

    # -- sweeps --------------------------------------------------------------------------

    async def sweep(self) -> None:
        """One round of periodic work; a failing part is logged, counted and skipped.

        Runs the ticket sweep (auto-resolve, SLA overdue), the IoT sweep (offline
        sensors, outbox retries, retention) and refreshes the ticket counts the metrics
        export; a step of the wall clock since the last sweep is logged first and
        re-baselines what compares wall stamps with "now", so the sweep does not act on
        it. Each step is bounded by ``store.operation_timeout_seconds``. A store
        outage is logged as one line when it starts, then one a minute with a count,
        not a traceback per step and sweep.

        A ticket is only auto-resolved when its fault is clear where it matters: the
        probes do not hold it active and no fault event waits for the store (a
        ``FaultOpened`` the store refused would otherwise be overtaken by the resolve).
        """
        timeout = self.settings.store.operation_timeout_seconds
        failed = ""
        for name, step in self._sweep_steps():
            try:
                await bounded(step(), timeout)
            except Exception as exc:
                self.sweep_errors += 1
                reason = store_wide_reason(exc)
                if reason is None:
                    log.exception("sweep failed", extra={"sweep": name})
                else:
                    failed = failed or f"{name}: {describe_error(exc)}"
        if failed:
            self._sweep_outage.failed(failed)
        else:
            self._sweep_outage.recovered()

    def _sweep_steps(self) -> list[tuple[str, Callable[[], Awaitable[object]]]]:
        services = self._require()
        steps: list[tuple[str, Callable[[], Awaitable[object]]]] = [
            ("clock", self._check_clock)]
        tickets = services.tickets
        leads = self.cluster is None or self.cluster.is_leader  # single-run jobs
        if tickets is not None and leads:
            steps.append(("tickets", lambda: tickets.sweep(still_active=self._still_active())
                          if self.cluster is None else  # fenced by the leader's epoch
                          self.cluster.sweep_tickets(tickets, self._still_active())))
        if services.iot is not None and leads:
            steps.append(("iot", services.iot.sweep))
        if tickets is not None:
            steps.append(("ticket counts", self._refresh_ticket_counts))
        return steps

    def _still_active(self) -> Callable[[str], bool]:
        """Which fault keys are not clear now (for the ticket sweep's auto-resolve)."""
        probes = self._require().probes
        if self.backlog or probes is None:
            return lambda _key: True
        active = {str(fault.key) for fault in probes.active_faults()}
        return active.__contains__ if self.cluster is None else self.cluster.still_active(active)

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
        epoch = None if self.cluster is None else self.cluster.epoch  # fences its events
        outcome = await self.probes.poll(target_id)
        if outcome.events and self._faults is not None:
            # Handed over, never awaited: a slow or hung database must not stall polls.
            self._faults.hand_over(outcome.events, epoch)
        for listener in self.on_poll:
            try:
                listener(outcome)
            except Exception:
                log.exception("poll listener failed")
        return outcome.status

    # -- metrics and health ------------------------------------------------------------

    async def _refresh_ticket_counts(self) -> None:
        tickets = self._require().tickets
        if tickets is not None:
            self._ticket_counts = await tickets.counts()

    def metrics_snapshot(self) -> MetricsSnapshot:
        """What ``/metrics`` exports now: references to immutable snapshots only."""
        services = self._require()
        faults, notifier = self._faults, services.notifier
        stats = replace(self.scheduler.stats(), sweep_errors=self.sweep_errors,
                        config_reloads=dict(self.reloads),
                        config_last_reload_successful=self.last_reload_ok,
                        config_last_reload_success=self.last_reload_success_at,
                        fault_event_backlog=self.backlog,
                        fault_event_journal=0 if faults is None else faults.spilled,
                        fault_events_dropped=self.events_dropped,
                        fault_events_rejected=self.events_rejected,
                        fault_writer_errors=0 if faults is None else faults.errors,
                        store_write_failures=self.store_write_failures,
                        store_refusing_writes=bool(self.store_refusing),
                        clock_steps={"forward": self.clock_watch.forward,
                                     "backward": self.clock_watch.backward},
                        ack_links=dict(services.ack_pages.outcomes)
                        if services.ack_pages is not None else {},
                        ticket_notifications=dict(notifier.sent) if notifier else {},
                        ticket_notify_failures=notifier.failed_passes if notifier else 0,
                        alertmanager_webhooks=dict(services.am_webhook.outcomes)
                        if services.am_webhook is not None else {},
                        cluster=None if self.cluster is None else self.cluster.view())
        return MetricsSnapshot(
            targets=services.probes.statuses() if services.probes is not None else {},
            tickets=self._ticket_counts,
            iot=services.iot.snapshot() if services.iot is not None else None,
            daemon=stats,
            started_at=self._started_at,
            traps=services.trap_stats() if services.trap_stats is not None else None,
        )

    async def readiness(self) -> dict[str, bool]:
        """Named readiness checks: ``store``, ``scheduler``, ``broker``, ``cluster``.

        ``store`` is true only if the database takes writes: a write probe that is rolled
        back (PostgreSQL's ``transaction_read_only`` first), and the fault-event writer's
        last attempt was not refused (a full disk passes a rolled-back probe). Why not is
        in :attr:`readiness_reasons`, which ``/readyz`` reports. Without probes (the
        intake alone) there is no ``scheduler`` check; ``broker`` is there with MQTT, and
        ``cluster`` with ``cluster.enabled`` (false while fenced).
        """
        services = self._require()
        checks: dict[str, bool] = {}
        reasons: dict[str, str] = {}
        if services.probes is not None:
            checks["scheduler"] = self.scheduler.running
            if not checks["scheduler"]:
                reasons["scheduler"] = "the poll scheduler is not running"
        health = await services.store.writable(STORE_PROBE_SECONDS)
        if not health.writable:
            reasons["store"] = health.reason
        elif self.store_refusing and self._faults is not None:
            reasons["store"] = f"fault events refused: {self.store_refusing}"
            self._faults.wake()  # the probe wrote: let the writer try again now
        checks["store"] = "store" not in reasons
        if services.iot is not None and self.settings.iot.mqtt.enabled:
            checks["broker"] = services.iot.mqtt_connected
            if not checks["broker"]:
                reasons["broker"] = "not connected to the MQTT broker"
        if self.cluster is not None:  # ``cluster``: false while fenced
            self.cluster.readiness(checks, reasons)
        self.readiness_reasons = reasons
        return checks


# A reload of a big estate may change thousands of targets; the log names the first few.
_LOGGED_IDS = 20


def _id_list(ids: Sequence[str]) -> str:
    shown = ",".join(ids[:_LOGGED_IDS])
    return shown if len(ids) <= _LOGGED_IDS else f"{shown},... ({len(ids)} in all)"
