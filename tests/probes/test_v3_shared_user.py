"""Issue 14 item 7: agents sharing one SNMPv3 user name with per-device keys.

With one shared pysnmp engine about 23% of such polls failed ("a wrong SNMPv3 privacy key
looks the same") and false tickets opened. On the default engine (gufo) every session
carries its own keys; pysnmp refuses the combination at configuration time.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest

from netguard.config import settings_from_data
from netguard.errors import ConfigError
from netguard.probes.service import ProbeService
from netguard.sim import Snmpd, SnmpdUser

pytestmark = pytest.mark.integration

ROUNDS = 4


class EngineIdSnmpd(Snmpd):
    """snmpd with a fixed engine id (``exactEngineID``), to share one between agents."""

    def __init__(self, directory: Path, *, engine_id: str | None, **kwargs: Any) -> None:
        super().__init__(directory, **kwargs)
        self.engine_id = engine_id

    def config_text(self) -> str:
        text = super().config_text()
        return text + (f"exactEngineID 0x{self.engine_id}\n" if self.engine_id else "")


def user(i: int) -> SnmpdUser:
    """User ``ng`` with keys of device ``i`` (SHA-256/AES-128 authPriv)."""
    return SnmpdUser("ng", "sha256", f"auth-key-of-device-{i}", "aes128",
                     f"priv-key-of-device-{i}")


@pytest.fixture(scope="module")
def agents(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[Snmpd]]:
    """20 snmpd: the first two share one engine id, the rest have their own."""
    shared = "80001f8880" + "6e6574677561726431"
    with ExitStack() as stack:
        started = [stack.enter_context(EngineIdSnmpd(
            tmp_path_factory.mktemp(f"shared-user-{i}"), v3=user(i),
            engine_id=shared if i < 2 else None)) for i in range(20)]
        yield started


def raw_targets(agents: list[Snmpd]) -> list[dict[str, Any]]:
    return [a.target(f"dev{i}", v3=True, timeout_seconds=2.0, retries=1,
                     thresholds={"raise_after": 1, "clear_after": 1})
            for i, a in enumerate(agents)]


@pytest.mark.parametrize("count", [2, 20])
async def test_per_device_keys_under_one_user_name(agents: list[Snmpd], count: int) -> None:
    raw = raw_targets(agents[:count])
    assert len({r["snmp"]["user"] for r in raw}) == 1
    assert len({r["snmp"]["priv_key"] for r in raw}) == count
    settings = settings_from_data({"targets": raw})
    assert settings.probes.engine == "gufo"
    async with ProbeService(settings.targets, probes=settings.probes) as service:
        failures: list[str] = []
        events: list[str] = []
        for _ in range(ROUNDS):
            outcomes = await service.poll_all()  # all targets at once
            failures += [f"{o.status.target}: {o.status.reasons}" for o in outcomes
                         if not o.status.reachable]
            # (snmpd serves the host's real interfaces: lo may run "hot" with 20 agents)
            events += [str(e.key) for o in outcomes for e in o.events
                       if e.key.component == "agent"]
    assert failures == []
    assert events == []  # no unreachable fault (and so no false ticket) opened
    assert service.polls == ROUNDS * count


async def test_a_wrong_key_among_shared_users_fails_alone(agents: list[Snmpd]) -> None:
    raw = raw_targets(agents[:3])
    raw[1]["snmp"]["priv_key"] = "priv-key-of-device-9"  # device 1 gets device 9's key
    settings = settings_from_data({"targets": raw})
    async with ProbeService(settings.targets, probes=settings.probes) as service:
        outcomes = {o.status.target: o.status for o in await service.poll_all()}
    assert [t for t, s in outcomes.items() if not s.reachable] == ["dev1"]
    assert outcomes["dev1"].reasons[0].endswith(
        "(a wrong SNMPv3 privacy key looks the same)")


def test_pysnmp_refuses_one_user_name_with_several_keys(agents: list[Snmpd]) -> None:
    raw = raw_targets(agents[:2])
    with pytest.raises(ConfigError, match=r"targets\[1\]\.snmp\.user: SNMPv3 user 'ng' has "
                                          r"other keys on targets\[0\] \(dev0\)"):
        settings_from_data({"targets": raw, "probes": {"engine": "pysnmp"}})
    # The same keys everywhere are fine on pysnmp.
    same = raw_targets([agents[0], agents[0]])
    assert settings_from_data({"targets": same, "probes": {"engine": "pysnmp"}}).targets
