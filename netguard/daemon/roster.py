"""The probe service behind a target list that can change while the daemon runs.

``ProbeService`` polls a fixed set of targets. On a configuration reload that changes the
targets, :class:`ProbeRoster` opens a fresh service for the new list, switches polls over
to it in one step, and closes the old one once its running polls have finished.

What carries over: each kept target's last status is exported (``/metrics``) until the
new service has polled it, so a reload does not blank the dashboards; and each kept
target's *active* faults seed the new service (``ProbeService.restore_active``), so a
fault that recovers after the reload is cleared (and its ticket resolves) instead of
being forgotten. Faults only pending (not yet raised) start afresh.

Polls of the old service that finish after the switch may still open or clear a fault;
once the old service has drained, those late changes are applied to the new one too.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager, AsyncExitStack
from dataclasses import dataclass, field
from types import MappingProxyType, TracebackType
from typing import TYPE_CHECKING

from netguard.probes.config import TargetConfig

if TYPE_CHECKING:
    from netguard.faults import FaultKey
    from netguard.probes.assess import ActiveFault
    from netguard.probes.service import ProbeService
    from netguard.probes.state import PollOutcome, TargetStatus

log = logging.getLogger(__name__)


@dataclass(eq=False)
class _Generation:
    service: ProbeService
    stack: AsyncExitStack
    inflight: int = 0
    idle: asyncio.Event = field(default_factory=asyncio.Event)


class ProbeRoster:
    """Routes polls to the current probe service; replaces it when the targets change.

    Args:
        open_backend: Returns an async context manager giving a probe service for a
            target list (``lambda targets: ProbeService(targets, ...)``).
        targets: The targets at startup.
    """

    def __init__(
        self,
        open_backend: Callable[[Sequence[TargetConfig]],
                               AbstractAsyncContextManager[ProbeService]],
        targets: Sequence[TargetConfig],
    ) -> None:
        self._open_backend = open_backend
        self._targets = list(targets)
        self._current: _Generation | None = None
        self._retiring: set[_Generation] = set()
        # Kept targets' last status from the previous service, until the new one polls them.
        self._carried: dict[str, TargetStatus] = {}
        self._merged: tuple[Mapping[str, TargetStatus], Mapping[str, TargetStatus]] | None = None

    async def __aenter__(self) -> ProbeRoster:
        self._current = await self._open(self._targets)
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        generations = [*self._retiring, *([self._current] if self._current else [])]
        self._current = None
        self._retiring.clear()
        for generation in generations:
            await generation.stack.__aexit__(exc_type, exc, tb)

    async def _open(self, targets: Sequence[TargetConfig]
                    ) -> _Generation:
        stack = AsyncExitStack()
        await stack.__aenter__()
        try:
            service = await stack.enter_async_context(self._open_backend(targets))
        except BaseException as exc:
            await stack.__aexit__(type(exc), exc, exc.__traceback__)
            raise
        generation = _Generation(service, stack)
        generation.idle.set()
        return generation

    def _require(self) -> _Generation:
        if self._current is None:
            raise RuntimeError("ProbeRoster used outside `async with`")
        return self._current

    @property
    def targets(self) -> list[TargetConfig]:
        """The targets polled now."""
        return list(self._targets)

    def statuses(self) -> Mapping[str, TargetStatus]:
        """Every current target's latest status (an immutable snapshot, never blocks)."""
        base = self._require().service.statuses()
        if not self._carried:
            return base
        if self._merged is not None and self._merged[0] is base:
            return self._merged[1]
        merged = dict(base)
        for target_id, old in list(self._carried.items()):
            fresh = base.get(target_id)
            if fresh is None or fresh.last_poll_at is not None:
                del self._carried[target_id]
            else:
                merged[target_id] = old
        snapshot: Mapping[str, TargetStatus] = MappingProxyType(merged)
        self._merged = (base, snapshot)
        return snapshot

    def restore_active(self, faults: Iterable[FaultKey | ActiveFault]) -> int:
        """Seed the current service with faults still active elsewhere (open tickets).

        See ``ProbeService.restore_active``. Returns how many were seeded.
        """
        return self._require().service.restore_active(faults)

    def active_faults(self) -> list[ActiveFault]:
        """The faults the current service holds active (in memory, never blocks)."""
        return self._require().service.active_faults()

    async def poll(self, target_id: str) -> PollOutcome:
        """Poll one target with the current service.

        Raises:
            NotFoundError: The target is not in the current list.
        """
        generation = self._require()
        generation.inflight += 1
        generation.idle.clear()
        try:
            return await generation.service.poll(target_id)
        finally:
            generation.inflight -= 1
            if generation.inflight == 0:
                generation.idle.set()

    async def replace(self, targets: Sequence[TargetConfig], on_switch: Callable[[], None],
                      drain_timeout: float) -> None:
        """Poll ``targets`` from now on.

        Opens a service for the new list, then switches polls to it and calls
        ``on_switch()`` in the same step (no poll starts in between, so the scheduler can be
        updated there). The old service's running polls get ``drain_timeout`` seconds to
        finish before it is closed.
        """
        old = self._require()
        new = await self._open(targets)
        kept = [t.id for t in targets]
        faults = old.service.active_faults(kept)
        new.service.restore_active(faults)
        seeded = {f.key for f in faults}
        previous = old.service.statuses()
        self._carried = {t.id: previous[t.id] for t in targets if t.id in previous}
        self._merged = None
        self._current = new
        self._targets = list(targets)
        on_switch()
        self._retiring.add(old)
        try:
            async with asyncio.timeout(drain_timeout):
                await old.idle.wait()
        except TimeoutError:
            log.warning("closing the previous probe service with polls still running",
                        extra={"polls": old.inflight})
        self._retiring.discard(old)
        self._reconcile(old.service, new.service, kept, seeded)
        await old.stack.aclose()

    @staticmethod
    def _reconcile(old: ProbeService, new: ProbeService, kept: Sequence[str],
                   seeded: set[FaultKey]) -> None:
        """Apply fault changes the old service's last polls made after the switch."""
        final = {f.key: f for f in old.active_faults(kept)}
        opened = [f for key, f in final.items() if key not in seeded]
        cleared = [key for key in seeded if key not in final]
        if opened or cleared:
            new.restore_active(opened)
            new.release_active(cleared)
            log.info("carried fault changes from the previous probe service's last polls",
                     extra={"opened": len(opened), "cleared": len(cleared)})
