"""Open the real services for :class:`netguard.daemon.app.Daemon`, in dependency order.

Kept apart from the daemon so that the daemon's own behaviour can be tested with
stand-ins (:mod:`netguard.daemon.ports`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from contextlib import AsyncExitStack

from netguard.acklinks import AckLinks
from netguard.clock import Clock
from netguard.cluster.gate import LeaderGate
from netguard.config import Settings
from netguard.daemon.ackpage import AckPages
from netguard.daemon.amhook import AmWebhook
from netguard.daemon.continuity import stored_active_faults
from netguard.daemon.ports import Services
from netguard.iot.admin import IotAdmin
from netguard.iot.service import IotService
from netguard.notify.amintake import AmIntake
from netguard.notify.texts import TicketTexts
from netguard.notify.tickets import TicketNotifier
from netguard.probes.service import ProbeService
from netguard.probes.traps import TrapReceiver
from netguard.store import Store
from netguard.tickets.acklink import TicketLinkAcks
from netguard.tickets.config import TicketsConfig
from netguard.tickets.domain import format_ref
from netguard.tickets.service import TicketService

log = logging.getLogger(__name__)


async def open_services(settings: Settings, clock: Clock, stack: AsyncExitStack,
                        on_trap: Callable[[str], object]) -> Services:
    """Open store, probes, tickets, IoT and (when configured) the trap receiver on ``stack``.

    The stack closes them in reverse order: the trap receiver and the IoT service (which
    stops its intake and outbox) first, the store last.

    Raises:
        SchemaOutdatedError: The database needs ``netguard db upgrade``.
        StoreUnavailableError: The database cannot be reached at startup.
    """
    store = await stack.enter_async_context(Store(settings.store))
    notifiers: list[TicketNotifier] = []  # the ticket notifier, once it runs

    def ticket_service(config: TicketsConfig) -> TicketService:
        def changed() -> None:
            for notifier in notifiers:
                notifier.wake()
        return TicketService(store, config, clock=clock, on_change=changed)

    probes = await stack.enter_async_context(ProbeService(
        settings.targets, clock=clock, max_concurrency=settings.daemon.max_concurrent_polls,
        probes=settings.probes))
    if not settings.cluster.enabled:  # the cluster role does, for what it owns, once joined
        await _restore_faults(store, probes)
    gate = _leader_gate(settings)
    iot = await stack.enter_async_context(_iot_service(settings, store, clock, gate))
    traps = await _open_traps(settings, stack, on_trap) if settings.daemon.trap_listen else None
    # Entered after the IoT service, so it stops before the outbox it hands rows to.
    notifier = await _open_notifier(settings, store, iot, clock, stack)
    notifiers.extend([notifier] if notifier is not None else [])
    return Services(store=store, probes=probes, tickets=ticket_service(settings.tickets),
                    iot=iot, make_tickets=ticket_service, notifier=notifier,
                    trap_stats=traps.stats if traps is not None else None,
                    ack_pages=_ack_pages(settings, store, clock, tickets=True),
                    am_webhook=_am_webhook(settings, store, iot, clock), leader_gate=gate)


async def open_intake_services(settings: Settings, clock: Clock, stack: AsyncExitStack,
                               _on_trap: Callable[[str], object]) -> Services:
    """Open the store and the IoT service only (``netguard run --only intake``).

    Raises:
        SchemaOutdatedError: The database needs ``netguard db upgrade``.
        StoreUnavailableError: The database cannot be reached at startup.
    """
    store = await stack.enter_async_context(Store(settings.store))
    gate = _leader_gate(settings)
    iot = await stack.enter_async_context(_iot_service(settings, store, clock, gate))
    return Services(store=store, probes=None, tickets=None, iot=iot,
                    ack_pages=_ack_pages(settings, store, clock),
                    am_webhook=_am_webhook(settings, store, iot, clock), leader_gate=gate)


def _leader_gate(settings: Settings) -> LeaderGate | None:
    """With ``cluster.enabled``, the outbox delivers only on the leader (decision 18): a
    gate closed until the cluster role opens it, so nothing is sent before it knows."""
    return LeaderGate() if settings.cluster.enabled else None


def _iot_service(settings: Settings, store: Store, clock: Clock,
                 gate: LeaderGate | None) -> IotService:
    return IotService(
        settings.iot, store, shutdown_timeout=settings.daemon.shutdown_timeout_seconds,
        clock=clock, links=AckLinks.from_config(settings.ack_links),
        messages=settings.display.renderer(), outbox_active=gate,
        shared=settings.cluster.enabled)


async def _open_notifier(settings: Settings, store: Store, iot: IotService, clock: Clock,
                         stack: AsyncExitStack) -> TicketNotifier | None:
    """The ticket notifier, running, when ``notifications.routes`` are configured."""
    if not settings.notifications.routes:
        return None
    renderer = settings.display.renderer()
    labels = {t.id: dict(t.labels) for t in settings.targets}
    prefix = settings.tickets.id_prefix
    notifier = TicketNotifier(
        store, settings.notifications,
        texts=TicketTexts(renderer.language, renderer.timezone, renderer.overrides),
        ref=lambda ticket_id: format_ref(ticket_id, prefix), outbox=iot.outbox,
        labels=lambda target: labels.get(target, {}), clock=clock)
    log.info("ticket notifications on", extra={
        "routes": [r.name for r in settings.notifications.routes]})
    return await stack.enter_async_context(notifier)


def _ack_pages(settings: Settings, store: Store, clock: Clock, *, tickets: bool = False
               ) -> AckPages | None:
    # Ticket links are served only where tickets are (not by ``run --only intake``).
    acks = TicketLinkAcks(store, settings.tickets, clock=clock) if tickets else None
    return AckPages.from_config(settings.ack_links, IotAdmin(store, clock=clock), clock,
                                tickets=acks, language=settings.display.language,
                                timezone=settings.display.timezone)


def _am_webhook(settings: Settings, store: Store, iot: IotService,
                clock: Clock) -> AmWebhook | None:
    """``POST /alertmanager/webhook``, with ``notifications.alertmanager`` enabled; its
    messages go out through the IoT service's outbox worker."""
    config = settings.notifications.alertmanager
    if not config.enabled:
        return None
    intake = AmIntake(store, settings.notifications, settings.display.renderer(), clock,
                      lambda: iot.outbox)
    return AmWebhook(config, intake)


