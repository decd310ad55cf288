"""The gufo-snmp polling transport (the default engine; see docs/decisions.md).

gufo-snmp encodes, decodes and does socket I/O in Rust and returns plain ``int``,
``bytes`` and ``str``. What it lacks, measured against net-snmp ``snmpd`` 5.9 and
snmpsim here, netguard adds:

- **Retries.** A gufo session has one timeout and no retries. GETs are retried here, so
  a dead agent is reported after ``timeout x (retries + 1)``; a whole walk waits on
  silence for at most that too (each unanswered request uses one try of the walk).
- **Errors.** A wrong community and a wrong SNMPv3 privacy key are both a bare timeout
  (the reason says so); a wrong user or auth key is ``SnmpAuthError`` at once. A closed
  port is a ``TimeoutError("connection refused")`` at once.
- **Error-status is not shown.** gufo drops every varbind whose value is NULL and, apart
  from authorizationError, ignores the error-status. So:

  - a GET answered with ``tooBig`` (or SNMPv1 ``noSuchName`` for one object) comes back
    as an empty answer: a multi-object GET that returns nothing is split in halves, down
    to single objects, which then read as absent;
  - a GETBULK answered with ``tooBig``/``genErr`` (net-snmp's answer to a response above
    the manager's SNMPv3 ``msgMaxSize``, which gufo fixes at 2,048 bytes) looks like the
    end of the column: a request that brought no rows is asked again with half the
    max-repetitions, down to one; if that gets further, the walk adapts (``too_big``);
  - an object that always fails ends its column early without an error (pysnmp reports
    "table walk failed" there); this is the price of the engine, documented in
    docs/probes.md.

  gufo reads a response into a 4,080-byte buffer: a bigger v1/v2c response is
  ``SnmpDecodeError``, which also halves max-repetitions.
- **One multi-column GETBULK is not possible**: each column is its own walk, started
  with as many rows as the column had last time (plus one to see its end), so a column
  usually costs one PDU. Chosen by measurement; see docs/decisions.md.
- **The SNMPv3 time window.** gufo does not advance the agent's engine time between
  requests; after more than 150 s without a request (injected monotonic clock) the
  session is replaced, which re-discovers the engine id, boots and time.
- **Sockets.** One session is one UDP socket. Idle sessions live in an LRU pool capped at
  ``max_open_sockets``; an evicted session is closed when its last poll ends. A v3
  session evicted within 150 s of its last request keeps its engine id (no discovery).
- **Per-device keys under one user name** just work: each session carries its own
  user and keys (issue 14, item 7).
"""

from __future__ import annotations

import asyncio
import logging
import socket
import time
from array import array
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Sequence
from types import TracebackType
from typing import Any, TypeVar

from gufo.snmp import (
    Aes128Key,
    Aes192Key,
    Aes256Key,
    BaseAuthKey,
    BasePrivKey,
    DesKey,
    Md5Key,
    Sha1Key,
    Sha224Key,
    Sha256Key,
    Sha384Key,
    Sha512Key,
    SnmpAuthError,
    SnmpDecodeError,
    SnmpError,
    SnmpVersion,
    User,
)
from gufo.snmp.aio.client import SnmpSession
from gufo.snmp.policer import BasePolicer

from netguard.clock import Clock, SystemClock
from netguard.errors import AgentResponseError, AgentUnreachableError, ProbeError
from netguard.probes.config import TargetConfig
from netguard.probes.decode import Index, RawValue
from netguard.probes.gufo_wire import ColumnWalk, plain, take_rows
from netguard.probes.profiles import Metric

log = logging.getLogger("netguard.probes.gufo")

T = TypeVar("T")

_AUTH_KEYS: dict[str, type[BaseAuthKey]] = {
    "md5": Md5Key, "sha": Sha1Key, "sha224": Sha224Key, "sha256": Sha256Key,
    "sha384": Sha384Key, "sha512": Sha512Key,
}
_PRIV_KEYS: dict[str, type[BasePrivKey]] = {
    "des": DesKey, "aes128": Aes128Key, "aes192": Aes192Key, "aes256": Aes256Key,
}
# RFC 3414's time window: an agent refuses a message whose engine time is more than
# 150 s off, and gufo only learns the time from answers.
ENGINE_TIME_WINDOW = 150.0


