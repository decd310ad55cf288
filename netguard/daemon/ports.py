"""The daemon's view of the services it runs: small Protocols (the "ports") and the bundle.

The daemon reaches the store and the probe, ticket and IoT services only through these, so
its own behaviour is tested with simple stand-ins; :mod:`netguard.daemon.wiring` opens the
real services. Kept apart from the daemon so that the wiring and the daemon both depend on
it and not on each other.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from contextlib import AsyncExitStack
from dataclasses import dataclass
from typing import Protocol

from netguard.clock import Clock
from netguard.cluster.fence import EpochFence
from netguard.cluster.gate import LeaderGate
from netguard.config import Settings
from netguard.daemon.ackpage import AckPages
from netguard.daemon.amhook import AmWebhook
from netguard.faults import FaultEvent, FaultKey
from netguard.metrics import IotView, TargetView, TicketCountsView, TrapStatsView
from netguard.probes.config import TargetConfig
from netguard.tickets.config import TicketsConfig


class PollOutcomeView(Protocol):
    """What one poll produced."""

    @property
    def status(self) -> TargetView: ...
    @property
    def events(self) -> Sequence[FaultEvent]: ...


class ActiveFaultView(Protocol):
    """A fault the probes hold active."""

    @property
    def key(self) -> FaultKey: ...


class ProbesPort(Protocol):
    """The probe service (``netguard.probes.service.ProbeService``)."""

    def statuses(self) -> Mapping[str, TargetView]: ...
    async def poll(self, target_id: str) -> PollOutcomeView: ...
    def active_faults(self) -> Sequence[ActiveFaultView]: ...
    async def update_targets(self, targets: Sequence[TargetConfig]) -> object: ...


class TicketsPort(Protocol):
    """The ticket service (``netguard.tickets.service.TicketService``); ``fence`` (a
    cluster member's epoch check) ends each of its write transactions when given."""

    async def handle(self, event: FaultEvent, *, fence: EpochFence | None = None) -> object: ...
    async def sweep(self, *, still_active: Callable[[str], bool] | None = None,
                    fence: EpochFence | None = None) -> object: ...
    async def counts(self) -> TicketCountsView: ...


class IotPort(Protocol):
    """The door-sensor service (``netguard.iot.service.IotService``)."""

    async def sweep(self) -> object: ...
    async def on_clock_step(self, step_seconds: float) -> None: ...
    def snapshot(self) -> IotView: ...
    @property
    def mqtt_connected(self) -> bool: ...


class NotifierPort(Protocol):
    """The ticket notifier (``netguard.notify.tickets.TicketNotifier``)."""

    @property
    def sent(self) -> Mapping[tuple[str, str], int]: ...
    @property
    def failed_passes(self) -> int: ...


class StoreHealthView(Protocol):
    """The outcome of a write probe (``netguard.store.health.StoreHealth``)."""

    @property
    def writable(self) -> bool: ...
    @property
    def reason(self) -> str: ...


class StorePort(Protocol):
    """The database handle."""

    async def writable(self, within: float | None = None) -> StoreHealthView: ...


@dataclass
class Services:
    """The opened services the daemon runs (each already entered on the exit stack).

    ``probes`` and ``tickets`` are ``None`` when the daemon runs only the intake.
    ``make_tickets`` lets a configuration reload apply the ticket settings live; ``None``
    means they need a restart. The probes change their target list in place.
    """

    store: StorePort
    probes: ProbesPort | None
    tickets: TicketsPort | None
    iot: IotPort | None = None
    make_tickets: Callable[[TicketsConfig], TicketsPort] | None = None
    # The trap receiver's counters, when one listens.
    trap_stats: Callable[[], TrapStatsView] | None = None
    # The ``/ack/<token>`` pages, with ``ack_links`` enabled.
    ack_pages: AckPages | None = None
    # The ticket notifier, with ``notifications.routes`` configured.
    notifier: NotifierPort | None = None
    # ``POST /alertmanager/webhook``, with ``notifications.alertmanager`` enabled.
    am_webhook: AmWebhook | None = None
    # With ``cluster.enabled``: the outbox delivers while it is open (the leader only).
    leader_gate: LeaderGate | None = None


ServiceOpener = Callable[[Settings, Clock, AsyncExitStack, Callable[[str], object]],
                         Awaitable[Services]]
"""Opens the services on the exit stack; the last argument is the trap re-poll hook."""

PollListener = Callable[[PollOutcomeView], None]
