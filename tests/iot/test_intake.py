"""The live intake against a private Mosquitto: every format, dead letters, the process
stays up, redeliveries are dropped, and alerts go out on the MQTT alert topic."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import aiomqtt
import pytest
import sqlalchemy as sa

from netguard.iot import batch as batch_module
from netguard.iot.events import RawMessage
from netguard.iot.service import IotService
from netguard.store import Store
from tests.iot.conftest import T0, make_settings, register_estate
from tests.support.servers import Broker
from tests.support.wait import async_wait_until

pytestmark = pytest.mark.integration


def _iot(broker: Broker, **extra: Any) -> dict[str, Any]:
    return {
        "mqtt": {"enabled": True, "host": broker.host, "port": broker.port,
                 "client_id": "netguard-intake-test", "max_payload_bytes": 1024,
                 "reconnect_min_seconds": 0.1, "reconnect_max_seconds": 0.5},
        "rules": {"heartbeat_timeout_seconds": 86400},
        **extra,
    }


async def _publish(broker: Broker, messages: list[tuple[str, bytes]], *,
                   retain: bool = False) -> None:
    async with aiomqtt.Client(broker.host, broker.port, identifier="intake-test-pub") as c:
        for topic, payload in messages:
            await c.publish(topic, payload, qos=1, retain=retain)


def _connected(service: IotService) -> Any:
    async def check() -> bool:
        return service.mqtt_connected
    return check


async def test_every_format_and_every_bad_message(broker: Broker, sqlite_store: Store) -> None:
    await register_estate(sqlite_store, T0)
    async with IotService(make_settings(sqlite_store.config, _iot(broker)).iot,
                          sqlite_store) as service:
        await async_wait_until(_connected(service), what="connected")
        await _publish(broker, [("zigbee2mqtt/door_z1/availability", b'{"state":"online"}')],
                       retain=True)
        await _publish(broker, [
            ("netguard/sensors/n1/event", b'{"sensor":"n1","seq":1,"event":"open"}'),
            ("zigbee2mqtt/door_z1", b'{"contact":false,"battery":88,"tamper":false}'),
            ("shellies/shellydw2-ABC/sensor/state", b"close"),
            ("shellies/shellydw2-ABC/online", b"false"),
            ("netguard/sensors/n1/event", b"{not json"),
            ("netguard/sensors/n1/event", b"x" * 2000),
            ("netguard/sensors/n1/event", b'{"sensor":"n2","seq":5,"event":"open"}'),
            ("netguard/sensors/ghost/event", b'{"sensor":"ghost","seq":1}'),
            ("zigbee2mqtt/unknown_door", b'{"contact":true}'),
            ("shellies/shellydw2-ABC/sensor/state", b"\xff\xfe"),
            ("netguard/sensors/n1/event", b'{"sensor":"n1","seq":2,"event":"close"}'),
        ])

        def total() -> int:
            snap = service.snapshot()
            return sum(snap.door_events.values()) + sum(snap.dead_letters.values())

        await async_wait_until(lambda: _ge(total, 12), what="all 12 messages handled")
        snap = service.snapshot()
        assert snap.dead_letters == {"malformed": 2, "oversized": 1, "topic_mismatch": 1,
                                     "unknown_sensor": 2}
        assert snap.door_events == {"online": 1, "open": 2, "close": 2, "offline": 1}
        assert service.mqtt_connected
        await async_wait_until(lambda: _alerts_open(service, {("door_open", "c1"),
                                                              ("offline", "c1")}),
                               what="open-alert gauge")
    async with sqlite_store.session() as s:
        dead = (await s.exec(sa.text(  # type: ignore[call-overload]
            "SELECT dead_reason, payload FROM iot_event WHERE dead_reason IS NOT NULL "
            "ORDER BY chain_seq"))).all()
    # Nothing is lost: the raw bytes of every rejected message are kept.
    assert (("malformed", b"{not json") in [tuple(r) for r in dead])
    assert len(dead) == 6


async def _alerts_open(service: IotService, expected: set[tuple[str, str]]) -> bool:
    return set(service.snapshot().alerts_open) == expected


async def _ge(fn: Any, n: int) -> bool:
    return bool(fn() >= n)


async def test_redelivered_state_report_is_stored_once(sqlite_store: Store) -> None:
    await register_estate(sqlite_store, T0)
    async with IotService(make_settings(sqlite_store.config).iot, sqlite_store) as service:
        same = b'{"contact":true,"battery":90}'
        first = RawMessage("zigbee2mqtt/door_z1", same, qos=1, mid=7)
        repeat = RawMessage("zigbee2mqtt/door_z1", same, qos=1, mid=8)
        redelivery = RawMessage("zigbee2mqtt/door_z1", same, qos=1, mid=7, dup=True)
        results = await service.ingest_batch([first, repeat])
        assert [r.status for r in results] == ["stored", "stored"]
        [again] = await service.ingest_batch([redelivery])
        assert again.status == "duplicate"
    # The window survives a restart (it is rebuilt from the log).
    async with IotService(make_settings(sqlite_store.config).iot, sqlite_store) as service:
        [again] = await service.ingest_batch([redelivery])
        assert again.status == "duplicate"
        [new] = await service.ingest_batch([RawMessage("zigbee2mqtt/door_z1", same, qos=1,
                                                       mid=7)])
        assert new.status == "stored"  # no DUP flag: a new message that reuses the id


async def test_alerts_published_on_the_mqtt_alert_topic(broker: Broker,
                                                        sqlite_store: Store) -> None:
    await register_estate(sqlite_store, T0)
    iot = _iot(broker, notifiers=[{"name": "bus", "type": "mqtt"}],
               routes=[{"community": "c1", "notifiers": ["bus"]}])
    iot["mqtt"]["enabled"] = False
    async with aiomqtt.Client(broker.host, broker.port, identifier="alert-watcher") as watcher:
        await watcher.subscribe("netguard/alerts/#", qos=1)
        async with IotService(make_settings(sqlite_store.config, iot).iot,
                              sqlite_store) as service:
            result = await service.ingest("netguard/sensors/n1/event",
                                          b'{"sensor":"n1","seq":1,"event":"open"}')
            [alert_id] = result.alerts_raised
            async with asyncio.timeout(10):
                message = await anext(aiter(watcher.messages))
    assert str(message.topic) == "netguard/alerts/c1"
    body = json.loads(bytes(message.payload))  # type: ignore[arg-type]
    assert (body["alert_id"], body["type"], body["household"]) == (alert_id, "door_open", "h1")


async def test_shared_subscription_splits_the_load_without_loss(broker: Broker,
                                                                 sqlite_store: Store) -> None:
    await register_estate(sqlite_store, T0)

    def settings(client_id: str) -> Any:
        iot = _iot(broker)
        iot["mqtt"].update(client_id=client_id, shared_group="netguard")
        return make_settings(sqlite_store.config, iot)

    async with IotService(settings("ng-a").iot, sqlite_store) as a, \
            IotService(settings("ng-b").iot, sqlite_store) as b:
        await async_wait_until(_connected(a), what="a connected")
        await async_wait_until(_connected(b), what="b connected")
        await _publish(broker, [("netguard/sensors/n1/event",
                                 json.dumps({"sensor": "n1", "seq": k}).encode())
                                for k in range(200)])

        def stored(svc: IotService) -> int:
            return sum(svc.snapshot().door_events.values())

        await async_wait_until(lambda: _ge(lambda: stored(a) + stored(b), 200),
                               what="200 events")
        assert stored(a) > 0
        assert stored(b) > 0
    async with sqlite_store.session() as s:
        chains = dict((await s.exec(sa.text(  # type: ignore[call-overload]
            "SELECT chain, count(*) FROM iot_event GROUP BY chain"))).all())
        seqs = (await s.exec(sa.text(  # type: ignore[call-overload]
            "SELECT count(DISTINCT seq) FROM iot_event"))).one()
    assert set(chains) == {"ng-a", "ng-b"}  # one hash chain per instance
    assert sum(chains.values()) == 200
    assert seqs[0] == 200


async def test_native_redelivery_found_in_the_store_when_not_in_memory(store: Store) -> None:
    await register_estate(store, T0)
    payload = b'{"sensor":"n1","seq":41,"event":"close"}'
    async with IotService(make_settings(store.config).iot, store) as service:
        assert (await service.ingest("netguard/sensors/n1/event", payload)).status == "stored"
        assert (await service.ingest("netguard/sensors/n1/event", payload)).status == \
            "duplicate"
        # Beyond the in-memory window the unique key catches it, and the batch is retried
        # with a store lookup: the new message in the same batch is still stored.
        service._dedup.forget_native()
        results = await service.ingest_batch([
            RawMessage("netguard/sensors/n1/event", payload),
            RawMessage("netguard/sensors/n1/event", b'{"sensor":"n1","seq":42}')])
        assert [r.status for r in results] == ["duplicate", "stored"]
    async with store.session() as s:
        count = (await s.exec(sa.text(  # type: ignore[call-overload]
            "SELECT count(*) FROM iot_event"))).one()
    assert count[0] == 2


async def test_decoder_bug_dead_letters_instead_of_poisoning(sqlite_store: Store,
                                                             monkeypatch: pytest.MonkeyPatch
                                                             ) -> None:
    real = batch_module.decode

    def buggy(fmt: str, topic: str, payload: bytes, *, max_bytes: int) -> Any:
        if b"boom" in payload:
            raise RuntimeError("decoder bug")
        return real(fmt, topic, payload, max_bytes=max_bytes)

    monkeypatch.setattr(batch_module, "decode", buggy)
    await register_estate(sqlite_store, T0)
    async with IotService(make_settings(sqlite_store.config).iot, sqlite_store) as service:
        results = await service.ingest_batch([
            RawMessage("zigbee2mqtt/door_z1", b'{"boom":1}'),
            RawMessage("zigbee2mqtt/door_z1", b'{"contact":true}')])
        assert [(r.status, r.reason) for r in results] == [("dead", "decoder_error"),
                                                           ("stored", None)]
        assert service.snapshot().dead_letters == {"decoder_error": 1}


async def test_failed_connection_attempts_are_counted(broker: Broker,
                                                      sqlite_store: Store) -> None:
    broker.process.stop()
    async with IotService(make_settings(sqlite_store.config, _iot(broker)).iot,
                          sqlite_store) as service:
        async def failing() -> bool:
            return service.snapshot().mqtt_connect_failures >= 2

        await async_wait_until(failing, what="two failed connection attempts")
        assert not service.snapshot().mqtt_connected
        broker.process.start()

        async def connected() -> bool:
            return service.mqtt_connected

        await async_wait_until(connected, what="connected once the broker is up")
        failures = service.snapshot().mqtt_connect_failures
        assert failures >= 2
        # A held connection is not a failure; the count only grows with failed attempts.
        assert service.intake is not None
        assert service.intake.connect_failures == failures