class _RequestCounter(BasePolicer):
    """Counts the requests a gufo session sends (its policer hook runs before each)."""

    def __init__(self) -> None:
        self.sent = 0

    def get_timeout(self, ts: int) -> int | None:
        return None

    async def wait(self) -> None:
        self.sent += 1


class GufoTransport:
    """The gufo-snmp polling engine: a pool of per-target sessions.

    Use as ``async with GufoTransport() as transport: session = transport.agent(target)``.

    Args:
        clock: Monotonic time for the SNMPv3 time window (``SystemClock`` by default).
        max_open_sockets: Idle sessions (UDP sockets) kept open, least recently used
            closed first.

    Raises:
        ValueError: ``max_open_sockets`` is below 1.
    """

    def __init__(self, *, clock: Clock | None = None, max_open_sockets: int = 512) -> None:
        if max_open_sockets < 1:
            raise ValueError(f"max_open_sockets must be at least 1, not {max_open_sockets}")
        self.clock = clock or SystemClock()
        self.max_open_sockets = max_open_sockets
        self._pool: OrderedDict[GufoAgentSession, None] = OrderedDict()
        self.evictions = 0

    async def __aenter__(self) -> GufoTransport:
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        for session in list(self._pool):
            session.close()
        self._pool.clear()

    @property
    def open_sockets(self) -> int:
        """Sessions the pool holds open (polls in flight may hold evicted ones too)."""
        return len(self._pool)

    def agent(self, target: TargetConfig) -> GufoAgentSession:
        """A session with one agent; its socket is opened on the first request."""
        return GufoAgentSession(self, target)

    def _touch(self, session: GufoAgentSession) -> None:
        """Mark ``session`` most recently used; close the oldest beyond the cap."""
        self._pool[session] = None
        self._pool.move_to_end(session)
        while len(self._pool) > self.max_open_sockets:
            oldest, _ = self._pool.popitem(last=False)
            oldest.close()
            self.evictions += 1

    def _forget(self, session: GufoAgentSession) -> None:
        self._pool.pop(session, None)


