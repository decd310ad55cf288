"""One instance's part in the cluster: heartbeat, ownership, leadership and fencing.

:class:`ClusterNode` runs one round (:meth:`ClusterNode.step`) every
``cluster.heartbeat_seconds`` on the monotonic clock:

1. heartbeat (join again under a new incarnation if the registration lapsed);
2. read the live members and compute the targets this instance owns
   (:mod:`netguard.cluster.rendezvous`); tell the owner listener when they change. After
   a (re)join it gains nothing until the others have let go of its targets
   (:class:`~netguard.cluster.handover.Settle`). The heartbeat also reads the database's
   clock (:attr:`ClusterNode.clock`), which places the poll grid, and the members whose
   lease ran out: the listener finds the targets gained from them, with their expiry, in
   :attr:`ClusterNode.taken_over` (the catch-up);
3. take or keep the leader lock (:mod:`netguard.cluster.leader`); tell the leader
   listeners when leadership changes.

**Fencing.** The instance counts its lease from the start of its last successful
heartbeat (the row's ``heartbeat_at`` is later, so the others cannot take its targets
before it gives them up). If it cannot heartbeat for a whole lease (the database is
unreachable, or the loop was stalled), it is *out*: it owns nothing (polling stops) and
gives up the leader lock, until a heartbeat goes through again. The loop wakes at the
fence deadline even between heartbeats, and a heartbeat is never waited on past it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TypeVar

from netguard.cluster.config import ClusterConfig
from netguard.cluster.handover import ClockOffset, Settle, taken_from_lapsed
from netguard.cluster.leader import LeaderLock
from netguard.cluster.members import Epoch, Heartbeat, MemberTable
from netguard.cluster.rendezvous import owned_by
from netguard.daemon.outage import Outage
from netguard.store.health import bounded, describe_error

log = logging.getLogger(__name__)

OwnedListener = Callable[[tuple[str, ...]], Awaitable[None]]
LeaderListener = Callable[[bool], None]
_TASK = "netguard[cluster].heartbeat"
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class ClusterView:
    """The node's state for ``/metrics``.

    Attributes:
        members: Live members as of the last heartbeat (0 while fenced).
        owned_targets: Targets this instance owns and polls.
        leader: Whether it leads (runs the single-run sweeps).
        fenced: Whether it is out for want of a heartbeat.
        stale_writes_refused: Writes refused for a stale epoch, by kind (filled in by
            the daemon's :class:`~netguard.daemon.clustering.ClusterRole`).
    """

    members: int
    owned_targets: int
    leader: bool
    fenced: bool
    stale_writes_refused: Mapping[str, int] = field(default_factory=dict)


class ClusterNode:
    """This instance's membership, owned targets and leadership.

    Args:
        config: The ``cluster:`` section (enabled).
        table: The members table.
        lock: The leader lock.
        targets: The ids of every configured target.
        on_owned: Awaited with the owned target ids whenever they change (and once after
            the first heartbeat). It should not raise; if it does, it is logged and
            called again at the next change.
        timeout: Bound on one database call (``store.operation_timeout_seconds``).
        monotonic: The monotonic clock (tests pass their own).
    """

    def __init__(self, config: ClusterConfig, table: MemberTable, lock: LeaderLock,
                 targets: Sequence[str], *, on_owned: OwnedListener | None = None,
                 timeout: float = 10.0,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self.config = config
        self.instance_id = config.member_id
        self._table = table
        self._lock = lock
        self._targets = tuple(targets)
        self._on_owned = on_owned
        self._leader_listeners: list[LeaderListener] = []
        self._timeout = timeout
        self._now = monotonic
        self._apply = asyncio.Lock()
        self._outage = Outage("cluster heartbeat fails: the store is unavailable")
        self._task: asyncio.Task[None] | None = None
        self._last_ok: float | None = None
        self.fenced_since: float | None = None  # monotonic, while fenced
        self.epoch: Epoch | None = None
        self.members: tuple[str, ...] = ()
        self.owned: tuple[str, ...] = ()
        self._applied: tuple[str, ...] | None = None
        self.is_leader = False
        self.fenced = False
        self.rejoins = 0
        self.clock = ClockOffset()
        self.settle: Settle | None = None  # while a newcomer waits for the others
        # While the owner listener runs: gained targets whose owner's lease ran out.
        self.taken_over: Mapping[str, float] = {}
        self._fresh = False  # joined; the next renewed heartbeat starts the settle

    # -- the API the daemon uses --------------------------------------------------------

    def add_leader_listener(self, listener: LeaderListener) -> None:
        """Call ``listener(is_leader)`` whenever leadership changes."""
        self._leader_listeners.append(listener)

    def owns(self, target_id: str) -> bool:
        """Whether this instance owns (polls) ``target_id`` now."""
        return target_id in self.owned

    def view(self) -> ClusterView:
        """The state ``/metrics`` exports."""
        return ClusterView(members=0 if self.fenced else len(self.members),
                           owned_targets=len(self.owned), leader=self.is_leader,
                           fenced=self.fenced)

    async def set_targets(self, targets: Sequence[str]) -> None:
        """The configured targets changed (a reload): re-apply ownership now."""
        self._targets = tuple(targets)
        if not self.fenced and self.epoch is not None:
            await self._set_owned(self._held(owned_by(self.instance_id, self._targets,
                                                      self.members)))

    # -- lifecycle ----------------------------------------------------------------------

    async def start(self) -> None:
        """Join, run the first round (so ownership is known before polling starts), then
        keep heartbeating in a task.

        Raises:
            StoreUnavailableError, TimeoutError, SQLAlchemyError: The first heartbeat
                failed: the instance cannot know what it owns.
        """
        started = self._now()
        epoch, previous = await bounded(
            self._table.join(self.instance_id, self.config.lease_seconds), self._timeout)
        self.epoch = epoch
        self._fresh = True
        if previous is not None and previous.live:
            log.warning("this instance id was still registered as live: a restart within "
                        "the lease, or another process runs with the same "
                        "cluster.instance_id", extra={"instance_id": self.instance_id,
                                                      "previous_host": previous.host,
                                                      "previous_pid": previous.pid})
        try:
            await self._round(started)
        except BaseException:
            await self.stop()  # leave again and close the lock's engine
            raise
        log.info("joined the cluster", extra={
            "instance_id": self.instance_id, "incarnation": epoch.incarnation,
            "members": ",".join(self.members), "owned_targets": len(self.owned),
            "leader": self.is_leader})
        self._task = asyncio.get_running_loop().create_task(self._run(), name=_TASK)

    async def stop(self) -> None:
        """Stop heartbeating, give up leadership and leave (the targets move at once)."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._set_leader(False)
        try:
            await bounded(self._lock.close(), self._timeout)
        except TimeoutError:
            log.warning("closing the leader connection timed out")
        epoch, self.epoch = self.epoch, None
        if epoch is not None:
            try:
                await bounded(self._table.leave(epoch), self._timeout)
            except Exception as exc:  # the lease ends it anyway
                log.warning("could not leave the cluster; the others take over when the "
                            "lease ends", extra={"error": describe_error(exc)})

    async def _run(self) -> None:
        next_beat = self._now() + self.config.heartbeat_seconds
        while True:
            now = self._now()
            wake = next_beat
            if not self.fenced and self._last_ok is not None:
                wake = min(wake, self._last_ok + self.config.lease_seconds)
            if wake > now:
                await asyncio.sleep(wake - now)
            if self._now() >= next_beat:
                next_beat = self._now() + self.config.heartbeat_seconds
                await self.step()
            else:
                await self._fence_if_due()

    # -- one round ----------------------------------------------------------------------

    async def step(self) -> None:
        """One round: heartbeat, ownership, leadership; fence if the lease ran out."""
        await self._fence_if_due()
        started = self._now()
        try:
            await self._round(started)
        except Exception as exc:  # any failure is "no heartbeat"
            self._outage.failed(describe_error(exc), instance_id=self.instance_id)
            await self._fence_if_due()
            return
        self._outage.recovered()

    async def _round(self, started: float) -> None:
        epoch = self.epoch if self.epoch is not None else await self._join(started)
        beat = await self._bounded(self._table.heartbeat(epoch), started)
        if not beat.renewed:
            self.rejoins += 1
            log.warning("the cluster registration lapsed; joining again under a new "
                        "incarnation", extra={"instance_id": self.instance_id,
                                              "reason": beat.reason,
                                              "incarnation": epoch.incarnation})
            epoch = await self._join(started)
            beat = await self._bounded(self._table.heartbeat(epoch), started)
            if not beat.renewed:
                raise TimeoutError(f"heartbeat refused right after joining: {beat.reason}")
        self._last_ok = started
        if self.fenced:
            log.warning("heartbeats go through again; rejoining the cluster",
                        extra={"instance_id": self.instance_id})
            self.fenced = False
            self.fenced_since = None
        if beat.members != self.members:
            log.info("cluster members changed", extra={
                "members": ",".join(beat.members), "before": ",".join(self.members)})
        before, self.members = self.members, beat.members
        self.clock.add(beat.clock)
        owned = self._may_own(beat)
        self.taken_over = taken_from_lapsed(set(owned) - set(self.owned), before,
                                            beat.lapsed)
        try:
            await self._set_owned(owned)
        finally:
            self.taken_over = {}
        try:
            leader = await self._bounded(self._lock.try_acquire(), started)
        except TimeoutError:
            # A hung leader connection: the server may end the session any moment.
            leader = False
            await self._release_lock()
        self._set_leader(leader)

    async def _join(self, started: float) -> Epoch:
        joined = await self._bounded(
            self._table.join(self.instance_id, self.config.lease_seconds), started)
        self.epoch = joined[0]
        self._fresh = True
        return joined[0]

    def _may_own(self, beat: Heartbeat) -> tuple[str, ...]:
        """What this instance polls after ``beat``: its share, less what it would gain
        while it settles after a (re)join."""
        if self._fresh and beat.at is not None:
            self._fresh = False
            self.settle = Settle(self.instance_id, beat.at,
                                 self._now() + self.config.lease_seconds)
        settle = self.settle
        if settle is not None and settle.settled(beat.beats, self._now()):
            waited = settle.waiting_for(beat.beats)
            log.info("settled after joining: the others let go of this instance's targets",
                     extra={"instance_id": self.instance_id,
                            "lease_ran_out_for": ",".join(waited)})
            self.settle = None
        return self._held(owned_by(self.instance_id, self._targets, self.members))

    def _held(self, owned: Sequence[str]) -> tuple[str, ...]:
        """While settling, keep what is owned already and gain nothing."""
        if self.settle is None:
            return tuple(owned)
        kept = set(self.owned)
        return tuple(t for t in owned if t in kept)

    async def _bounded(self, operation: Awaitable[T], started: float) -> T:
        """Bound a call by the operation timeout and by the fence deadline."""
        within = self._timeout
        if self._last_ok is not None and not self.fenced:
            within = min(within, self._last_ok + self.config.lease_seconds - self._now())
        return await bounded(operation, max(within, 0.01))

    async def _fence_if_due(self) -> None:
        if self.fenced or self._last_ok is None:
            return
        if self._now() - self._last_ok < self.config.lease_seconds:
            return
        self.fenced = True
        self.fenced_since = self._now()
        log.error("no heartbeat for a whole lease: this instance is out of the cluster; "
                  "it polls nothing and does not lead until a heartbeat goes through",
                  extra={"instance_id": self.instance_id,
                         "lease_seconds": self.config.lease_seconds})
        # Polling stops first; the lock's connection may hang on a frozen server.
        await self._set_owned(())
        self._set_leader(False)
        await self._release_lock()

    async def _release_lock(self) -> None:
        try:
            await bounded(self._lock.release(), self._timeout)
        except TimeoutError:
            log.warning("releasing the leader lock timed out; the server ends the idle "
                        "session after the lease", extra={"instance_id": self.instance_id})

    async def _set_owned(self, owned: Sequence[str]) -> None:
        async with self._apply:
            self.owned = tuple(owned)
            if self._applied == self.owned or self._on_owned is None:
                self._applied = self.owned
                return
            try:
                await self._on_owned(self.owned)
            except Exception:
                log.exception("applying the owned targets failed")
                return
            if self._applied is not None:
                log.info("owned targets changed", extra={
                    "owned_targets": len(self.owned), "before": len(self._applied)})
            self._applied = self.owned

    def _set_leader(self, leader: bool) -> None:
        if leader == self.is_leader:
            return
        self.is_leader = leader
        log.warning("this instance %s the cluster leader",
                    "is now" if leader else "is no longer",
                    extra={"instance_id": self.instance_id})
        for listener in self._leader_listeners:
            try:
                listener(leader)
            except Exception:
                log.exception("leader listener failed")
