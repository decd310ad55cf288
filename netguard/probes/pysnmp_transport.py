"""The ``pysnmp`` polling engine (see :mod:`netguard.probes.transport` for the contract).

What the DESIGN notes taught, applied here: one engine for the process, numeric OIDs
with ``lookupMib=False``, ObjectTypes built once per agent, walks that stop on any
error (a dead host keeps yielding timeouts otherwise), and noSuchObject/noSuchInstance
read as "absent". Several columns are walked in one GETBULK (rows come back
interleaved), and max-repetitions halves when a response does not fit, then grows back
after clean walks.

What "does not fit" looks like on the wire, measured against real agents here:

- net-snmp ``snmpd`` 5.9 answers a GET whose response exceeds the manager's SNMPv3
  ``msgMaxSize`` with ``tooBig``, and such a GETBULK with ``genErr`` (not the truncated
  response RFC 3416 4.2.3 asks for). Agents that follow RFC 1905 loosely answer ``tooBig``.
- pysnmp-based agents (snmpsim) and any agent whose response exceeds the 65,507-byte UDP
  limit send nothing: the request times out.

So a GET that gets ``tooBig`` is split in halves; a GETBULK that gets ``tooBig`` or
``genErr`` is asked again with half the rows, down to one (then ``genErr`` is a real
error); and each retry of a GETBULK that timed out asks for half the rows. Retries of a
walk are made here, not by pysnmp, and a whole walk waits on silence for at most
``timeout x (retries + 1)``: each unanswered request uses up one try of the walk. So an
agent that dies or stops answering mid-walk ends the walk as promptly as a dead agent
ends a GET, while one dropped oversized response (with ``retries >= 1``) is absorbed.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from types import TracebackType
from typing import Any

from pyasn1.type import univ
from pysnmp.error import PySnmpError
from pysnmp.hlapi.v3arch import asyncio as hl
from pysnmp.proto import errind, rfc1902

from netguard.errors import AgentResponseError, AgentUnreachableError, ProbeError
from netguard.probes.config import TargetConfig
from netguard.probes.decode import Index, RawValue
from netguard.probes.profiles import Metric

# The logger keeps the name it had when this engine lived in transport.py.
log = logging.getLogger("netguard.probes.transport")

# Config names -> pysnmp's hlapi constants (shared with the trap receiver).
AUTH_PROTOCOLS = {
    "none": "USM_AUTH_NONE", "md5": "USM_AUTH_HMAC96_MD5", "sha": "USM_AUTH_HMAC96_SHA",
    "sha224": "USM_AUTH_HMAC128_SHA224", "sha256": "USM_AUTH_HMAC192_SHA256",
    "sha384": "USM_AUTH_HMAC256_SHA384", "sha512": "USM_AUTH_HMAC384_SHA512",
}
PRIV_PROTOCOLS = {
    "none": "USM_PRIV_NONE", "des": "USM_PRIV_CBC56_DES", "aes128": "USM_PRIV_CFB128_AES",
    "aes192": "USM_PRIV_CFB192_AES", "aes256": "USM_PRIV_CFB256_AES",
}


_OBJECT_CACHE_LIMIT = 4096
_MAX_COLUMNS_PER_PDU = 24
_TOO_BIG = 1
_NO_SUCH_NAME = 2  # SNMPv1 answers a GET of a missing object with this error
_GEN_ERR = 5
_MIN_MESSAGE_SIZE, _MAX_MESSAGE_SIZE = 484, 65507  # RFC 3412 msgMaxSize bounds; UDP


class SnmpTransport:
    """Owns the process's one pysnmp ``SnmpEngine``; bound to the running event loop.

    Use as ``async with SnmpTransport() as transport: agent = transport.agent(target)``.

    Args:
        max_message_size: The largest SNMP message this engine accepts, sent to SNMPv3
            agents as ``msgMaxSize`` (484 to 65507; default 65507). A value below the
            path MTU (e.g. 1400) keeps v3 responses unfragmented across links that drop
            IP fragments; agents then answer big requests with ``tooBig``/``genErr``,
            which the transport adapts to. SNMPv1/v2c have no such field.

    Raises:
        ValueError: ``max_message_size`` is out of range.
    """

    def __init__(self, *, max_message_size: int | None = None) -> None:
        if max_message_size is not None and not (
                _MIN_MESSAGE_SIZE <= max_message_size <= _MAX_MESSAGE_SIZE):
            raise ValueError(f"max_message_size must be {_MIN_MESSAGE_SIZE} to "
                             f"{_MAX_MESSAGE_SIZE}, not {max_message_size}")
        self.max_message_size = max_message_size
        self._engine: Any = None
        self._hl: Any = None

    async def __aenter__(self) -> SnmpTransport:
        self._hl = hl
        self._engine = hl.SnmpEngine()
        if self.max_message_size is not None:
            (size,) = self._engine.get_mib_builder().import_symbols(
                "__SNMP-FRAMEWORK-MIB", "snmpEngineMaxMessageSize")
            size.syntax = size.syntax.clone(self.max_message_size)
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        if self._engine is not None:
            self._engine.close_dispatcher()
            self._engine = None

    @property
    def engine(self) -> Any:
        """The pysnmp engine (for the trap receiver and benchmarks)."""
        if self._engine is None:
            raise RuntimeError("SnmpTransport is not open")
        return self._engine

    def agent(self, target: TargetConfig) -> AgentSession:
        """A session with one agent (credentials and prebuilt request objects)."""
        return AgentSession(self, target)


def _auth_data(hl: Any, target: TargetConfig) -> Any:
    snmp = target.snmp
    if snmp.version in ("1", "2c"):
        assert snmp.community is not None
        return hl.CommunityData(snmp.community.get_secret_value(),
                                mpModel=0 if snmp.version == "1" else 1)
    auth_key = snmp.auth_key.get_secret_value() if snmp.auth_key else None
    priv_key = snmp.priv_key.get_secret_value() if snmp.priv_key else None
    return hl.UsmUserData(
        snmp.user, authKey=auth_key, privKey=priv_key,
        authProtocol=getattr(hl, AUTH_PROTOCOLS[snmp.auth_protocol]),
        privProtocol=getattr(hl, PRIV_PROTOCOLS[snmp.priv_protocol]),
    )


def plain_value(value: Any) -> RawValue:
    """A pysnmp/pyasn1 value as ``int``, ``bytes``, ``str`` or ``None`` (absent)."""
    if isinstance(value, univ.Null):  # also noSuchObject/noSuchInstance/endOfMibView
        return None
    if isinstance(value, univ.Integer):  # Integer32, Counter32/64, Gauge32, TimeTicks
        return int(value)
    if isinstance(value, rfc1902.IpAddress):
        return value.prettyPrint()  # type: ignore[no-any-return]
    if isinstance(value, univ.OctetString):
        return bytes(value)
    if isinstance(value, univ.ObjectIdentifier):
        return str(value)
    return None  # Null, noSuchObject, noSuchInstance, endOfMibView


class AgentSession:
    """Requests to one agent. Not safe for concurrent use: the service serialises polls.

    Args:
        transport: The open transport.
        target: The agent's configuration.
    """

    def __init__(self, transport: SnmpTransport, target: TargetConfig) -> None:
        self._t = transport
        self.target = target
        self._auth = _auth_data(transport._hl, target)
        self._context = transport._hl.ContextData(contextName=target.snmp.context_name)
        self._udp: Any = None
        self._udp_once: Any = None  # the same agent without pysnmp retries (walks)
        # Max-repetitions the next GETBULK asks for at most (adapts; see the module doc).
        self.max_repetitions = target.snmp.max_repetitions
        self._object_types: dict[str, Any] = {}
        self.pdus = 0
        self.varbinds = 0
        self.values = 0
        # Answers that said "does not fit" (tooBig, or genErr to a multi-row GETBULK):
        # each split a GET or shrank a GETBULK.
        self.too_big = 0
        # GETBULK/GETNEXT requests of walks that got no answer in time.
        self.walk_timeouts = 0
        self._tries_left = 0  # unanswered requests the current walk may still wait for
        # When the last GET (which carries sysUpTime) was answered, on the real clock.
        self.answered_at = 0.0
        # Rows the last walk found: the next walk asks for just that many (plus one to
        # see the end) instead of max-repetitions, so small tables cost one small PDU.
        self._rows_hint: int | None = None

    @property
    def tries(self) -> int:
        """Requests per PDU before giving up (1 + retries)."""
        return self.target.retries + 1

    def close(self) -> None:
        """Nothing to release: the engine's dispatcher owns the socket, shared by all."""

    async def _transport(self) -> Any:
        if self._udp is None:
            self._udp = await self._create_transport(self.target.retries)
        return self._udp

    async def _transport_once(self) -> Any:
        if self._udp_once is None:
            self._udp_once = await self._create_transport(0)
        return self._udp_once

    async def _create_transport(self, retries: int) -> Any:
        try:
            return await self._t._hl.UdpTransportTarget.create(
                (self.target.host, self.target.port),
                timeout=self.target.timeout_seconds, retries=retries)
        except PySnmpError as exc:
            # A name that does not resolve (DNS down, a typo) is an unreachable agent, not
            # a crash; nothing is cached, so the next poll resolves again.
            cause = exc.__cause__ or exc.__context__
            reason = cause.strerror if isinstance(cause, OSError) and cause.strerror else exc
            raise AgentUnreachableError(
                self.target.id, f"cannot resolve {self.target.host}: {reason}") from exc

    def _object_type(self, oid: str) -> Any:
        obj = self._object_types.get(oid)
        if obj is None:
            hl = self._t._hl
            obj = hl.ObjectType(hl.ObjectIdentity(oid))
            if len(self._object_types) >= _OBJECT_CACHE_LIMIT:
                # Walk continuation OIDs follow table contents; keep the cache bounded.
                self._object_types.clear()
            self._object_types[oid] = obj
        return obj

    def _error(self, indication: Any) -> ProbeError:
        tid = self.target.id
        if isinstance(indication, errind.RequestTimedOut):
            hint = " (a wrong community looks the same)" if self.target.snmp.version != "3" \
                else " (a wrong SNMPv3 privacy key looks the same)"
            return AgentUnreachableError(
                tid, f"no response from {self.target.address} within "
                f"{self.target.timeout_seconds:g} s x {self.tries} tries{hint}")
        text = str(indication)
        if self.target.snmp.version == "3":
            text = f"SNMPv3 {text} (check user, auth/priv protocols and keys)"
        return AgentResponseError(tid, text)

    async def get(self, metrics: Sequence[Metric]) -> dict[str, RawValue]:
        """GET the scalars in one PDU; absent objects come back as ``None``.

        Raises:
            AgentUnreachableError: No answer within timeout x tries.
            AgentResponseError: The agent refused (v3 auth failure, SNMP error).
        """
        if not metrics:
            return {}
        hl = self._t._hl
        udp = await self._transport()
        pending = list(metrics)
        out: dict[str, RawValue] = {}
        while pending:
            err, status, index, var_binds = await hl.get_cmd(
                self._t.engine, self._auth, udp, self._context,
                *(self._object_type(m.oid) for m in pending), lookupMib=False)
            self.pdus += 1
            if err:
                raise self._error(err)
            code = int(status)
            if code == _NO_SUCH_NAME and 0 < int(index) <= len(pending):
                # SNMPv1: drop the missing object and ask again for the rest.
                out[pending.pop(int(index) - 1).name] = None
                continue
            if code == _TOO_BIG and len(pending) > 1:
                self.too_big += 1
                half = len(pending) // 2
                log.info("%s: tooBig; GET of %d objects split in two", self.target.id,
                         len(pending))
                out.update(await self.get(pending[:half]))
                pending = pending[half:]
                continue
            if code:
                raise AgentResponseError(self.target.id, f"GET failed: {status.prettyPrint()}")
            self.varbinds += len(var_binds)
            for metric, vb in zip(pending, var_binds, strict=False):
                out[metric.name] = plain_value(vb[1])
            self.values += len(var_binds)
            self.answered_at = time.monotonic()
            pending = []
        return out

    async def walk(self, columns: Sequence[Metric]) -> dict[str, dict[Index, RawValue]]:
        """Walk table columns together with GETBULK (GETNEXT for SNMPv1).

        The walk of a column ends at the first OID outside it or at endOfMibView. The
        whole walk ends on any error it cannot adapt to. Max-repetitions halves on
        ``tooBig`` (or ``genErr``) to a multi-row GETBULK and on each retry after a
        timeout, and grows back after clean walks; see the module docstring.

        Raises:
            AgentUnreachableError: The agent stopped answering (the walk waited
                timeout x tries in all).
            AgentResponseError: The agent answered with an error.
        """
        out: dict[str, dict[Index, RawValue]] = {c.name: {} for c in columns}
        if not columns:
            return out
        clean = True
        self._tries_left = self.tries
        # Agents bound varbinds per response (snmpsim: 64 in all); too many columns in
        # one GETBULK would leave no room for even one row.
        for start in range(0, len(columns), _MAX_COLUMNS_PER_PDU):
            chunk_clean = await self._walk_chunk(columns[start:start + _MAX_COLUMNS_PER_PDU],
                                                 out)
            clean = clean and chunk_clean
        self._rows_hint = max((len(rows) for rows in out.values()), default=0)
        self.values += sum(len(rows) for rows in out.values())
        if clean and self.max_repetitions < self.target.snmp.max_repetitions:
            self.max_repetitions = min(self.target.snmp.max_repetitions,
                                       self.max_repetitions * 2)
        return out

    def _shrink(self, reps: int, why: str) -> int:
        """Halve max-repetitions after a response that did not fit; the new value."""
        self.max_repetitions = max(1, reps // 2)
        log.info("%s: %s; max-repetitions %d -> %d", self.target.id, why, reps,
                 self.max_repetitions)
        return self.max_repetitions

    async def _walk_chunk(self, columns: Sequence[Metric],
                          out: dict[str, dict[Index, RawValue]]) -> bool:
        """Walk some columns together into ``out``; False if max-repetitions shrank."""
        hl = self._t._hl
        udp = await self._transport_once()
        cursor: dict[str, tuple[int, ...]] = {c.name: c.oid_tuple for c in columns}
        active = list(columns)
        first = True
        clean = True
        while active:
            request = [self._object_type(".".join(map(str, cursor[c.name]))) for c in active]
            reps = max(1, self.max_repetitions)
            if first and self._rows_hint is not None:
                reps = max(1, min(reps, self._rows_hint + 1))
            first = False
            # Retries are made here so each can ask for fewer rows (a response too big
            # for the agent or the path is often just dropped), from the walk's budget.
            while True:
                if self.target.snmp.version == "1":
                    err, status, _, var_binds = await hl.next_cmd(
                        self._t.engine, self._auth, udp, self._context, *request,
                        lookupMib=False)
                else:
                    err, status, _, var_binds = await hl.bulk_cmd(
                        self._t.engine, self._auth, udp, self._context, 0, reps, *request,
                        lookupMib=False)
                self.pdus += 1
                if not isinstance(err, errind.RequestTimedOut):
                    break
                self.walk_timeouts += 1
                self._tries_left -= 1
                if reps > 1 and self.target.snmp.version != "1":
                    clean = False
                    # Shrink even when giving up: the next poll starts smaller.
                    reps = self._shrink(reps, "walk timed out")
                if self._tries_left <= 0:
                    break
            if err:
                raise self._error(err)
            code = int(status)
            if code in (_TOO_BIG, _GEN_ERR) and reps > 1 \
                    and self.target.snmp.version != "1":
                self.too_big += 1
                clean = False
                self._shrink(reps, "tooBig" if code == _TOO_BIG else "genErr to GETBULK")
                continue
            if code == _NO_SUCH_NAME and self.target.snmp.version == "1":
                break  # SNMPv1 end of MIB
            if code:
                raise AgentResponseError(self.target.id,
                                         f"GETBULK failed: {status.prettyPrint()}")
            self.varbinds += len(var_binds)
            done, progressed = _take_rows(active, var_binds, cursor, out)
            active = [c for c in active if c.name not in done]
            if not progressed:
                break
        return clean


def _take_rows(active: Sequence[Metric], var_binds: Sequence[Any],
               cursor: dict[str, tuple[int, ...]],
               out: dict[str, dict[Index, RawValue]]) -> tuple[set[str], bool]:
    """Sort a GETBULK response (rows interleaved by column) into ``out``.

    Returns the columns that ended and whether any column moved forward.
    """
    width = len(active)
    done: set[str] = set()
    progressed = False
    for pos, vb in enumerate(var_binds):
        column = active[pos % width]
        if column.name in done:
            continue
        oid = tuple(vb[0])  # an ObjectName when lookupMib=False
        prefix = column.oid_tuple
        value = vb[1]
        if oid[:len(prefix)] != prefix or len(oid) <= len(prefix) \
                or oid <= cursor[column.name]:
            done.add(column.name)
            continue
        plain = plain_value(value)
        if plain is None and type(value).__name__ == "EndOfMibView":
            done.add(column.name)
            continue
        out[column.name][oid[len(prefix):]] = plain
        cursor[column.name] = oid
        progressed = True
    return done, progressed
