"""The members table: join, heartbeat, leave, and the epoch a member's writes carry.

Every time comparison runs on the database's clock (``now()``), so the instances' own
clocks never matter: a member is *live* while ``heartbeat_at + lease_seconds > now()``,
with the lease the member itself registered.

Each registration has an *incarnation*, one more than the row's last. ``(instance_id,
incarnation)`` is the member's :class:`Epoch`. A heartbeat renews only the registration
it belongs to and only while it is live: once the lease lapsed (the instance was paused,
cut off, or another process took the same id), the heartbeat is refused and the instance
must join again under a new incarnation. The others may have taken its targets meanwhile,
so anything it writes with the old epoch is stale: :data:`FENCE_CONDITION` and
:meth:`MemberTable.epoch_current` refuse it, and :class:`netguard.cluster.fence.EpochFence`
does so inside a write's own transaction (docs/scale-out.md, "Fenced writes").
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import text
from sqlalchemy.engine import RowMapping
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from netguard.cluster.config import host_name

_LIVE = "heartbeat_at > now() - make_interval(secs => lease_seconds)"

FENCE_CONDITION = (
    "EXISTS (SELECT 1 FROM cluster_member WHERE instance_id = :fence_instance "  # noqa: S608 (constants)
    f"AND incarnation = :fence_incarnation AND {_LIVE})")
"""A SQL condition that holds only while the epoch's registration is current and live.

