"""The one exception tree of netguard.

Every error netguard raises on purpose derives from :class:`NetguardError`, with one
subtree per boundary. Errors that retry logic may retry also derive from
:class:`TransientError`. Adapters wrap library exceptions with ``raise ... from exc``.
"""

from __future__ import annotations


class NetguardError(Exception):
    """Root of every error netguard raises on purpose."""


class TransientError(NetguardError):
    """A failure that may succeed when tried again (timeouts, a broker restarting)."""


class ConfigError(NetguardError):
    """The configuration is invalid.

    Attributes:
        source: The file (or ``<embedded>``) the configuration came from.
        problems: One ``path: message`` line per problem, e.g.
            ``targets[2].snmp.auth_protocol: unknown protocol 'sha999'``.
    """

    def __init__(self, source: str, problems: list[str]) -> None:
        self.source = source
        self.problems = problems
        lines = "\n".join(f"  {p}" for p in problems)
        super().__init__(f"{source}: invalid configuration\n{lines}")


class ConfigNotFoundError(ConfigError):
    """No configuration file was given and none was found where netguard looks.

    Attributes:
        searched: Where netguard looked, in order (``--config``, ``$NETGUARD_CONFIG``,
            then the default files).
    """

    def __init__(self, searched: list[str]) -> None:
        super().__init__("<no file>", searched)
        self.searched = searched
        self.args = ("no configuration file found; looked at: " + "; ".join(searched)
                     + ". Give one with --config FILE or NETGUARD_CONFIG=FILE "
                     "(`netguard demo` writes a working example).",)


class ProbeError(NetguardError):
    """An SNMP probe failed.

    Attributes:
        target_id: The target whose poll failed.
    """

    def __init__(self, target_id: str, message: str) -> None:
        self.target_id = target_id
        super().__init__(f"{target_id}: {message}")


class AgentUnreachableError(ProbeError, TransientError):
    """The agent did not answer within timeout x (retries + 1)."""


class AgentResponseError(ProbeError):
    """The agent answered with an SNMP error status or an undecodable value."""


class StoreError(NetguardError):
    """The database failed or holds something unexpected."""


class SchemaOutdatedError(StoreError):
    """The database schema is behind the code; run ``netguard db upgrade``.

    Attributes:
        current: The revision found in the database (``None`` if empty).
        head: The revision the code needs.
    """

    def __init__(self, current: str | None, head: str) -> None:
        self.current = current
        self.head = head
        found = current or "an empty database"
        super().__init__(
            f"database schema is at {found}, netguard needs {head}: "
            "run `netguard db upgrade` (or set store.auto_upgrade: true)"
        )


class DatabaseMissingError(SchemaOutdatedError):
    """The SQLite database file does not exist yet; ``netguard db upgrade`` creates it.

    Attributes:
        path: The database file that is missing.
    """

    def __init__(self, path: str, head: str) -> None:
        super().__init__(None, head)
        self.path = path
        self.args = (f"no database at {path} (run netguard db upgrade)",)


class StoreUnavailableError(StoreError, TransientError):
    """The database could not be reached."""


class StaleEpochError(StoreError):
    """A fenced write carried a cluster epoch that is not (or no longer safely) its
    member's live registration; its transaction was rolled back (docs/scale-out.md).

    Attributes:
        instance_id: The member the write was made for.
        incarnation: The registration it carried.
        reason: ``taken over``, ``missing``, ``expired`` or ``lease ending``.
        final: The epoch can never be current again (a new incarnation, no row, an
            expired lease), so the write is superseded for good; false while the lease
            is only close to its end (retry once the heartbeat renewed it).
    """

    def __init__(self, instance_id: str, incarnation: int, reason: str, *,
                 final: bool) -> None:
        super().__init__(f"stale cluster epoch {instance_id}:{incarnation} ({reason})")
        self.instance_id = instance_id
        self.incarnation = incarnation
        self.reason = reason
        self.final = final


class NotFoundError(NetguardError):
    """An id given by an operator does not exist.

    Attributes:
        kind: What was looked up (``ticket``, ``household``, ...).
        ident: The id that was not found.
    """

    def __init__(self, kind: str, ident: str) -> None:
        self.kind = kind
        self.ident = ident
        super().__init__(f"unknown {kind} {ident!r}")


class InvalidInputError(NetguardError):
    """Operator input was refused before anything was touched (empty, too long, unknown
    name): a usage error, exit 2 in the CLI."""


class RefusedError(NetguardError):
    """A valid request that the current state refuses (an action not allowed in a
    ticket's state, a second active ticket for one fault): exit 4 in the CLI."""


class TicketError(RefusedError):
    """A ticket operation was refused."""


class InvalidTransitionError(TicketError):
    """The requested action is not allowed in the ticket's current state.

    Attributes:
        ticket_id: The human ticket id, e.g. ``NG-000123``.
        state: The ticket's current state.
        action: The refused action.
        allowed: The actions allowed in ``state``.
    """

    def __init__(self, ticket_id: str, state: str, action: str, allowed: list[str]) -> None:
        self.ticket_id = ticket_id
        self.state = state
        self.action = action
        self.allowed = allowed
        allowed_text = ", ".join(allowed) if allowed else "none"
        super().__init__(
            f"cannot {action} {ticket_id}: it is {state}; allowed actions: {allowed_text}"
        )


class BrokerError(NetguardError):
    """The MQTT broker failed or refused us."""


class BrokerUnavailableError(BrokerError, TransientError):
    """The broker could not be reached; the client will reconnect."""


class PayloadError(NetguardError):
    """An MQTT payload could not be decoded into an event.

    Attributes:
        reason: A short machine-readable reason (``malformed``, ``oversized``,
            ``unknown_sensor``, ``topic_mismatch``, ...).
    """

    def __init__(self, reason: str, message: str) -> None:
        self.reason = reason
        super().__init__(message)


class NotifyError(NetguardError):
    """A notifier failed to deliver an alert."""


class NotifyTransientError(NotifyError, TransientError):
    """Delivery failed in a way worth retrying (connection refused, 5xx, rate limit)."""


class AuditError(NetguardError):
    """The event log's hash chain does not verify."""


class TicketConflictError(TicketError):
    """The action would make a second active ticket for the same fault key.

    Attributes:
        ticket_id: The human ticket id.
        action: The refused action.
    """

    def __init__(self, ticket_id: str, action: str, reason: str) -> None:
        self.ticket_id = ticket_id
        self.action = action
        super().__init__(f"cannot {action} {ticket_id}: {reason}")


class DemoError(NetguardError):
    """The demo could not set up its simulated estate (agents, broker, sink)."""


class RegistryError(NetguardError):
    """A change to the door-sensor registry was refused (duplicate id, bad time span)."""


class RegistryInputError(RegistryError, InvalidInputError):
    """A registry change refused as malformed input (a window spec, time zone or span):
    exit 2 in the CLI, like any usage error."""
