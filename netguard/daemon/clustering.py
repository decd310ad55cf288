"""The daemon's part in a cluster (``cluster.enabled``; docs/scale-out.md).

:class:`ClusterRole` runs a :class:`~netguard.cluster.node.ClusterNode` for the daemon
and applies what it decides:

- **Owned targets.** Whenever they change, the probe service and the scheduler switch to
  them in one step (``ProbeService.update_targets``, as a reload does): a target given
  up is no longer polled or exported, a target taken over starts fresh (no previous
  sample, so its first poll computes no rate and cannot spike a counter) and is seeded
  with the faults the ticket store still holds active for it, so the new owner
  continues them instead of raising them again or leaving their tickets open. The
  first switch after start-up seeds every owned target with the stored faults read
  then (not at start-up, before the join: a fault another instance opened meanwhile
  would be raised again).
  The fault events of a poll that ends after its target was given up are dropped: the
  new owner reports what it finds.
- **Poll grid.** The scheduler's slots sit on the database's clock
  (:mod:`netguard.cluster.handover`): a new owner polls a target one interval after the
  old owner's poll at the same place; but a target taken over from a member whose lease
  ran out, and whose last slot came after that expiry, is polled at once (the catch-up).
- **Leadership.** The daemon runs the ticket sweep and the IoT sweep only while
  :attr:`ClusterRole.is_leader`, and the outbox delivers only then (the services'
  ``leader_gate`` follows the leadership; decision 18).
- **Auto-resolve guard.** The leader's ticket sweep sees only its own targets' faults;
  for another instance's target it trusts the store (the owner wrote the clear).
- **Fencing.** Fault events carry the epoch their poll ran under
  (:attr:`ClusterRole.epoch`), and the ticket sweep the epoch it started under
  (:meth:`ClusterRole.sweep_tickets`): their transactions are refused once it is stale
  (:mod:`netguard.cluster.fence`). While fenced the instance is not ready
  (:meth:`ClusterRole.readiness`).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from types import TracebackType

from netguard.cluster.fence import EpochFence
from netguard.cluster.handover import grid_epoch, to_local
from netguard.cluster.leader import LeaderLock, leader_engine
from netguard.cluster.members import Epoch, MemberTable
from netguard.cluster.node import ClusterNode, ClusterView
from netguard.config import Settings
from netguard.daemon.continuity import stored_active_faults
from netguard.daemon.faultwriter import FaultWriter
from netguard.daemon.ports import Services, TicketsPort
from netguard.daemon.scheduler import PollScheduler
from netguard.errors import StaleEpochError
from netguard.probes.assess import ActiveFault
from netguard.probes.config import TargetConfig
from netguard.probes.service import ProbeService, TargetChanges
from netguard.store.db import Store
from netguard.store.health import bounded

log = logging.getLogger(__name__)


class ClusterRole:
    """Membership, owned targets and leadership of one daemon; an async context manager
    (entering joins the cluster and applies the first ownership, leaving leaves).

    Args:
        settings: The configuration (``cluster.enabled``, a PostgreSQL store).
        services: The opened services; ``store`` must be the real :class:`Store`.
        scheduler: The daemon's poll scheduler.
        faults: The fault-event writer, whose stale-write refusals this reports.
    """

    def __init__(self, settings: Settings, services: Services,
                 scheduler: PollScheduler, faults: FaultWriter | None = None) -> None:
        store = services.store
        if not isinstance(store, Store):
            raise TypeError("the cluster needs the PostgreSQL store")
        self._store = store
        self._services = services
        self._scheduler = scheduler
        self._faults = faults
        self.sweeps_refused = 0
        self._targets: list[TargetConfig] = list(settings.targets)
        self._first_switch = True
        # The heartbeat loop and a reload both switch the targets: one at a time.
        self._switching = asyncio.Lock()
        config = settings.cluster
        self._read_within = min(settings.store.operation_timeout_seconds,
                                config.lease_seconds / 2)
        self.node = ClusterNode(
            config, MemberTable(store.engine),
            LeaderLock(leader_engine(settings.store, config.member_id, config.lease_seconds)),
            [t.id for t in self._targets], on_owned=self._apply,
            timeout=settings.store.operation_timeout_seconds)
        if services.leader_gate is not None:
            self.node.add_leader_listener(services.leader_gate.set)
        if faults is not None:
            faults.only_for(self.node.owns)

    async def __aenter__(self) -> ClusterRole:
        await self.node.start()
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        await self.node.stop()

    @property
    def is_leader(self) -> bool:
        """Whether this instance runs the single-run sweeps now."""
        return self.node.is_leader

    @property
    def epoch(self) -> Epoch | None:
        """The registration this instance acts under now (a poll's fault events carry
        the one it started under)."""
        return self.node.epoch

    def view(self) -> ClusterView:
        """For ``/metrics``."""
        refused = dict(self._faults.stale_refused) if self._faults is not None else {}
        if self.sweeps_refused:
            refused["ticket_sweep"] = self.sweeps_refused
        return replace(self.node.view(), stale_writes_refused=refused)

    async def sweep_tickets(self, tickets: TicketsPort,
                            still_active: Callable[[str], bool]) -> object:
        """The leader's ticket sweep, fenced by the epoch it starts under: a sweep that a
        pause outlived (the lease ended, another instance leads) writes nothing more."""
        epoch = self.node.epoch
        if epoch is None:
            return None
        try:
            return await tickets.sweep(still_active=still_active, fence=EpochFence(epoch))
        except StaleEpochError as exc:
            if exc.final:
                self.sweeps_refused += 1
            log.warning("the ticket sweep stopped: this instance's cluster epoch is stale "
                        "or its lease is ending",
                        extra={"epoch": f"{exc.instance_id}:{exc.incarnation}",
                               "reason": exc.reason})
            return None

    def readiness(self, checks: dict[str, bool], reasons: dict[str, str]) -> None:
        """Add the ``cluster`` check (false while fenced) and, once any was refused, the
        last stale writes (``stale_writes``, which does not make it unready)."""
        node = self.node
        checks["cluster"] = not node.fenced
        if node.fenced:
            since = time.monotonic() - (node.fenced_since or time.monotonic())
            reasons["cluster"] = (
                f"cluster: fenced for {since:.0f}s: no heartbeat for a lease "
                f"({node.config.lease_seconds:g}s); this instance polls nothing and does "
                "not lead until a heartbeat goes through")
        if self._faults is not None and self._faults.stale_recent:
            total = sum(self._faults.stale_refused.values())
            reasons["stale_writes"] = (f"{total} stale fault events refused; last: "
                                       + "; ".join(self._faults.stale_recent))

    async def set_targets(self, targets: Sequence[TargetConfig]) -> None:
        """A reload changed the inventory: keep only the owned targets of the new one."""
        self._targets = list(targets)
        await self.node.set_targets([t.id for t in targets])
        # Ownership may be unchanged while the targets' settings changed.
        await self._apply(self.node.owned)

    def still_active(self, active: set[str]) -> Callable[[str], bool]:
        """The auto-resolve guard: the probes' view for owned targets, the store's (not
        active) for the others."""
        owned = set(self.node.owned)

        def check(key: str) -> bool:
            return key in active if key.split("|", 1)[0] in owned else False
        return check

    async def _apply(self, owned: Sequence[str]) -> None:
        async with self._switching:
            await self._switch(owned)

    async def _switch(self, owned: Sequence[str]) -> None:
        wanted = set(owned)
        targets = [t for t in self._targets if t.id in wanted]
        probes = self._services.probes
        if probes is None:
            return  # the intake alone: it only leads (or not)
        offset = self.node.clock.offset
        catch_up: dict[str, float] = {}
        if offset is not None:
            self._scheduler.align(grid_epoch(offset))
            catch_up = {t: to_local(expired, offset)
                        for t, expired in self.node.taken_over.items()}
        # Read before the switch: between the probes' switch and the scheduler's nothing
        # may wait, or the scheduler would start polls of targets the probes dropped. At
        # the first switch the probes hold every configured target, none polled yet and
        # none seeded: all that is owned is incoming.
        first, self._first_switch = self._first_switch, False
        incoming = wanted if first else wanted - set(probes.statuses())
        faults = await self._stored_faults(incoming) if incoming else []
        changes = await probes.update_targets(targets)
        if isinstance(probes, ProbeService) and isinstance(changes, TargetChanges):
            seeded = incoming if first else set(changes.added)
            restored = probes.restore_active(f for f in faults if f.key.target in seeded)
            if restored:
                log.info("continued the active faults of targets taken over",
                         extra={"faults": restored, "targets": len(seeded)})
        # In the same step as the probes' switch: no poll of a given-up target starts.
        caught = self._scheduler.update_targets(targets, catch_up=catch_up)
        if catch_up:
            log.info("took over targets of a member whose lease ran out; polling now those "
                     "whose last slot came after its expiry",
                     extra={"targets": len(catch_up), "catching_up": caught})

    async def _stored_faults(self, targets: set[str]) -> list[ActiveFault]:
        """The faults the store holds active for the targets about to be taken over."""
        try:
            # Bounded well inside the lease: the heartbeat loop waits for this.
            stored = await bounded(stored_active_faults(self._store), self._read_within)
            return [f for f in stored if f.key.target in targets]
        except Exception:
            log.exception("could not read the active faults of the targets taken over; "
                          "their open tickets resolve only if the fault is seen again")
            return []
