"""A vendor profile from ``probes.profile_dirs`` polled from snmpsim and scraped over HTTP.

The profile exports two vendor OIDs as their own families and declares a third whose
agent answers text; the target's ``labels:`` come out on ``netguard_target_info``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from netguard.config import Settings, settings_from_data
from netguard.daemon.config import MetricsConfig
from netguard.daemon.http import MetricsServer
from netguard.metrics import MetricsSnapshot
from netguard.probes.config import PollEngine
from netguard.probes.service import ProbeService
from netguard.sim import SnmpSim, build_agent
from netguard.sim.agents import COUNTER32, GAUGE32, OCTETS, SimRecord

pytestmark = pytest.mark.integration

VENDOR = "1.3.6.1.4.1.99999.1"
PROFILE = f"""\
name: acme-radio
kinds: [wireless]
include: [wireless-ubiquiti]
metrics:
  - {{name: acme_radio_temperature_celsius, oid: {VENDOR}.1.0, type: gauge, scale: 0.1,
     help: Radio board temperature.}}
  - {{name: acme_radio_retries_total, oid: {VENDOR}.2.0, type: counter,
     help: ARQ retransmissions.}}
  - {{name: acme_radio_load_ratio, oid: {VENDOR}.3.0, type: gauge, help: Airtime used.}}
"""


@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SnmpSim]:
    agent = build_agent("acme-1", "wireless", vendor="ubiquiti")
    agent.records += [SimRecord(f"{VENDOR}.1.0", GAUGE32, 415),
                      SimRecord(f"{VENDOR}.2.0", COUNTER32, 4_000_000_000),
                      # A firmware that answers text where the MIB says Gauge32.
                      SimRecord(f"{VENDOR}.3.0", OCTETS, "n/a")]
    with SnmpSim([agent], tmp_path_factory.mktemp("snmpsim")) as s:
        yield s


def _settings(tmp_path: Path, sim: SnmpSim, engine: PollEngine) -> Settings:
    (tmp_path / "profiles").mkdir(exist_ok=True)
    (tmp_path / "profiles" / "acme.yaml").write_text(PROFILE)
    return settings_from_data({
        "probes": {"engine": engine, "profile_dirs": ["profiles"]},
        "targets": [
            sim.target("acme-1", "radio-acme", profile="acme-radio", site="hill",
                       labels={"region": "north", "owner": 'noc "east"'}),
            sim.target("acme-1", "radio-plain", profile="wireless-ubiquiti"),
        ]}, base_dir=tmp_path)


async def _ready() -> dict[str, bool]:
    return {"probes": True}


async def _scrape(service: ProbeService) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    async with MetricsServer(MetricsConfig(listen="127.0.0.1:0"),
                             lambda: MetricsSnapshot(targets=service.statuses()), _ready
                             ) as server, aiohttp.ClientSession() as http, \
            http.get(f"{server.url}/metrics") as resp:
        assert resp.status == 200
        text = await resp.text()
    return {(s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


@pytest.mark.parametrize("engine", ["gufo", "pysnmp"])
async def test_vendor_oids_exported_and_labels_joined(tmp_path: Path, sim: SnmpSim,
                                                      engine: PollEngine) -> None:
    settings = _settings(tmp_path, sim, engine)
    async with ProbeService(settings.targets, probes=settings.probes) as service:
        await service.poll("radio-acme")
        await service.poll("radio-acme")
        status = service.status("radio-acme")
        assert status.reachable
        assert [(f.name, v) for f, v in status.exported] == [
            ("acme_radio_temperature_celsius", 41.5), ("acme_radio_retries_total", 4e9)]
        assert "acme_radio_load_ratio: expected a number, got text 'n/a'" in status.problems
        assert status.decode_errors == 2
        samples = await _scrape(service)

    acme = {("target", "radio-acme"), ("kind", "wireless"), ("site", "hill")}
    assert samples[("acme_radio_temperature_celsius", frozenset(acme))] == 41.5
    assert samples[("acme_radio_retries_total", frozenset(acme))] == 4e9
    assert not any(name == "acme_radio_load_ratio" for name, _ in samples)
    assert samples[("netguard_target_decode_errors_total", frozenset(acme))] == 2
    info = acme | {("region", "north"), ("owner", 'noc "east"')}
    assert samples[("netguard_target_info", frozenset(info))] == 1
    plain = {("target", "radio-plain"), ("kind", "wireless"), ("site", "")}
    assert samples[("netguard_target_info", frozenset(plain))] == 1
    # The target using the built-in profile exports none of the vendor families.
    assert ("acme_radio_temperature_celsius", frozenset(plain)) not in samples


@pytest.mark.parametrize("engine", ["gufo", "pysnmp"])
async def test_exported_oids_ride_in_the_same_get(tmp_path: Path, sim: SnmpSim,
                                                  engine: PollEngine) -> None:
    settings = _settings(tmp_path, sim, engine)
    counts = []
    for target in settings.targets:
        async with ProbeService([target], probes=settings.probes) as service:
            await service.poll(target.id)
            counts.append(service.wire_counts())
    (acme_pdus, acme_varbinds, _), (plain_pdus, plain_varbinds, _) = counts
    assert acme_pdus == plain_pdus
    assert acme_varbinds == plain_varbinds + 3
