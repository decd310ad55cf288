"""SNMP trap receiver: linkDown/linkUp, coldStart/warmStart and UPS traps trigger re-polls.

It accepts v1/v2c traps whose community matches a target's, and v3 traps from targets
whose ``snmp.engine_id`` is configured (pysnmp drops v3 traps from unknown engine ids
silently; INFORMs do not need it). The sender is matched to a target by source address
plus community (v1/v2c) or by engine id (v3). The callback gets ``(target_id,
trap_name)``; the daemon re-polls that target at once. A trap that matches no target is
counted and logged, never raised.
"""

from __future__ import annotations

import ipaddress
import logging
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

from netguard.errors import ProbeError
from netguard.probes.config import TargetConfig, split_address

log = logging.getLogger("netguard.probes.traps")

SNMP_TRAP_OID = (1, 3, 6, 1, 6, 3, 1, 1, 4, 1, 0)
TRAP_NAMES = {
    "1.3.6.1.6.3.1.1.5.1": "coldStart",
    "1.3.6.1.6.3.1.1.5.2": "warmStart",
    "1.3.6.1.6.3.1.1.5.3": "linkDown",
    "1.3.6.1.6.3.1.1.5.4": "linkUp",
    "1.3.6.1.2.1.33.2.1": "upsTrapOnBattery",
    "1.3.6.1.2.1.33.2.2": "upsTrapTestCompleted",
    "1.3.6.1.2.1.33.2.3": "upsTrapAlarmEntryAdded",
    "1.3.6.1.2.1.33.2.4": "upsTrapAlarmEntryRemoved",
}


# Metric label values for a trap's type: the known names, plus these two. An agent can
# send any OID, so unknown ones are folded into "other" to bound the label's cardinality.
TRAP_TYPES: tuple[str, ...] = (*TRAP_NAMES.values(), "other", "unknown")
TRAP_REJECT_REASONS: tuple[str, ...] = ("unmatched", "malformed")


def trap_name(oid: str) -> str:
    """The trap's name (``linkDown``), or its numeric OID when netguard does not know it."""
    return TRAP_NAMES.get(oid.lstrip("."), oid.lstrip("."))


def trap_type(oid: str) -> str:
    """The trap's bounded type label: a known name, ``other``, or ``unknown`` (no OID)."""
    if not oid:
        return "unknown"
    return TRAP_NAMES.get(oid.lstrip("."), "other")


@dataclass(frozen=True, slots=True)
class TrapStats:
    """Trap counters since the receiver opened, by type (see :data:`TRAP_TYPES`).

    Attributes:
        received: Traps pysnmp accepted (community or USM user known).
        decoded: Traps matched to a target, which is then re-polled.
        rejected: Traps set aside, by ``(type, reason)``: ``unmatched`` (no target sends
            from that address with that community or user) or ``malformed`` (could not
            be read).
    """

    received: Mapping[str, int] = field(default_factory=dict)
    decoded: Mapping[str, int] = field(default_factory=dict)
    rejected: Mapping[tuple[str, str], int] = field(default_factory=dict)


def _same_host(a: str, b: str) -> bool:
    try:
        return ipaddress.ip_address(a) == ipaddress.ip_address(b)
    except ValueError:
        return a == b


