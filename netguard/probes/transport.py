"""The SNMP transport: one shared pysnmp engine, GET for scalars, GETBULK column walks.

This is the only module that imports pysnmp. It hands plain Python values
(``int``/``bytes``/``str``/``None``) to the decoder.

What the DESIGN notes taught, applied here: one engine for the process, numeric OIDs
with ``lookupMib=False``, ObjectTypes built once per agent, walks that stop on any
error (a dead host keeps yielding timeouts otherwise), and noSuchObject/noSuchInstance
read as "absent". Several columns are walked in one GETBULK (rows come back
interleaved), and max-repetitions halves when the agent answers ``tooBig`` or a walk
times out, then grows back after clean walks.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from types import TracebackType
from typing import Any

from netguard.errors import AgentResponseError, AgentUnreachableError, ProbeError
from netguard.probes.config import TargetConfig
from netguard.probes.decode import Index, RawValue
from netguard.probes.profiles import Metric

log = logging.getLogger("netguard.probes.transport")

_AUTH = {
    "none": "USM_AUTH_NONE", "md5": "USM_AUTH_HMAC96_MD5", "sha": "USM_AUTH_HMAC96_SHA",
    "sha224": "USM_AUTH_HMAC128_SHA224", "sha256": "USM_AUTH_HMAC192_SHA256",
    "sha384": "USM_AUTH_HMAC256_SHA384", "sha512": "USM_AUTH_HMAC384_SHA512",
}
_PRIV = {
    "none": "USM_PRIV_NONE", "des": "USM_PRIV_CBC56_DES", "aes128": "USM_PRIV_CFB128_AES",
    "aes192": "USM_PRIV_CFB192_AES", "aes256": "USM_PRIV_CFB256_AES",
}
_OBJECT_CACHE_LIMIT = 4096
_MAX_COLUMNS_PER_PDU = 24
_TOO_BIG = 1
_NO_SUCH_NAME = 2  # SNMPv1 answers a GET of a missing object with this error


class SnmpTransport:
    """Owns the process's one pysnmp ``SnmpEngine``; bound to the running event loop.

    Use as ``async with SnmpTransport() as transport: agent = transport.agent(target)``.
    """

    def __init__(self) -> None:
        self._engine: Any = None
        self._hl: Any = None

    async def __aenter__(self) -> SnmpTransport:
        from pysnmp.hlapi.v3arch import asyncio as hl

        self._hl = hl
        self._engine = hl.SnmpEngine()
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
        authProtocol=getattr(hl, _AUTH[snmp.auth_protocol]),
        privProtocol=getattr(hl, _PRIV[snmp.priv_protocol]),
    )


def plain_value(value: Any) -> RawValue:
    """A pysnmp/pyasn1 value as ``int``, ``bytes``, ``str`` or ``None`` (absent)."""
    from pyasn1.type import univ
    from pysnmp.proto import rfc1902

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
        self.max_repetitions = target.snmp.max_repetitions
        self._object_types: dict[str, Any] = {}
        self.pdus = 0
        self.varbinds = 0
        self.values = 0
        # When the last GET (which carries sysUpTime) was answered, on the real clock.
        self.answered_at = 0.0
        # Rows the last walk found: the next walk asks for just that many (plus one to
        # see the end) instead of max-repetitions, so small tables cost one small PDU.
        self._rows_hint: int | None = None

    @property
    def tries(self) -> int:
        """Requests per PDU before giving up (1 + retries)."""
        return self.target.retries + 1

    async def _transport(self) -> Any:
        if self._udp is None:
            hl = self._t._hl
            self._udp = await hl.UdpTransportTarget.create(
                (self.target.host, self.target.port),
                timeout=self.target.timeout_seconds, retries=self.target.retries)
        return self._udp

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
        from pysnmp.proto import errind

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
                half = len(pending) // 2
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
        whole walk ends on any error indication. Max-repetitions halves on ``tooBig``
        or on a timeout mid-walk (one retry), and grows back after clean walks.

        Raises:
            AgentUnreachableError: The agent stopped answering.
            AgentResponseError: The agent answered with an error.
        """
        out: dict[str, dict[Index, RawValue]] = {c.name: {} for c in columns}
        if not columns:
            return out
        clean = True
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

    async def _walk_chunk(self, columns: Sequence[Metric],
                          out: dict[str, dict[Index, RawValue]]) -> bool:
        """Walk some columns together into ``out``; False if max-repetitions shrank."""
        hl = self._t._hl
        udp = await self._transport()
        cursor: dict[str, tuple[int, ...]] = {c.name: c.oid_tuple for c in columns}
        active = list(columns)
        retried = False
        first = True
        clean = True
        while active:
            request = [self._object_type(".".join(map(str, cursor[c.name]))) for c in active]
            reps = max(1, self.max_repetitions)
            if first and self._rows_hint is not None:
                reps = max(1, min(reps, self._rows_hint + 1))
            first = False
            if self.target.snmp.version == "1":
                err, status, _, var_binds = await hl.next_cmd(
                    self._t.engine, self._auth, udp, self._context, *request, lookupMib=False)
            else:
                err, status, _, var_binds = await hl.bulk_cmd(
                    self._t.engine, self._auth, udp, self._context, 0, reps, *request,
                    lookupMib=False)
            self.pdus += 1
            if err:
                from pysnmp.proto import errind

                if isinstance(err, errind.RequestTimedOut) and not retried and reps > 1:
                    # Big responses can be dropped on the way; try once with fewer rows.
                    retried = True
                    clean = False
                    self.max_repetitions = max(1, reps // 2)
                    log.info("%s: walk timed out; max-repetitions %d -> %d",
                             self.target.id, reps, self.max_repetitions)
                    continue
                raise self._error(err)
            code = int(status)
            if code == _TOO_BIG and reps > 1:
                clean = False
                self.max_repetitions = max(1, reps // 2)
                log.info("%s: tooBig; max-repetitions %d -> %d", self.target.id, reps,
                         self.max_repetitions)
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


async def fetch(session: AgentSession, scalars: Sequence[Metric], columns: Sequence[Metric]
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