Add it to a write's ``WHERE`` with :meth:`Epoch.params`; a write that matches no row
was refused as stale."""


@dataclass(frozen=True, slots=True)
class Epoch:
    """One registration of one instance: what a fenced write carries.

    Attributes:
        instance_id: The member.
        incarnation: Its registration, one more than the previous one of the same id.
    """

    instance_id: str
    incarnation: int

    def params(self) -> dict[str, Any]:
        """The bind parameters of :data:`FENCE_CONDITION`."""
        return {"fence_instance": self.instance_id, "fence_incarnation": self.incarnation}


@dataclass(frozen=True, slots=True)
class Member:
    """One row of the members table, as the database sees it now.

    Attributes:
        instance_id: The member's name.
        incarnation: Its current registration.
        host: The host it registered from.
        pid: Its process id there.
        lease_seconds: The lease it registered with.
        joined_at: When this registration was made (database clock).
        heartbeat_at: Its last heartbeat (database clock).
        age_seconds: Seconds since that heartbeat, by the database's clock.
        live: Whether the heartbeat is within the lease.
    """

    instance_id: str
    incarnation: int
    host: str
    pid: int
    lease_seconds: float
    joined_at: datetime
    heartbeat_at: datetime
    age_seconds: float
    live: bool


@dataclass(frozen=True, slots=True)
class Beat:
    """A live member as one heartbeat read it (for the newcomer's settle rule).

    Attributes:
        instance_id: The member.
        joined_at: When its current registration was made (database clock).
        heartbeat_at: Its last heartbeat (database clock).
    """

    instance_id: str
    joined_at: datetime
    heartbeat_at: datetime


@dataclass(frozen=True, slots=True)
class Lapse:
    """A registered member whose lease ran out (it died, or fenced itself); its row
    stays until the same id joins again. A clean leave deletes the row: no lapse.

    Attributes:
        instance_id: The member.
        expired: ``heartbeat_at + lease_seconds``, in Unix seconds on the database's
            clock: from then on it polled nothing (it had fenced itself by then, if it
            still ran).
    """

    instance_id: str
    expired: float


@dataclass(frozen=True, slots=True)
class ClockSample:
    """The database's clock read against the local monotonic clock.

    Attributes:
        db: The database's ``clock_timestamp()``, in Unix seconds.
        local: The local monotonic clock at the midpoint of the round trip that read it.
        round_trip: That round trip in seconds: ``db`` is known to ``local`` within half
            of it.
    """

    db: float
    local: float
    round_trip: float

    @property
    def offset(self) -> float:
        """Database time minus local monotonic time."""
        return self.db - self.local


@dataclass(frozen=True, slots=True)
class Heartbeat:
    """The outcome of one heartbeat.

    Attributes:
        renewed: The registration was renewed. If not, ``reason`` says why and the
            instance must join again.
        members: The live members after the heartbeat (sorted), this one included when
            renewed.
        reason: Why a heartbeat was refused (``expired``, ``taken over``, ``missing``).
        at: The renewed ``heartbeat_at`` (database clock; ``None`` if not renewed).
        beats: The live members' registrations and last heartbeats, as read.
        clock: The database clock read with the members (``None`` if none was
            registered).
        lapsed: The registered members that are not live, as read.
    """

    renewed: bool
    members: tuple[str, ...]
    reason: str = ""
    at: datetime | None = None
    beats: tuple[Beat, ...] = ()
    clock: ClockSample | None = None
    lapsed: tuple[Lapse, ...] = ()


def _member(row: RowMapping) -> Member:
    return Member(instance_id=str(row["instance_id"]), incarnation=int(row["incarnation"]),
                  host=str(row["host"]), pid=int(row["pid"]),
                  lease_seconds=float(row["lease_seconds"]), joined_at=row["joined_at"],
                  heartbeat_at=row["heartbeat_at"], age_seconds=float(row["age"]),
                  live=bool(row["live"]))


_SELECT = (f"SELECT instance_id, incarnation, host, pid, lease_seconds, joined_at, "  # noqa: S608 (constants)
           f"heartbeat_at, EXTRACT(EPOCH FROM now() - heartbeat_at) AS age, "
           f"({_LIVE}) AS live FROM cluster_member")


class MemberTable:
    """The members table of a PostgreSQL store.

    Args:
        engine: The store's engine (each call takes a pooled connection briefly).
        monotonic: The local monotonic clock a heartbeat reads the database's clock
            against (the event loop's: the scheduler maps poll slots with it).
    """

    def __init__(self, engine: AsyncEngine, *,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self._engine = engine
        self._monotonic = monotonic

    async def join(self, instance_id: str, lease_seconds: float, *,
                   host: str | None = None, pid: int | None = None
                   ) -> tuple[Epoch, Member | None]:
        """Register (again) under a new incarnation, heartbeat now.

        Returns:
            The new epoch, and the row as it was before (``None`` if there was none); a
            previous row that is still live means this id was already running (a
            restart within the lease, or another process with the same id).
        """
        async with self._engine.begin() as conn:
            found = (await conn.execute(
                text(f"{_SELECT} WHERE instance_id = :i FOR UPDATE"), {"i": instance_id}
            )).mappings().first()
            previous = None if found is None else _member(found)
            incarnation = 1 if previous is None else previous.incarnation + 1
            await conn.execute(text(
                "INSERT INTO cluster_member (instance_id, incarnation, host, pid, "
                "lease_seconds, joined_at, heartbeat_at) "
                "VALUES (:i, :n, :host, :pid, :lease, now(), now()) "
                "ON CONFLICT (instance_id) DO UPDATE SET incarnation = excluded.incarnation, "
                "host = excluded.host, pid = excluded.pid, "
                "lease_seconds = excluded.lease_seconds, joined_at = now(), "
                "heartbeat_at = now()"),
                {"i": instance_id, "n": incarnation, "host": (host or host_name())[:255],
                 "pid": os.getpid() if pid is None else pid, "lease": lease_seconds})
        return Epoch(instance_id, incarnation), previous

    async def heartbeat(self, epoch: Epoch) -> Heartbeat:
        """Renew ``epoch``'s registration if it is still current and live.

        The renewal and the read of the live members are one transaction, so both use
        the same ``now()``. The read of the members also reads the database's clock
        (``clock_timestamp()``) against the local monotonic clock.
        """
        async with self._engine.begin() as conn:
            row = (await conn.execute(text(
                "UPDATE cluster_member SET heartbeat_at = now() "  # noqa: S608 (constants)
                f"WHERE instance_id = :fence_instance AND incarnation = :fence_incarnation "
                f"AND {_LIVE} RETURNING heartbeat_at"), epoch.params())).first()
            beats, lapsed, clock = await self._beats(conn)
            members = tuple(b.instance_id for b in beats)
            if row is not None:
                return Heartbeat(True, members, at=row[0], beats=beats, clock=clock,
                                 lapsed=lapsed)
            row = (await conn.execute(text("SELECT incarnation FROM cluster_member "
                                           "WHERE instance_id = :i"),
                                      {"i": epoch.instance_id})).first()
        if row is None:
            reason = "missing"
        elif int(row[0]) != epoch.incarnation:
            reason = "taken over"
        else:
            reason = "expired"
        return Heartbeat(False, members, reason, beats=beats, clock=clock, lapsed=lapsed)

    async def _beats(self, conn: AsyncConnection
                     ) -> tuple[tuple[Beat, ...], tuple[Lapse, ...], ClockSample | None]:
        before = self._monotonic()
        # Every row, not only the live ones: a lapsed member's expiry tells the one that
        # takes over its targets which of their slots it certainly missed.
        rows = (await conn.execute(text(
            f"SELECT instance_id, joined_at, heartbeat_at, ({_LIVE}) AS live, "  # noqa: S608 (constants)
            "EXTRACT(EPOCH FROM heartbeat_at + make_interval(secs => lease_seconds)) "
            "AS expired, EXTRACT(EPOCH FROM clock_timestamp()) AS clock "
            "FROM cluster_member ORDER BY instance_id"))).mappings().all()
        after = self._monotonic()
        beats = tuple(Beat(str(r["instance_id"]), r["joined_at"], r["heartbeat_at"])
                      for r in rows if r["live"])
        lapsed = tuple(Lapse(str(r["instance_id"]), float(r["expired"]))
                       for r in rows if not r["live"])
        clock = None if not rows else ClockSample(
            float(rows[0]["clock"]), (before + after) / 2, after - before)
        return beats, lapsed, clock

    async def leave(self, epoch: Epoch) -> bool:
        """Remove ``epoch``'s registration (a clean stop): its targets move at once.

        Returns:
            False if the registration was no longer this epoch's (nothing removed).
        """
        async with self._engine.begin() as conn:
            result = await conn.execute(text(
                "DELETE FROM cluster_member WHERE instance_id = :fence_instance "
                "AND incarnation = :fence_incarnation RETURNING instance_id"), epoch.params())
            return result.first() is not None

    async def live(self) -> tuple[str, ...]:
        """The live members' ids, sorted."""
        async with self._engine.connect() as conn:
            return await _live(conn)

    async def members(self) -> list[Member]:
        """Every registered member, live or not, by id."""
        async with self._engine.connect() as conn:
            rows = (await conn.execute(text(f"{_SELECT} ORDER BY instance_id"))).mappings()
            return [_member(row) for row in rows]

    async def epoch_current(self, epoch: Epoch) -> bool:
        """Whether ``epoch`` is still its member's live registration (the fence check)."""
        async with self._engine.connect() as conn:
            result = await conn.execute(text(f"SELECT {FENCE_CONDITION}"), epoch.params())
            return bool(result.scalar())


async def _live(conn: AsyncConnection) -> tuple[str, ...]:
    rows = await conn.execute(text(
        f"SELECT instance_id FROM cluster_member WHERE {_LIVE} ORDER BY instance_id"))  # noqa: S608 (constants)
    return tuple(str(row[0]) for row in rows)
