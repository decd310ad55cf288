"""The leader gate: single-run work that runs continuously asks it before each pass.

The outbox worker (decision 18) runs in every instance but delivers only while the gate
is open. The gate is created closed when ``cluster.enabled``, before the services start,
so an instance delivers nothing before the cluster has made it the leader;
:class:`~netguard.daemon.clustering.ClusterRole` opens and closes it on each change.
"""

from __future__ import annotations


class LeaderGate:
    """Open while this instance leads the cluster; a ``Callable[[], bool]``.

    Args:
        leader: The starting state (closed: not known to lead yet).
    """

    def __init__(self, leader: bool = False) -> None:
        self._leader = leader

    def __call__(self) -> bool:
        """Whether this instance leads now."""
        return self._leader

    def set(self, leader: bool) -> None:
        """Follow a change of leadership (a leader listener)."""
        self._leader = leader


__all__ = ["LeaderGate"]