class GufoAgentSession:
    """Requests to one agent over gufo-snmp. Not safe for concurrent use.

    Args:
        transport: The open transport.
        target: The agent's configuration.
    """

    # One per target, kept across polls: no per-instance dict.
    __slots__ = ("_counter", "_engine_id", "_hint_columns", "_last_request", "_rows_hint",
                 "_session", "_t", "_tries_left", "_user", "_v3", "answered_at",
                 "discoveries", "max_repetitions", "target", "too_big", "values",
                 "varbinds", "walk_timeouts")

    def __init__(self, transport: GufoTransport, target: TargetConfig) -> None:
        self._t = transport
        self.target = target
        self._v3 = target.snmp.version == "3"
        self._user = _user(target) if self._v3 else None
        self._counter = _RequestCounter()
        self._session: SnmpSession | None = None
        self._engine_id: bytes | None = None
        self._last_request = -1e18  # monotonic time of the last request sent
        self.max_repetitions = target.snmp.max_repetitions
        self.varbinds = 0
        self.values = 0
        self.too_big = 0
        self.walk_timeouts = 0
        self.discoveries = 0  # SNMPv3 sessions opened without a known engine id
        self.answered_at = 0.0
        self._tries_left = 0
        # Rows each column had last time (-1: not walked yet), by position in the columns
        # walked last: the next walk asks for that many plus one. An array beside the
        # profile's shared tuple of columns holds it in 4 bytes a column where a dict by
        # OID took 0.4 KB a target (bench/RESULTS.md, issue 10 section 8).
        self._hint_columns: tuple[Metric, ...] = ()
        self._rows_hint = array("i")

    @property
    def pdus(self) -> int:
        """Requests sent, including retries and SNMPv3 discovery."""
        return self._counter.sent

    @property
    def tries(self) -> int:
        """Requests per PDU before giving up (1 + retries)."""
        return self.target.retries + 1

    def close(self) -> None:
        """Drop the socket (closed once no poll in flight holds it) and leave the pool."""
        self._session = None
        self._t._forget(self)

    # --- sessions ---------------------------------------------------------------

    async def _open(self) -> SnmpSession:
        """The gufo session, opened (and for v3 synchronised) if needed."""
        now = self._t.clock.monotonic()
        if self._v3 and now - self._last_request > ENGINE_TIME_WINDOW:
            # The engine time gufo holds is stale: re-discover (the agent may also have
            # been replaced, with a new engine id).
            self._session = None
            self._engine_id = None
        self._last_request = now
        session = self._session
        if session is None:
            session = await self._connect()
            self._session = session
        self._t._touch(self)
        return session

    async def _connect(self) -> SnmpSession:
        snmp = self.target.snmp
        host = await self._resolve()
        common: dict[str, Any] = {"timeout": self.target.timeout_seconds,
                                  "max_repetitions": self.max_repetitions,
                                  "policer": self._counter}
        if not self._v3:
            assert snmp.community is not None
            return SnmpSession(host, self.target.port,
                               community=snmp.community.get_secret_value(),
                               version=SnmpVersion.v1 if snmp.version == "1"
                               else SnmpVersion.v2c, **common)
        session = SnmpSession(host, self.target.port, user=self._user,
                              engine_id=self._engine_id, **common)
        if self._engine_id is None:
            self.discoveries += 1
        await session.refresh()  # engine id discovery (when unknown), boots and time
        self._engine_id = session.get_engine_id()
        return session

    async def _resolve(self) -> str:
        """The agent's IP address; a name is resolved for each new socket."""
        host = self.target.host
        try:
            socket.inet_pton(socket.AF_INET6 if ":" in host else socket.AF_INET, host)
        except OSError:
            pass
        else:
            return host
        try:
            infos = await asyncio.get_running_loop().getaddrinfo(
                host, self.target.port, type=socket.SOCK_DGRAM)
        except OSError as exc:
            reason = exc.strerror or str(exc)
            raise AgentUnreachableError(self.target.id,
                                        f"cannot resolve {host}: {reason}") from exc
        return str(infos[0][4][0])

    def _drop(self) -> None:
        """Forget the session after a failure: the next try starts afresh."""
        self._session = None
        self._engine_id = None
        self._t._forget(self)

    async def _request(self, op: Callable[[SnmpSession], Awaitable[T]]) -> T:
        """Run ``op`` with retries: at most ``tries`` unanswered tries in all."""
        refused = False
        for _ in range(self.tries):
            try:
                return await op(await self._open())
            except TimeoutError as exc:
                refused = refused or "refused" in str(exc)
                if self._v3:
                    self._drop()  # it may be a new engine id: discover again
            except SnmpAuthError as exc:
                self._drop()
                raise self._auth_error() from exc
            except SnmpError as exc:
                raise AgentResponseError(self.target.id, f"bad answer: {exc}") from exc
            except OSError as exc:
                raise AgentUnreachableError(
                    self.target.id, f"cannot reach {self.target.address}: "
                    f"{exc.strerror or exc}") from exc
        raise self._timeout_error(refused)

    def _timeout_error(self, refused: bool = False) -> ProbeError:
        if refused:
            hint = " (the port is closed: nothing listens there)"
        elif self._v3:
            hint = " (a wrong SNMPv3 privacy key looks the same)"
        else:
            hint = " (a wrong community looks the same)"
        return AgentUnreachableError(
            self.target.id, f"no response from {self.target.address} within "
            f"{self.target.timeout_seconds:g} s x {self.tries} tries{hint}")

    def _auth_error(self) -> ProbeError:
        return AgentResponseError(
            self.target.id, "SNMPv3 authentication failed (check user, auth/priv "
            "protocols and keys)")

    # --- GET --------------------------------------------------------------------

    async def get(self, metrics: Sequence[Metric]) -> dict[str, RawValue]:
        """GET the scalars; absent objects come back as ``None``.

        Raises:
            AgentUnreachableError: No answer within timeout x tries.
            AgentResponseError: The agent refused (v3 authentication) or answered
                something undecodable.
        """
        out: dict[str, RawValue] = {}
        if metrics:
            await self._get_into(list(metrics), out)
            self.answered_at = time.monotonic()
        return out

    async def _get_into(self, metrics: list[Metric], out: dict[str, RawValue]) -> None:
        oids = [_oid_text(m) for m in metrics]
        answer = await self._request(lambda s: s.get_many(oids))
        if not answer and len(metrics) > 1:
            # tooBig, or SNMPv1 noSuchName for one object, or all absent: gufo shows
            # each as an empty answer. Halves narrow it down to what is really absent.
            self.too_big += 1
            half = len(metrics) // 2
            await self._get_into(metrics[:half], out)
            await self._get_into(metrics[half:], out)
            return
        self.varbinds += len(answer)
        self.values += len(answer)
        for metric, oid in zip(metrics, oids, strict=True):
            out[metric.name] = plain(answer.get(oid))

    # --- walks ------------------------------------------------------------------

    async def walk(self, columns: Sequence[Metric]) -> dict[str, dict[Index, RawValue]]:
        """Walk table columns, one after another (GETBULK; GETNEXT for SNMPv1).

        Raises:
            AgentUnreachableError: The agent stopped answering (the walk waited
                timeout x tries in all).
            AgentResponseError: The agent refused, or an answer did not decode even
                with one row per request.
        """
        out: dict[str, dict[Index, RawValue]] = {}
        self._tries_left = self.tries
        clean = True
        hints = self._hints_for(columns)
        for position, column in enumerate(columns):
            rows, column_clean = await self._walk_column(column, hints[position])
            out[column.name] = rows
            clean = clean and column_clean
            hints[position] = len(rows)
            self.values += len(rows)
        if clean and self.max_repetitions < self.target.snmp.max_repetitions:
            self.max_repetitions = min(self.target.snmp.max_repetitions,
                                       self.max_repetitions * 2)
        return out

    def _hints_for(self, columns: Sequence[Metric]) -> array[int]:
        """The row counts of ``columns`` last time, by position (-1: unknown)."""
        walked = tuple(columns)  # the profile's own tuple comes back as it is
        if walked is not self._hint_columns and walked != self._hint_columns:
            # Other columns: keep what is known of those walked before, by OID.
            known = {c.oid: n for c, n in zip(self._hint_columns, self._rows_hint,
                                              strict=True)}
            self._rows_hint = array("i", [known.get(c.oid, -1) for c in walked])
            self._hint_columns = walked
        return self._rows_hint

    def _first_reps(self, hint: int) -> int:
        """Max-repetitions for a column: its last size (``hint``) plus one, else the
        session's (``hint`` -1: not walked yet).

        A column that ends exactly at the end of a response costs one more request
        (with no rows) and a re-walk to tell it from a refused response, so a size that
        divides the expected rows is avoided.
        """
        reps = max(1, self.max_repetitions)
        if hint < 0:
            return reps
        if hint + 1 <= reps:
            return hint + 1
        while reps > 1 and hint % reps == 0:
            reps -= 1
        return reps

    async def _walk_column(self, column: Metric, hint: int
                           ) -> tuple[dict[Index, RawValue], bool]:
        """All rows of one column; False when max-repetitions had to shrink."""
        reps = 1 if self.target.snmp.version == "1" else self._first_reps(hint)
        rows, ended_empty, reps, clean = await self._walk_once(column, reps)
        while ended_empty and reps > 1:
            # The request that ended the walk brought no rows: the column ended exactly
            # at a response boundary, or the agent refused a response that big
            # (tooBig/genErr, which gufo shows as an empty answer). Ask with fewer.
            smaller = max(1, reps // 2)
            again, ended_empty, reps, again_clean = await self._walk_once(column, smaller)
            clean = clean and again_clean
            if len(again) > len(rows):
                self.too_big += 1
                clean = False
                self.max_repetitions = min(self.max_repetitions, reps)
                log.info("%s: empty answer to a GETBULK of %s; max-repetitions -> %d",
                         self.target.id, column.name, reps)
                rows = again
        return rows, clean

    async def _walk_once(self, column: Metric, reps: int
                         ) -> tuple[dict[Index, RawValue], bool, int, bool]:
        """Walk a column from its start, one response at a time.

        Returns the rows, whether the request that ended it brought no rows, the
        max-repetitions it ended with, and False if that had to shrink.
        """
        base = _oid_text(column)
        rows: dict[Index, RawValue] = {}
        clean = True
        session = await self._open_for_walk()
        step = ColumnWalk(session, base, reps)
        last: Index = ()
        try:
            while True:
                try:
                    batch = await step.next()
                except TimeoutError as exc:
                    self._walk_timed_out(exc)
                    # Ask again from where it stopped. Max-repetitions stays: with gufo a
                    # response too big to arrive whole is a decode error below, not
                    # silence (only one above 65,507 bytes is dropped by the agent).
                    continue
                except SnmpDecodeError as exc:
                    # A response above gufo's 4,080-byte buffer arrives truncated.
                    if reps <= 1:
                        raise AgentResponseError(self.target.id,
                                                 f"GETBULK failed: {exc}") from exc
                    self.too_big += 1
                    clean = False
                    reps = self._shrink(reps, "response too big to decode")
                    step.restart(base, reps)
                    last = ()
                    continue
                except SnmpAuthError as exc:
                    self._drop()
                    raise self._auth_error() from exc
                except SnmpError as exc:
                    raise AgentResponseError(self.target.id,
                                             f"GETBULK failed: {exc}") from exc
                last, ended = take_rows(batch, base, rows, last)
                self.varbinds += len(batch) - (1 if batch and batch[-1] is None else 0)
                if ended is not None:
                    return rows, ended, reps, clean
        finally:
            step.close()

    def _walk_timed_out(self, exc: TimeoutError) -> None:
        """Count one unanswered walk request; raise once the walk's tries are spent."""
        self.walk_timeouts += 1
        self._tries_left -= 1
        if self._tries_left <= 0:
            if self._v3:
                self._drop()
            raise self._timeout_error("refused" in str(exc)) from exc

    async def _open_for_walk(self) -> SnmpSession:
        try:
            return await self._open()
        except TimeoutError as exc:  # v3 discovery unanswered: one try of the walk
            self.walk_timeouts += 1
            self._tries_left -= 1
            if self._tries_left <= 0:
                raise self._timeout_error("refused" in str(exc)) from exc
            return await self._open_for_walk()
        except SnmpAuthError as exc:
            self._drop()
            raise self._auth_error() from exc

    def _shrink(self, reps: int, why: str) -> int:
        """Halve max-repetitions; the new value."""
        self.max_repetitions = max(1, reps // 2)
        log.info("%s: %s; max-repetitions %d -> %d", self.target.id, why, reps,
                 self.max_repetitions)
        return self.max_repetitions


def _user(target: TargetConfig) -> User:
    snmp = target.snmp
    assert snmp.user is not None
    auth = None if snmp.auth_protocol == "none" or snmp.auth_key is None else \
        _AUTH_KEYS[snmp.auth_protocol](snmp.auth_key.get_secret_value().encode())
    priv = None if snmp.priv_protocol == "none" or snmp.priv_key is None else \
        _PRIV_KEYS[snmp.priv_protocol](snmp.priv_key.get_secret_value().encode())
    return User(snmp.user, auth_key=auth, priv_key=priv)


def _oid_text(metric: Metric) -> str:
    return ".".join(map(str, metric.oid_tuple))
