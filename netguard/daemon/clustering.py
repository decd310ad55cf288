"""The daemon's part in a cluster (``cluster.enabled``; docs/scale-out.md).

:class:`ClusterRole` runs a :class:`~netguard.cluster.node.ClusterNode` for the daemon
and applies what it decides:

- **Owned targets.** Whenever they change, the probe service and the scheduler switch to
  them in one step (``ProbeService.update_targets``, as a reload does): a target given
  up is no longer polled or exported, a target taken over starts fresh (no previous
  sample, so its first poll computes no rate and cannot spike a counter) and is seeded
  with the faults the ticket store still holds active for it, so the new owner
  continues them instead of raising them again or leaving their tickets open.
- **Leadership.** The daemon runs the ticket sweep and the IoT sweep only while
  :attr:`ClusterRole.is_leader`, and the outbox delivers only then (the services'
  ``leader_gate`` follows the leadership; decision 18).
- **Auto-resolve guard.** The leader's ticket sweep sees only its own targets' faults;
  for another instance's target it trusts the store (the owner wrote the clear).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from types import TracebackType

from netguard.cluster.leader import LeaderLock, leader_engine
from netguard.cluster.members import MemberTable
from netguard.cluster.node import ClusterNode, ClusterView
from netguard.config import Settings
from netguard.daemon.continuity import stored_active_faults
from netguard.daemon.ports import Services
from netguard.daemon.scheduler import PollScheduler
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
    """

    def __init__(self, settings: Settings, services: Services,
                 scheduler: PollScheduler) -> None:
        store = services.store
        if not isinstance(store, Store):
            raise TypeError("the cluster needs the PostgreSQL store")
        self._store = store
        self._services = services
        self._scheduler = scheduler
        self._targets: list[TargetConfig] = list(settings.targets)
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

    def view(self) -> ClusterView:
        """For ``/metrics``."""
        return self.node.view()

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
        # Read before the switch: between the probes' switch and the scheduler's nothing
        # may wait, or the scheduler would start polls of targets the probes dropped.
        incoming = wanted - set(probes.statuses())
        faults = await self._stored_faults(incoming) if incoming else []
        changes = await probes.update_targets(targets)
        if isinstance(probes, ProbeService) and isinstance(changes, TargetChanges):
            added = set(changes.added)
            restored = probes.restore_active(f for f in faults if f.key.target in added)
            if restored:
                log.info("continued the active faults of targets taken over",
                         extra={"faults": restored, "targets": len(added)})
        # In the same step as the probes' switch: no poll of a given-up target starts.
        self._scheduler.update_targets(targets)

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
