"""What ``netguard cluster status`` shows: members, heartbeats, owned targets, leader.

The leader is read from the server itself: the session holding the leader's advisory
lock (``pg_locks``) and its ``application_name`` (``pg_stat_activity``), so it is true
even if a member's own view is stale. (PostgreSQL shows another role's
``application_name`` only to members of ``pg_read_all_stats``; all instances normally
share one role.) The owned counts are computed from the live members over the targets
of the configuration this command reads, as every instance computes them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from netguard.cluster.leader import LEADER_APPLICATION_PREFIX, LEADER_LOCK_KEY
from netguard.cluster.members import Member, MemberTable
from netguard.cluster.rendezvous import assign

_LEADER = text(
    "SELECT a.application_name FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
    "WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1 "
    "AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database()) "
    "AND l.classid = :hi AND l.objid = :lo")


@dataclass(frozen=True, slots=True)
class MemberStatus:
    """One member and what it owns.

    Attributes:
        member: Its row (heartbeat, lease, live).
        owned_targets: The targets it owns (0 unless live).
        leader: Whether it holds the leader lock.
    """

    member: Member
    owned_targets: int
    leader: bool

    def to_dict(self) -> dict[str, Any]:
        """For ``--json``."""
        m = self.member
        return {"instance_id": m.instance_id, "live": m.live, "leader": self.leader,
                "owned_targets": self.owned_targets, "incarnation": m.incarnation,
                "host": m.host, "pid": m.pid, "lease_seconds": m.lease_seconds,
                "joined_at": m.joined_at, "last_heartbeat": m.heartbeat_at,
                "heartbeat_age_seconds": round(m.age_seconds, 3)}


@dataclass(frozen=True, slots=True)
class ClusterStatus:
    """The cluster as the database sees it now.

    Attributes:
        members: Every registered member, live or gone, by id.
        leader: The instance holding the leader lock, or ``None``.
        targets: The configured targets the counts are computed over.
    """

    members: tuple[MemberStatus, ...]
    leader: str | None
    targets: int

    @property
    def live(self) -> int:
        """How many members are live."""
        return sum(1 for m in self.members if m.member.live)

    def to_dict(self) -> dict[str, Any]:
        """For ``--json``."""
        return {"leader": self.leader, "targets": self.targets, "live_members": self.live,
                "members": [m.to_dict() for m in self.members]}


async def leader_id(engine: AsyncEngine) -> str | None:
    """The instance holding the leader lock now, or ``None``."""
    async with engine.connect() as conn:
        found = (await conn.execute(_LEADER, {"hi": LEADER_LOCK_KEY >> 32,
                                              "lo": LEADER_LOCK_KEY & 0xFFFFFFFF})).first()
    if found is None or found[0] is None:
        return None
    name = str(found[0])
    return name.removeprefix(LEADER_APPLICATION_PREFIX) if name.startswith(
        LEADER_APPLICATION_PREFIX) else None


async def cluster_status(engine: AsyncEngine, target_ids: Sequence[str]) -> ClusterStatus:
    """Members, their heartbeats and owned-target counts, and the leader."""
    members = await MemberTable(engine).members()
    leader = await leader_id(engine)
    owned = assign(target_ids, [m.instance_id for m in members if m.live])
    return ClusterStatus(
        members=tuple(MemberStatus(m, len(owned.get(m.instance_id, ())),
                                   m.instance_id == leader) for m in members),
        leader=leader, targets=len(target_ids))
