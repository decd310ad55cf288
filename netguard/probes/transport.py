"""The polling transport contract, and its pysnmp engine.

A transport (:class:`PollTransport`) opens :class:`PollSession` s, one per target; the
service serialises the polls of a target, so a session is never used concurrently. A
session GETs scalars and walks table columns, and hands plain Python values
(``int``/``bytes``/``str``/``None``) to the decoder; noSuchObject/noSuchInstance read as
absent. A dead agent raises ``AgentUnreachableError`` within ``timeout x (retries + 1)``
(for GETs and for a whole walk), a refused login ``AgentResponseError``. Engines are
chosen by name (:func:`open_transport`): ``gufo`` (netguard/probes/gufo_transport.py, the
default) and ``pysnmp`` (netguard/probes/pysnmp_transport.py, the only polling module
that imports pysnmp, loaded only when a target uses it).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from types import TracebackType
from typing import Protocol

from netguard.clock import Clock
from netguard.errors import AgentResponseError
from netguard.probes.config import POLL_ENGINES, TargetConfig
from netguard.probes.decode import Index, RawValue
from netguard.probes.gufo_transport import GufoTransport
from netguard.probes.profiles import Metric


class PollSession(Protocol):
    """Requests to one agent (see the module docstring for the contract).

    Attributes:
        target: The agent's configuration.
        max_repetitions: Rows the next GETBULK asks for at most (adapts).
        pdus: Requests sent (including retries and SNMPv3 discovery).
        varbinds: Values received (an engine may count those past a column's end).
        values: Values handed to the decoder.
        too_big: Answers that said "does not fit"; each split a GET or shrank a walk.
        walk_timeouts: Walk requests that got no answer in time.
        answered_at: When the last GET was answered (``time.monotonic``).
    """

    target: TargetConfig
    max_repetitions: int

    @property
    def pdus(self) -> int: ...

    @property
    def varbinds(self) -> int: ...

    @property
    def values(self) -> int: ...

    @property
    def too_big(self) -> int: ...

    @property
    def walk_timeouts(self) -> int: ...

    @property
    def answered_at(self) -> float: ...

    async def get(self, metrics: Sequence[Metric]) -> dict[str, RawValue]:
        """GET scalars; absent objects come back as ``None``."""
        ...

    async def walk(self, columns: Sequence[Metric]) -> dict[str, dict[Index, RawValue]]:
        """Walk table columns: column name -> index -> value."""
        ...

    def close(self) -> None:
        """Release what the session holds (its socket); a poll in flight may finish."""
        ...


class PollTransport(Protocol):
    """An open polling engine; an async context manager."""

    async def __aenter__(self) -> PollTransport: ...

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None: ...

    def agent(self, target: TargetConfig) -> PollSession:
        """A session with one agent."""
        ...


def open_transport(engine: str, *, clock: Clock | None = None,
                   max_open_sockets: int = 512) -> PollTransport:
    """A polling transport by engine name (not yet entered).

    Args:
        engine: ``gufo`` or ``pysnmp``.
        clock: The monotonic clock (gufo uses it for the SNMPv3 time window).
        max_open_sockets: The gufo session pool's cap of idle UDP sockets.

    Raises:
        ValueError: Unknown engine name.
    """
    if engine == "gufo":
        return GufoTransport(clock=clock, max_open_sockets=max_open_sockets)
    if engine == "pysnmp":
        # pysnmp (~0.2 s to import, and a large MIB builder) loads only when a target
        # polls with it; the default engine never needs it.
        from netguard.probes.pysnmp_transport import SnmpTransport  # noqa: PLC0415

        return SnmpTransport()
    raise ValueError(f"unknown polling engine {engine!r} (one of {', '.join(POLL_ENGINES)})")


async def fetch(session: PollSession, scalars: Sequence[Metric], columns: Sequence[Metric]
                ) -> tuple[Mapping[str, RawValue], Mapping[str, Mapping[Index, RawValue]],
                           str | None]:
    """GET the scalars, then walk the columns (a dead agent fails fast on the GET).

    Returns:
        Scalars, columns, and why the walk stopped early if the agent answered the GET
        but refused the walk (the poll keeps what it has).

    Raises:
        AgentUnreachableError: No answer.
        AgentResponseError: The agent refused the GET (e.g. SNMPv3 authentication).
    """
    values = await session.get(scalars)
    try:
        tables = await session.walk(columns)
    except AgentResponseError as exc:
        return values, {}, str(exc).removeprefix(f"{session.target.id}: ")
    return values, tables, None
