"""Acceptance 2 and 4 against net-snmp snmpd serving this host's real interfaces:
``netguard poll --json`` agrees with ``snmpbulkwalk``; SNMPv3 authPriv works; wrong
credentials give a clear reason quickly."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from netguard.probes.service import ProbeService
from netguard.sim import Snmpd, SnmpdUser
from tests.probes.conftest import targets

pytestmark = pytest.mark.integration

IF_DESCR, IF_ADMIN, IF_OPER = "1.3.6.1.2.1.2.2.1.2", "1.3.6.1.2.1.2.2.1.7", "1.3.6.1.2.1.2.2.1.8"
IF_NAME, IF_HC_IN, IF_HC_OUT = ("1.3.6.1.2.1.31.1.1.1.1", "1.3.6.1.2.1.31.1.1.1.6",
                                "1.3.6.1.2.1.31.1.1.1.10")
IF_IN_ERRORS = "1.3.6.1.2.1.2.2.1.14"
STATUS = {1: "up", 2: "down", 3: "testing", 4: "unknown", 5: "dormant", 6: "notPresent",
          7: "lowerLayerDown"}


def bulkwalk(snmpd: Snmpd, oid: str) -> dict[int, str]:
    """``snmpbulkwalk`` one column: ifIndex -> value text (numeric enums, no quotes)."""
    out = subprocess.run(
        ["snmpbulkwalk", "-v2c", "-c", snmpd.community, "-On", "-Oq", "-Oe", "-Ot",
         snmpd.address, oid], capture_output=True, text=True, check=True, timeout=20,
        env={"MIBS": "", "PATH": "/usr/bin:/bin"}).stdout
    rows: dict[int, str] = {}
    for line in out.splitlines():
        name, _, value = line.partition(" ")
        rows[int(name.rsplit(".", 1)[1])] = value.strip().strip('"')
    return rows


def snmpget(snmpd: Snmpd, oid: str) -> str:
    out = subprocess.run(
        ["snmpget", "-v2c", "-c", snmpd.community, "-On", "-Oqv", "-Ot", snmpd.address, oid],
        capture_output=True, text=True, check=True, timeout=20,
        env={"MIBS": "", "PATH": "/usr/bin:/bin"}).stdout
    return out.strip().strip('"')


def poll_json(config: Path, target_id: str) -> dict[str, object]:
    proc = subprocess.run([str(Path(sys.executable).parent / "netguard"), "poll", target_id,
                           "--config", str(config), "--json"],
                          capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode in (0, 1), proc.stderr
    data: dict[str, object] = json.loads(proc.stdout)
    return data


def test_poll_json_agrees_with_net_snmp_tools(snmpd: Snmpd, tmp_path: Path) -> None:
    config = tmp_path / "netguard.yaml"
    config.write_text(yaml.safe_dump({"targets": [snmpd.target("host", kind="private_line")]}))
    before_in, before_out = bulkwalk(snmpd, IF_HC_IN), bulkwalk(snmpd, IF_HC_OUT)
    before_err = bulkwalk(snmpd, IF_IN_ERRORS)
    data = poll_json(config, "host")
    after_in = bulkwalk(snmpd, IF_HC_IN)

    for key in ("target", "kind", "reachable", "state", "reasons", "sys_uptime_seconds",
                "poll_duration_seconds", "interfaces"):
        assert key in data
    assert data["target"] == "host"
    assert data["reachable"] is True
    uptime = int(snmpget(snmpd, "1.3.6.1.2.1.1.3.0"))
    assert isinstance(data["sys_uptime_seconds"], float)
    assert 0 <= uptime / 100 - data["sys_uptime_seconds"] < 30

    interfaces = data["interfaces"]
    assert isinstance(interfaces, list)
    names, descrs = bulkwalk(snmpd, IF_NAME), bulkwalk(snmpd, IF_DESCR)
    admin, oper = bulkwalk(snmpd, IF_ADMIN), bulkwalk(snmpd, IF_OPER)
    assert sorted(i["index"] for i in interfaces) == sorted(descrs)
    assert any(i["name"] == "lo" for i in interfaces)
    for iface in interfaces:
        idx = iface["index"]
        assert set(iface) >= {"index", "name", "alias", "admin_status", "oper_status",
                              "in_octets", "out_octets", "in_errors", "out_errors", "speed_bps"}
        assert iface["name"] == (names.get(idx) or descrs[idx])
        assert iface["admin_status"] == STATUS[int(admin[idx])]
        assert iface["oper_status"] == STATUS[int(oper[idx])]
        # Counters never go lower than the value read just before, nor above the one after.
        assert int(before_in[idx]) <= iface["in_octets"] <= int(after_in[idx])
        assert int(before_out[idx]) <= iface["out_octets"]
        assert int(before_err[idx]) <= iface["in_errors"]


async def test_snmpv3_authpriv_sha256_aes128_on_snmpd(snmpd: Snmpd) -> None:
    good = snmpd.target("v3-good", v3=True)
    assert (good["snmp"]["auth_protocol"], good["snmp"]["priv_protocol"]) == \
        ("sha256", "aes128")
    wrong_auth = snmpd.target("v3-wrong-auth", v3=True, timeout_seconds=0.5, retries=1)
    wrong_auth["snmp"]["auth_key"] = "not-the-auth-key"
    wrong_user = snmpd.target("v3-wrong-user", v3=True, timeout_seconds=0.5, retries=1)
    wrong_user["snmp"]["user"] = "mallory"
    async with ProbeService(targets(good, wrong_auth, wrong_user)) as probes:
        ok = (await probes.poll("v3-good")).status
        auth = (await probes.poll("v3-wrong-auth")).status
        user = (await probes.poll("v3-wrong-user")).status
    assert ok.reachable
    assert ok.sys_name == "netguard-test-snmpd"
    assert any(i.name == "lo" for i in ok.interfaces)
    assert auth.state == "unreachable"
    # gufo-snmp tells only that authentication failed (pysnmp: the USM error).
    assert auth.reasons[0] == user.reasons[0] == \
        "SNMPv3 authentication failed (check user, auth/priv protocols and keys)"
    # The agent's refusal is the reason, not a timeout ("no response from ... within"):
    # the poll did not wait out its tries and guess. Counted by text, not by a clock.


async def test_snmpv1_uses_getnext_and_32_bit_counters(snmpd: Snmpd) -> None:
    v1 = snmpd.target("v1")
    v1["snmp"]["version"] = "1"
    async with ProbeService(targets(v1, snmpd.target("v2"))) as probes:
        old = (await probes.poll("v1")).status
        new = (await probes.poll("v2")).status
    assert old.reachable
    assert [i.name for i in old.interfaces] == [i.name for i in new.interfaces]
    assert {i.counter_bits for i in old.interfaces} == {32}
    assert {i.counter_bits for i in new.interfaces} == {64}
    assert old.sys_uptime_seconds is not None


USERS = [SnmpdUser("u-md5-des", "md5", priv_protocol="des"),
         SnmpdUser("u-sha-aes", "sha", priv_protocol="aes128"),
         SnmpdUser("u-sha224-auth", "sha224", priv_protocol="none"),
         SnmpdUser("u-sha384-aes", "sha384"),
         SnmpdUser("u-sha512-aes", "sha512"),
         SnmpdUser("u-noauth", "none", priv_protocol="none")]


async def test_snmpv3_security_levels_and_protocols(tmp_path: Path) -> None:
    with Snmpd(tmp_path / "snmpd", users=USERS) as agent:
        raw = [agent.target(u.user, user=u.user, timeout_seconds=1.0, retries=0)
               for u in USERS]
        async with ProbeService(targets(*raw)) as probes:
            results = {u.user: (await probes.poll(u.user)).status for u in USERS}
    failed = {k: v.reasons for k, v in results.items() if not v.reachable}
    assert not failed
    assert all(s.sys_name == "netguard-test-snmpd" for s in results.values())
