"""Fenced writes: a write made for a cluster epoch commits only while that epoch is its
member's live registration, checked in the write's own transaction.

:class:`EpochFence` is the last statement of a fenced transaction (the ticket service
runs it after its own writes, :meth:`netguard.tickets.service.TicketService.handle`). It
reads the member's row ``FOR KEY SHARE`` and raises :class:`~netguard.errors.StaleEpochError`,
which rolls the transaction back, unless the row still holds the epoch's incarnation
with a live lease. Why it is safe:

- **A rejoin or a leave of the same id serialises with the write.** ``join`` reads the
  row ``FOR UPDATE`` and ``leave`` deletes it; both conflict with ``KEY SHARE``. A write
  that checked first commits before the new incarnation exists; a write that comes
  second waits, then sees the new row version (or none) and is refused. The member's own
  heartbeat (an ``UPDATE`` of a non-key column) does not wait on writes.
- **Expiry is judged at the check, on the database's clock** (``clock_timestamp()``, not
  the transaction's start). The others take the targets over only once the lease has
  ended by that same clock.
- **A pause between the check and the commit is bounded.** The check refuses the last
  :data:`MARGIN_SHARE` of a lease (``lease ending``, not final: the write waits for the
  next heartbeat), and sets ``idle_in_transaction_session_timeout`` to that margin for
  the rest of the transaction: a process stopped before it sent ``COMMIT`` loses its
  session (and the write) before the lease can end.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from netguard.cluster.members import Epoch
from netguard.errors import StaleEpochError

MARGIN_SHARE = 0.25
"""The last share of a lease in which a fenced write does not commit (it waits for the
next heartbeat); also the longest the session may then sit idle before ``COMMIT``."""

_HOLD = text(
    "SELECT incarnation, "  # noqa: S608 (constants only)
    "heartbeat_at + make_interval(secs => lease_seconds) > clock_timestamp() AS live, "
    f"heartbeat_at + make_interval(secs => lease_seconds * {1 - MARGIN_SHARE!r}) "
    "> clock_timestamp() AS safe, "
    "set_config('idle_in_transaction_session_timeout', "
    f"ceil(lease_seconds * {MARGIN_SHARE * 1000!r})::bigint::text, true) AS idle "
    "FROM cluster_member WHERE instance_id = :fence_instance FOR KEY SHARE")


@dataclass(frozen=True, slots=True)
class EpochFence:
    """The fence check of one epoch, run inside a write's transaction (PostgreSQL).

    Attributes:
        epoch: The registration the write was made under.
    """

    epoch: Epoch

    def __str__(self) -> str:
        return self.writer

    @property
    def writer(self) -> str:
        """``instance_id:incarnation``, recorded on the audit rows of the write."""
        return f"{self.epoch.instance_id}:{self.epoch.incarnation}"

    async def __call__(self, conn: AsyncConnection) -> None:
        """Check the epoch in ``conn``'s transaction and hold it until the commit.

        Raises:
            StaleEpochError: The epoch is not the live registration (``final``), or its
                lease is about to end (not final).
        """
        row = (await conn.execute(_HOLD, self.epoch.params())).first()
        reason = ""
        if row is None:
            reason = "missing"
        elif int(row.incarnation) != self.epoch.incarnation:
            # Incarnation 0 marks an event a previous process journalled.
            reason = "an earlier run" if self.epoch.incarnation == 0 else "taken over"
        elif not row.live:
            reason = "expired"
        elif not row.safe:
            raise StaleEpochError(self.epoch.instance_id, self.epoch.incarnation,
                                  "lease ending", final=False)
        if reason:
            raise StaleEpochError(self.epoch.instance_id, self.epoch.incarnation, reason,
                                  final=True)
