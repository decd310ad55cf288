"""Scale-out: several netguard instances share one estate through PostgreSQL.

- :mod:`netguard.cluster.config`: the ``cluster:`` section.
- :mod:`netguard.cluster.rendezvous`: which live member owns which target (pure).
- :mod:`netguard.cluster.members`: the members table (join, heartbeat, leave, epochs).
- :mod:`netguard.cluster.leader`: the leader's advisory lock on a dedicated connection.
- :mod:`netguard.cluster.node`: one instance's loop (heartbeat, ownership, leadership,
  fencing) on the monotonic clock.
- :mod:`netguard.cluster.fence`: the epoch check that ends a fenced write's transaction.
- :mod:`netguard.cluster.status`: what ``netguard cluster status`` shows.

docs/scale-out.md describes the design, what is built and what is not yet. Nothing is
imported here: loading the config must not load SQLAlchemy.
"""
