"""Run net-snmp ``snmpd`` on a free loopback port, serving this host's real interfaces."""

from __future__ import annotations

import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from netguard.sim.process import AgentServer, ChildProcess, answers_snmp

SNMPD = shutil.which("snmpd") or "/usr/sbin/snmpd"

_NET_SNMP_AUTH = {"md5": "MD5", "sha": "SHA", "sha224": "SHA-224", "sha256": "SHA-256",
                  "sha384": "SHA-384", "sha512": "SHA-512"}
_NET_SNMP_PRIV = {"des": "DES", "aes128": "AES"}


@dataclass(frozen=True, slots=True)
class SnmpdUser:
    """An SNMPv3 user created in the snmpd config (``createUser``), read-only.

    ``auth_protocol``/``priv_protocol`` use netguard's names; ``"none"`` gives
    authNoPriv or noAuthNoPriv. net-snmp offers DES and AES-128 for privacy.
    """

    user: str = "ng"
    auth_protocol: str = "sha256"
    auth_key: str = "ng-auth-key-1"
    priv_protocol: str = "aes128"
    priv_key: str = "ng-priv-key-1"

    @property
    def level(self) -> str:
        """The net-snmp security level keyword (``noauth``, ``auth``, ``priv``)."""
        if self.auth_protocol == "none":
            return "noauth"
        return "auth" if self.priv_protocol == "none" else "priv"

    def config_lines(self) -> list[str]:
        """``createUser`` and ``rouser`` lines for snmpd.conf."""
        create = f"createUser {self.user}"
        if self.auth_protocol != "none":
            create += f' {_NET_SNMP_AUTH[self.auth_protocol]} "{self.auth_key}"'
            if self.priv_protocol != "none":
                create += f' {_NET_SNMP_PRIV[self.priv_protocol]} "{self.priv_key}"'
        return [create, f"rouser {self.user} {self.level}"]

    def snmp_config(self) -> dict[str, Any]:
        """The target ``snmp:`` mapping for this user."""
        snmp: dict[str, Any] = {"version": "3", "user": self.user,
                                "auth_protocol": self.auth_protocol,
                                "priv_protocol": self.priv_protocol}
        if self.auth_protocol != "none":
            snmp["auth_key"] = self.auth_key
        if self.priv_protocol != "none":
            snmp["priv_key"] = self.priv_key
        return snmp


class Snmpd(AgentServer):
    """A private net-snmp ``snmpd`` on 127.0.0.1 (context manager; stopped by pid).

    Args:
        directory: Working directory (config, persistent dir, log).
        community: Read-only v2c community.
        v3: Also create this SNMPv3 user (``target(v3=True)`` uses it).
        users: More SNMPv3 users (``target(user=...)`` picks one by name).
        port: UDP port (a free one by default).
        overrides: Extra OctetString objects served as given, OID -> text (snmpd
            ``override``), e.g. a column of long values to make responses big.
    """

    def __init__(self, directory: Path, *, community: str = "public",
                 v3: SnmpdUser | None = None, users: Sequence[SnmpdUser] = (),
                 port: int | None = None, overrides: Mapping[str, str] | None = None) -> None:
        super().__init__(port)
        self.directory = directory
        self.community = community
        self.v3 = v3
        self.users = {u.user: u for u in ([v3] if v3 else []) + list(users)}
        self.overrides = dict(overrides or {})
        for oid, text in self.overrides.items():
            if '"' in text or "\n" in text or not oid.replace(".", "").isdigit():
                raise ValueError(f"override {oid!r}: numeric OID and one line of text "
                                 "without double quotes")

    def config_text(self) -> str:
        """The snmpd.conf it runs with."""
        lines = [f"agentAddress udp:{self.host}:{self.port}",
                 f"rocommunity {self.community} 127.0.0.1",
                 "sysName netguard-test-snmpd",
                 "dontLogTCPWrappersConnects yes"]
        for user in self.users.values():
            lines.extend(user.config_lines())
        lines.extend(f'override .{oid.lstrip(".")} octet_str "{text}"'
                     for oid, text in self.overrides.items())
        return "\n".join(lines) + "\n"

    def target(self, target_id: str = "snmpd", *, kind: str = "private_line",
               v3: bool = False, user: str | None = None, **extra: Any) -> dict[str, Any]:
        """A netguard target mapping that polls this snmpd (v2c, or v3 as a user)."""
        snmp: dict[str, Any] = {"version": "2c", "community": self.community}
        if v3 or user:
            chosen = self.users.get(user) if user else self.v3
            if chosen is None:
                raise ValueError(f"this snmpd has no v3 user {user or ''}".rstrip())
            snmp = chosen.snmp_config()
        return {"id": target_id, "kind": kind, "address": self.address, "snmp": snmp, **extra}

    def start(self, timeout: float = 30.0) -> Snmpd:
        """Write the config and start snmpd; returns once it answers."""
        self.directory.mkdir(parents=True, exist_ok=True)
        persist = self.directory / "persist"
        persist.mkdir(exist_ok=True)
        conf = self.directory / "snmpd.conf"
        conf.write_text(self.config_text(), encoding="utf-8")
        self._process = ChildProcess(
            [SNMPD, "-f", "-C", "-c", str(conf), "-Lf", str(self.directory / "snmpd.log")],
            self.directory / "snmpd.out",
            ready=lambda: answers_snmp(self.host, self.port, self.community),
            env={"SNMP_PERSISTENT_DIR": str(persist), "MIBS": ""})
        self._process.start(timeout)
        return self
