"""Run net-snmp ``snmpd`` on a free loopback port, serving this host's real interfaces."""

from __future__ import annotations

import shutil
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
    """An SNMPv3 user created in the snmpd config (``createUser``), read-only authPriv."""

    user: str = "ng"
    auth_protocol: str = "sha256"
    auth_key: str = "ng-auth-key-1"
    priv_protocol: str = "aes128"
    priv_key: str = "ng-priv-key-1"


class Snmpd(AgentServer):
    """A private net-snmp ``snmpd`` on 127.0.0.1 (context manager; stopped by pid).

    Args:
        directory: Working directory (config, persistent dir, log).
        community: Read-only v2c community.
        v3: Also create this SNMPv3 user.
        port: UDP port (a free one by default).
    """

    def __init__(self, directory: Path, *, community: str = "public",
                 v3: SnmpdUser | None = None, port: int | None = None) -> None:
        super().__init__(port)
        self.directory = directory
        self.community = community
        self.v3 = v3

    def config_text(self) -> str:
        """The snmpd.conf it runs with."""
        lines = [f"agentAddress udp:{self.host}:{self.port}",
                 f"rocommunity {self.community} 127.0.0.1",
                 "sysName netguard-test-snmpd",
                 "dontLogTCPWrappersConnects yes"]
        if self.v3 is not None:
            u = self.v3
            lines.append(f'createUser {u.user} {_NET_SNMP_AUTH[u.auth_protocol]} '
                         f'"{u.auth_key}" {_NET_SNMP_PRIV[u.priv_protocol]} "{u.priv_key}"')
            lines.append(f"rouser {u.user} priv")
        return "\n".join(lines) + "\n"

    def target(self, target_id: str = "snmpd", *, kind: str = "private_line",
               v3: bool = False, **extra: Any) -> dict[str, Any]:
        """A netguard target mapping that polls this snmpd."""
        snmp: dict[str, Any] = {"version": "2c", "community": self.community}
        if v3:
            if self.v3 is None:
                raise ValueError("this snmpd has no v3 user")
            snmp = {"version": "3", "user": self.v3.user,
                    "auth_protocol": self.v3.auth_protocol, "auth_key": self.v3.auth_key,
                    "priv_protocol": self.v3.priv_protocol, "priv_key": self.v3.priv_key}
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