class TrapReceiver:
    """Listens for SNMP traps on a UDP address; an async context manager.

    Args:
        listen: ``host:port`` to bind (e.g. ``0.0.0.0:162``).
        targets: Targets whose traps are accepted.
        on_trap: Called as ``on_trap(target_id, trap_name)`` for each matched trap.
    """

    def __init__(self, listen: str, targets: Sequence[TargetConfig],
                 on_trap: Callable[[str, str], None]) -> None:
        self.host, self.port = split_address(listen)
        self._targets = list(targets)
        self._on_trap = on_trap
        self._engine: Any = None
        self._communities: dict[str, str] = {}
        self.received = 0
        self.unmatched = 0
        self._received_by: Counter[str] = Counter()
        self._decoded_by: Counter[str] = Counter()
        self._rejected_by: Counter[tuple[str, str]] = Counter()

    def stats(self) -> TrapStats:
        """The counters now (copies: safe to read from a scrape thread)."""
        return TrapStats(received=dict(self._received_by), decoded=dict(self._decoded_by),
                         rejected=dict(self._rejected_by))

    async def __aenter__(self) -> TrapReceiver:
        # pysnmp (~0.2 s, and a large MIB builder) loads only when a receiver opens: the
        # metrics and the daemon import this module for its trap vocabulary, and a daemon
        # polling with gufo and without traps never needs pysnmp.
        from pysnmp.carrier.asyncio.dgram import udp  # noqa: PLC0415
        from pysnmp.entity import config, engine  # noqa: PLC0415
        from pysnmp.entity.rfc3413 import ntfrcv  # noqa: PLC0415
        from pysnmp.hlapi.v3arch import asyncio as hl  # noqa: PLC0415
        from pysnmp.proto.api import v2c  # noqa: PLC0415

        from netguard.probes.pysnmp_transport import (  # noqa: PLC0415
            AUTH_PROTOCOLS,
            PRIV_PROTOCOLS,
        )

        self._engine = engine.SnmpEngine()
        transport = udp.UdpTransport().open_server_mode((self.host, self.port))
        config.add_transport(self._engine, udp.DOMAIN_NAME, transport)
        # pysnmp binds in a background future; wait so a bind error surfaces here and
        # traps sent right after entering are not lost.
        try:
            await transport._lport
        except OSError as exc:
            self._engine.close_dispatcher()
            raise ProbeError("traps", f"cannot listen on {self.host}:{self.port}: "
                             f"{exc.strerror or exc}") from exc
        for target in self._targets:
            snmp = target.snmp
            if snmp.version in ("1", "2c") and snmp.community is not None:
                community = snmp.community.get_secret_value()
                if community not in self._communities.values():
                    index = f"ng-trap-{len(self._communities)}"
                    self._communities[index] = community
                    config.add_v1_system(self._engine, index, community)
            elif snmp.version == "3" and snmp.engine_id and snmp.user:
                config.add_v3_user(
                    self._engine, snmp.user,
                    getattr(hl, AUTH_PROTOCOLS[snmp.auth_protocol]),
                    snmp.auth_key.get_secret_value() if snmp.auth_key else None,
                    getattr(hl, PRIV_PROTOCOLS[snmp.priv_protocol]),
                    snmp.priv_key.get_secret_value() if snmp.priv_key else None,
                    securityEngineId=v2c.OctetString(hexValue=snmp.engine_id))
        ntfrcv.NotificationReceiver(self._engine, self._received)
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        if self._engine is not None:
            self._engine.close_dispatcher()
            self._engine = None

    # pysnmp calls back with six positional arguments.
    def _received(self, snmp_engine: Any, state_reference: Any, context_engine_id: Any,  # noqa: PLR0917
                  context_name: Any, var_binds: Any, cb_ctx: Any) -> None:
        self.received += 1
        try:
            ctx = snmp_engine.observer.get_execution_context("rfc3412.receiveMessage:request")
            source = str(ctx["transportAddress"][0])
            security_model = int(ctx["securityModel"])
            security_name = str(ctx["securityName"])
            oid = ""
            for name, value in var_binds:
                if tuple(name) == SNMP_TRAP_OID:
                    oid = str(value)
            matches = self.match(source, security_model, security_name,
                                 bytes(context_engine_id).hex())
        except Exception:  # a bad trap must never stop the receiver
            self.unmatched += 1
            self._received_by["unknown"] += 1
            self._rejected_by["unknown", "malformed"] += 1
            log.exception("could not read a trap")
            return
        name = trap_name(oid) if oid else "unknown"
        kind = trap_type(oid)
        self._received_by[kind] += 1
        if not matches:
            self.unmatched += 1
            self._rejected_by[kind, "unmatched"] += 1
            log.warning("trap %s from %s matches no target", name, source)
            return
        self._decoded_by[kind] += 1
        for target_id in matches:
            log.info("%s: trap %s", target_id, name)
            try:
                self._on_trap(target_id, name)
            except Exception:  # the re-poll hook failing must not stop the receiver
                log.exception("%s: could not act on trap %s", target_id, name)

    def match(self, source: str, security_model: int, security_name: str,
              engine_id_hex: str) -> list[str]:
        """Target ids a trap belongs to (pure; exposed for tests)."""
        if security_model == 3:
            # USM only accepted the trap if (user, sender engine id) was registered, so
            # the user name identifies the sender; engine id and host break ties.
            users = [t for t in self._targets
                     if t.snmp.version == "3" and t.snmp.engine_id and t.snmp.user == security_name]
            for narrowed in ([t for t in users if t.snmp.engine_id == engine_id_hex],
                             [t for t in users if _same_host(t.host, source)]):
                if len(narrowed) == 1:
                    return [narrowed[0].id]
            return [t.id for t in users]
        community = self._communities.get(security_name)
        found = [t.id for t in self._targets
                 if t.snmp.version in ("1", "2c") and t.snmp.community is not None
                 and t.snmp.community.get_secret_value() == community
                 and _same_host(t.host, source)]
        return found
