"""Real agents for probe tests: one snmpsim with every kind and scenario, and snmpd."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from netguard.config import settings_from_data
from netguard.probes.config import LINK_KINDS, TargetConfig
from netguard.sim import SCENARIOS, Snmpd, SnmpdUser, SnmpSim, V3User, build_agent

# Agents flipped at runtime get their own names so module-scoped sharing stays safe.
FLIP_AGENTS = ("flip-fiber", "flip-cabin", "flip-pon", "flip-line")


@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SnmpSim]:
    """One snmpsim serving every kind x scenario, vendor presets, and flip agents."""
    agents = [build_agent(f"{kind}-{scenario}", kind, scenario=scenario)
              for kind in LINK_KINDS for scenario in SCENARIOS]
    agents += [
        build_agent("fiber-huawei", "fiber", vendor="huawei"),
        build_agent("wireless-cambium", "wireless", vendor="cambium"),
        build_agent("flip-fiber", "fiber", vendor="huawei"),
        build_agent("flip-cabin", "cabin_5g"),
        build_agent("flip-pon", "pon"),
        build_agent("flip-line", "private_line"),
    ]
    with SnmpSim(agents, tmp_path_factory.mktemp("snmpsim"), v3=V3User()) as s:
        yield s


@pytest.fixture(scope="module")
def snmpd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Snmpd]:
    """net-snmp snmpd on a free port, with an authPriv SHA-256/AES-128 user."""
    with Snmpd(tmp_path_factory.mktemp("snmpd"), v3=SnmpdUser()) as d:
        yield d


def targets(*raw: dict[str, Any]) -> list[TargetConfig]:
    """Validate target mappings as the config loader does."""
    return settings_from_data({"targets": list(raw)}).targets


FAST = {"raise_after": 1, "clear_after": 1}
