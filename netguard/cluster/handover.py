"""Hand-over rules of the cluster, pure: the poll grid on the database's clock, and when
a newcomer may start polling what it gains (docs/scale-out.md, "Hand-over").

**The grid.** In a cluster every target is polled at the same place of its interval
whichever instance owns it: at database times ``T`` with ``T mod interval = phase x
interval`` (the phase from :func:`netguard.daemon.scheduler.phase_of`). The heartbeat
reads the database's clock against the local monotonic one (:class:`ClockOffset`); the
scheduler maps the grid to its monotonic clock with that offset and keeps running on the
monotonic clock. A new owner then polls a target at its next slot, one interval after the
old owner's poll at the same place, not at once.

**The catch-up.** A target taken over from a member whose lease *ran out* (killed,
paused, cut off: its row stays, not live) is polled at once if its most recent slot came
after that lease's expiry (``heartbeat_at + lease_seconds`` on the database's clock): the
member had fenced itself or was dead by then, so nobody polled that slot
(:func:`taken_from_lapsed`, :func:`netguard.daemon.scheduler.missed_since`). Its last
poll was at a slot before the expiry, so the catch-up comes at least one interval after
it. A target whose last slot came before the expiry waits for its next slot, as does one
handed over by a clean leave (the row is deleted: the leaver polled until then).

**The settle.** When an instance joins, the others keep polling the targets it gains
until their next heartbeat shows them the newcomer. :class:`Settle` holds those targets
back until every other live member has provably applied that heartbeat's ownership: its
``heartbeat_at`` moved on from the first value seen after the newcomer's own first
heartbeat (the heartbeat round that read the member list applies the ownership before
the next one starts), or a lease has passed (a member that has not heartbeated since
then has fenced itself).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from netguard.cluster.members import Beat, ClockSample, Lapse
from netguard.cluster.rendezvous import owner

CLOCK_SAMPLES = 16
"""Heartbeats whose clock readings are kept; the one with the shortest round trip wins."""


class ClockOffset:
    """Database time minus local monotonic time, from the heartbeats' clock readings.

    The reading with the shortest round trip among the last :data:`CLOCK_SAMPLES` is the
    most precise (the database read its clock within half of that round trip of the
    local midpoint), so one slow heartbeat on a loaded machine does not move the grid.

    Args:
        keep: How many recent readings to choose from.
    """

    def __init__(self, keep: int = CLOCK_SAMPLES) -> None:
        self._samples: deque[ClockSample] = deque(maxlen=keep)

    def add(self, sample: ClockSample | None) -> None:
        """Take one heartbeat's reading (``None``: it had none)."""
        if sample is not None:
            self._samples.append(sample)

    @property
    def offset(self) -> float | None:
        """The best estimate, ``None`` before the first reading."""
        if not self._samples:
            return None
        return min(self._samples, key=lambda s: s.round_trip).offset


def grid_epoch(offset: float) -> float:
    """The local monotonic time at database time 0 (what
    :meth:`~netguard.daemon.scheduler.PollScheduler.align` takes): the scheduler's slots
    are this plus ``(phase + k) x interval``, the same database times everywhere."""
    return -offset


def to_local(db_time: float, offset: float) -> float:
    """A database time (Unix seconds) on the local monotonic clock."""
    return db_time + grid_epoch(offset)


def taken_from_lapsed(gained: Iterable[str], before: Sequence[str],
                      lapsed: Iterable[Lapse]) -> dict[str, float]:
    """The gained targets whose previous owner's lease ran out, with its expiry.

    Args:
        gained: Targets this instance owns now and did not before.
        before: The live members before (who owned them).
        lapsed: The registered members that are not live now. One that left cleanly has
            no row, so its targets are not here: it polled them until it left.

    Returns:
        Target id -> the previous owner's lease expiry (Unix seconds, database clock).
    """
    expired = {lapse.instance_id: lapse.expired for lapse in lapsed
               if lapse.instance_id in before}
    if not expired:
        return {}
    out: dict[str, float] = {}
    for target in gained:
        previous = owner(target, before)
        if previous is not None and previous in expired:
            out[target] = expired[previous]
    return out


@dataclass(slots=True)
class Settle:
    """Whether a newcomer may poll what it gains yet.

    Args:
        me: The newcomer's instance id.
        mark: Its first heartbeat after joining (database clock). A member whose
            heartbeat started after it read a member list that holds the newcomer.
        deadline: Local monotonic time one lease after that heartbeat returned: by then a
            member that has not heartbeated since has fenced itself.
    """

    me: str
    mark: datetime
    deadline: float
    first_seen: dict[str, datetime] = field(default_factory=dict)

    def settled(self, beats: Iterable[Beat], now: float) -> bool:
        """Take one heartbeat's reading; whether every other member has let go.

        Args:
            beats: The live members as the heartbeat read them.
            now: Local monotonic time.
        """
        waiting = False
        for beat in beats:
            if beat.instance_id == self.me or beat.joined_at > self.mark:
                continue  # itself, or a later newcomer (which saw it from the start)
            first = self.first_seen.get(beat.instance_id)
            if first is None:
                if beat.heartbeat_at > self.mark:
                    # It saw the newcomer: its ownership is applied before its next beat.
                    self.first_seen[beat.instance_id] = beat.heartbeat_at
                waiting = True
            elif beat.heartbeat_at <= first:
                waiting = True
        return not waiting or now >= self.deadline

    def waiting_for(self, beats: Iterable[Beat]) -> list[str]:
        """The members it still waits for (for the log)."""
        return [b.instance_id for b in beats if b.instance_id != self.me
                and b.joined_at <= self.mark
                and not (b.instance_id in self.first_seen
                         and b.heartbeat_at > self.first_seen[b.instance_id])]
