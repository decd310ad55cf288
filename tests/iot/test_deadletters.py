"""Dead letters are part of the household's record when their topic names one of its
sensors, and an oversized one is stored capped (issue 13, items 4 and 5): through a
private Mosquitto, the intake and the store, then read back with the household's export,
``netguard deadletters list`` and the audit check.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from pathlib import Path
from typing import Any

import aiomqtt
import pytest
from sqlmodel import col, select
from typer.testing import CliRunner

from netguard.cli import app
from netguard.clock import ManualClock
from netguard.iot.admin import IotAdmin
from netguard.iot.codecs import topic_address
from netguard.iot.models import Event
from netguard.iot.service import IotService
from netguard.store import Store
from netguard.store.config import StoreConfig
from netguard.store.db import upgrade
from tests.iot.conftest import T0, make_settings, register_estate
from tests.support.servers import Broker
from tests.support.wait import async_wait_until

runner = CliRunner()

# Registered: n1 (native) and z1 (Zigbee2MQTT friendly name door_z1) of household h1.
BAD = [
    ("netguard/sensors/n1/event", b"{not json"),
    ("zigbee2mqtt/door_z1", json.dumps({"contact": "ajar"}).encode()),
    ("netguard/sensors/ghost/event", b"{not json"),
]
# 60 kB that no sensor sends and anyone allowed to publish may: stored capped, with its
# full size and hash, and the chain still verifies.
BIG = ("netguard/sensors/n1/event", b"\x00\xff" * 30_000)


@pytest.mark.parametrize(("fmt", "topic", "address"), [
    ("native", "netguard/sensors/n1/event", "n1"),
    ("zigbee2mqtt", "zigbee2mqtt/door_z1", "door_z1"),
    ("zigbee2mqtt", "zigbee2mqtt/door_z1/availability", "door_z1"),
    ("shelly", "shellies/shellydw2-ABC/sensor/state", "shellydw2-ABC"),
    ("shelly_rpc", "shellyplus1-a8/events/rpc", "shellyplus1-a8"),
    ("native", "deep/custom/n1/event", None),  # a custom layout names nobody
    ("native", "netguard/sensors/bad id/event", None),  # not a valid address
    ("nosuch", "netguard/sensors/n1/event", None),
])
def test_the_topic_names_the_device(fmt: str, topic: str, address: str | None) -> None:
    assert topic_address(fmt, topic) == address


async def _publish_bad(broker: Broker, store: Store) -> None:
    await register_estate(store, T0)
    iot = {"mqtt": {"enabled": True, "host": broker.host, "port": broker.port,
                    "client_id": "netguard-dead", "reconnect_min_seconds": 0.1,
                    "reconnect_max_seconds": 0.3, "max_payload_bytes": 100_000},
           "rules": {"heartbeat_timeout_seconds": 86400}}
    settings = make_settings(store.config, iot)
    async with IotService(settings.iot, store, clock=ManualClock(T0)) as service, \
            aiomqtt.Client(broker.host, broker.port, identifier="dead-pub") as pub:
        async def connected() -> bool:
            return service.mqtt_connected

        await async_wait_until(connected, what="intake connected")
        for topic, payload in [*BAD, BIG]:
            await pub.publish(topic, payload, qos=1)

        async def all_dead() -> bool:
            return sum(service.snapshot().dead_letters.values()) >= len(BAD) + 1

        await async_wait_until(all_dead, what="four dead letters")


async def test_dead_letters_on_a_sensors_topic_are_in_its_households_record(
        broker: Broker, store: Store) -> None:
    await _publish_bad(broker, store)
    admin = IotAdmin(store, clock=ManualClock(T0))
    record = await admin.export("h1")
    dead = [(e["sensor"], e["dead_reason"]) for e in record["events"] if e["kind"] == "dead"]
    assert sorted(dead) == [("n1", "malformed"), ("n1", "malformed"), ("z1", "malformed")]
    rows = await admin.dead_letters()
    assert sorted((r["sensor"] or "", r["household"] or "") for r in rows) == [
        ("", ""), ("n1", "h1"), ("n1", "h1"), ("z1", "h1")]
    n1 = await admin.dead_letters(sensor_id="n1")
    assert sorted(r["payload_size"] for r in n1) == [len(BAD[0][1]), len(BIG[1])]
    async with store.session() as s:
        big = (await s.exec(select(Event).where(col(Event.payload_size) == len(BIG[1])))).one()
    assert big.payload == BIG[1][:4096]
    assert big.payload_sha256 == hashlib.sha256(BIG[1]).hexdigest()
    # The filed and capped dead letters stay in the hash chain: the log still verifies.
    check = await admin.verify_log(None, retention_days=180)
    assert not check.report.problems
    assert check.report.rows == 4


def test_deadletters_list_from_the_cli(tmp_path: Path, broker: Broker) -> None:
    db = tmp_path / "dead.db"
    asyncio.run(upgrade(StoreConfig(path=db)))
    config = tmp_path / "netguard.yaml"
    config.write_text(f"store:\n  path: {db}\n")

    async def run() -> None:
        async with Store(StoreConfig(path=db)) as store:
            await _publish_bad(broker, store)

    asyncio.run(run())
    result = runner.invoke(app, ["deadletters", "list", "--json", "--config", str(config)])
    assert result.exit_code == 0, result.output
    rows: list[dict[str, Any]] = json.loads(result.output)
    assert sorted(r["topic"] for r in rows) == sorted(t for t, _ in [*BAD, BIG])
    result = runner.invoke(app, ["deadletters", "list", "--sensor", "z1", "--config",
                                 str(config)])
    assert result.exit_code == 0, result.output
    assert "zigbee2mqtt/door_z1" in result.output
    assert "ghost" not in result.output
    result = runner.invoke(app, ["deadletters", "list", "--sensor", "nobody", "--config",
                                 str(config)])
    assert result.exit_code == 3, result.output
    result = runner.invoke(app, ["deadletters", "list", "--since", "2999-01-01", "--json",
                                 "--config", str(config)])
    assert json.loads(result.output) == []