async def _restore_faults(store: Store, probes: ProbeService) -> None:
    """Seed the probes with the faults the store still holds active (see ``continuity``)."""
    try:
        faults = await stored_active_faults(store)
    except Exception:
        # The daemon still works without it; only faults that recovered while it was
        # down would keep their tickets open (as before this existed), so say so loudly.
        log.exception("could not read the active faults from the store; open tickets of "
                      "faults that recovered meanwhile will not resolve by themselves")
        return
    restored = probes.restore_active(faults)
    log.info("restored active faults from the ticket store",
             extra={"faults": restored, "unknown_targets": len(faults) - restored})


async def _open_traps(settings: Settings, stack: AsyncExitStack,
                      on_trap: Callable[[str], object]) -> TrapReceiver:
    def repoll(target_id: str, trap: str) -> None:
        # A linkDown/linkUp should not wait for the next interval: poll now.
        brought_forward = on_trap(target_id)
        log.info("trap received", extra={"target": target_id, "trap": trap,
                                         "repoll": bool(brought_forward)})

    assert settings.daemon.trap_listen is not None
    receiver = await stack.enter_async_context(
        TrapReceiver(settings.daemon.trap_listen, settings.targets, repoll))
    log.info("trap receiver listening", extra={"listen": settings.daemon.trap_listen})
    return receiver
