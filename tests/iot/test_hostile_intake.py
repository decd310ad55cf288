"""One message must never stall door-event storage (issue 14, item 1).

Against the real store (SQLite and PostgreSQL) and, for the property-based test, through
a private Mosquitto into the real intake: every hostile message becomes a dead letter (or
a stored event), and a valid door opening behind it still raises its alert.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import threading
import uuid
from collections.abc import Coroutine, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any, TypeVar

import aiomqtt
import asyncpg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import SecretStr
from sqlmodel import col, select

from netguard.errors import StoreError
from netguard.iot import batch as batch_module
from netguard.iot import registry
from netguard.iot.eventlog import verify
from netguard.iot.events import RawMessage
from netguard.iot.models import Alert, Event
from netguard.iot.service import IotService
from netguard.store import Store
from netguard.store.config import StoreConfig
from netguard.store.db import upgrade
from tests.iot.conftest import T0, make_settings, register_estate
from tests.support.servers import Broker, mosquitto, pg_database
from tests.support.wait import async_wait_until, wait_until

pytestmark = pytest.mark.integration

T = TypeVar("T")

# The three messages of issue 14 that stalled all storage for good, retried forever.
POISON = {
    "seq_beyond_bigint": ("netguard/sensors/n1/event",
                          json.dumps({"sensor": "n1", "seq": 2**63, "event": "open"}).encode()),
    "topic_over_512": ("netguard/sensors/" + "x" * 600 + "/event", b'{"sensor":"x"}'),
    "nul_in_boot": ("netguard/sensors/n1/event",
                    json.dumps({"sensor": "n1", "seq": 3, "boot": "a\u0000b",
                                "event": "open"}).encode()),
}
# Mosquitto refuses a topic with NUL or control characters, but another broker (or a
# bridge) might pass one on: the intake refuses it itself.
DIRECT = {**POISON,
          "control_characters_in_topic": ("netguard/sensors/n1\x00\x07/event", b"{}"),
          "lone_surrogate_in_topic": ("zigbee2mqtt/door\ud800", b"{}")}


def _opening(sensor: str, seq: int, boot: str = "b1") -> RawMessage:
    return RawMessage(f"netguard/sensors/{sensor}/event",
                      json.dumps({"sensor": sensor, "seq": seq, "boot": boot,
                                  "event": "open"}).encode(), qos=1, mid=seq % 65535 + 1)


async def _door_alert_count(store: Store, sensor: str) -> int:
    async with store.session() as s:
        count = (await s.exec(select(Alert.count).where(
            col(Alert.sensor_id) == sensor, col(Alert.type) == "door_open",
            col(Alert.closed_at).is_(None)))).first()
    return int(count or 0)


@pytest.mark.parametrize("poison", sorted(DIRECT))
async def test_poison_message_is_a_dead_letter_and_the_batch_is_stored(
        store: Store, poison: str) -> None:
    await register_estate(store, T0)
    topic, payload = DIRECT[poison]
    async with IotService(make_settings(store.config).iot, store) as service:
        results = await service.ingest_batch([RawMessage(topic, payload, qos=1, mid=1),
                                              _opening("n1", 7)])
        assert [r.status for r in results] == ["dead", "stored"]
        assert results[1].alerts_raised  # the opening behind it alerts
        # And the next batch is not blocked either.
        [later] = await service.ingest_batch([_opening("n1", 8)])
        assert later.status == "stored"
        assert service.snapshot().store_failures == 0
    assert await _door_alert_count(store, "n1") == 2
    async with store.session() as s:
        assert (await verify(s)).ok
        [stored_topic] = (await s.exec(select(Event.topic).where(
            col(Event.kind) == "dead"))).all()
    assert len(stored_topic) <= 512


async def test_a_row_the_database_refuses_is_a_dead_letter_not_a_stall(
        store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    """The safety net: with the checks before the insert switched off, the database
    itself refuses the over-long topic (PostgreSQL) or the 2^63 seq (SQLite driver);
    that one message becomes a ``store_rejected`` dead letter, the others are stored."""
    await register_estate(store, T0)
    monkeypatch.setattr(batch_module, "topic_problem", lambda _topic: None)
    monkeypatch.setattr(batch_module, "row_problems", lambda _table, _row: [])
    monkeypatch.setattr("netguard.iot.codecs.native.SEQ_MAX", 2**64)
    monkeypatch.setattr("netguard.iot.events.SEQ_MAX", 2**64)
    # A registered sensor's valid opening on a deep topic under a "#" filter: only the
    # topic column's length stands in its way.
    long_topic = "deep/" + "y" * 600 + "/n1/event"
    iot = {"mqtt": {"enabled": False, "subscriptions": [
        {"topic": "netguard/sensors/+/event", "format": "native"},
        {"topic": "deep/#", "format": "native"}]}}
    async with IotService(make_settings(store.config, iot).iot, store) as service:
        results = await service.ingest_batch([
            _opening("n1", 1),
            RawMessage(long_topic, _opening("n1", 5).payload, qos=1, mid=2),
            _opening("n1", 2**63),
            _opening("n1", 3),
        ])
        statuses = [r.status for r in results]
        pg = store.dialect == "postgresql"
        # PostgreSQL refuses the long topic; SQLite stores any length. Both refuse 2^63.
        assert statuses == ["stored", "dead" if pg else "stored", "dead", "stored"]
        assert service.snapshot().dead_letters == {"store_rejected": 2 if pg else 1}
        assert service.snapshot().store_failures == 0
    assert await _door_alert_count(store, "n1") == (2 if pg else 3)
    async with store.session() as s:
        assert (await verify(s)).ok
        details = (await s.exec(select(Event.detail).where(
            col(Event.dead_reason) == "store_rejected"))).all()
    assert all(d and "the database refused it" in d for d in details)


async def test_a_read_only_database_holds_the_batch_instead_of_dead_lettering(
        pg_url: str) -> None:
    """A store-wide refusal is not the message's fault: nothing is dead-lettered, the
    batch is refused (the intake then holds its acknowledgements) and stored later."""
    config = StoreConfig(url=SecretStr(pg_url))
    await upgrade(config)
    name = pg_url.rsplit("/", 1)[1]
    async with Store(config) as store:
        await register_estate(store, T0)
    # Read-only from the next connection on (as after a failover to a standby).
    await _pg(pg_url, f'ALTER DATABASE "{name}" SET default_transaction_read_only = on')
    async with Store(config) as store, IotService(make_settings(config).iot, store) as service:
        with pytest.raises(StoreError):
            await service.ingest_batch([_opening("n1", 1)])
        snap = service.snapshot()
        assert snap.dead_letters == {}
        assert snap.store_failures == 1
    await _pg(pg_url, "SET default_transaction_read_only = off",
              f'ALTER DATABASE "{name}" SET default_transaction_read_only = off')
    # The same message, redelivered once the store takes writes again, is stored.
    async with Store(config) as store, IotService(make_settings(config).iot, store) as service:
        [result] = await service.ingest_batch([_opening("n1", 1)])
        assert result.status == "stored"
        assert result.alerts_raised


async def _pg(url: str, *statements: str) -> None:
    conn = await asyncpg.connect(url)
    try:
        for statement in statements:
            await conn.execute(statement)  # autocommit: each its own transaction
    finally:
        await conn.close()


async def test_sensor_ids_with_colons_do_not_collide_in_dedup(store: Store) -> None:
    """``n:<sensor>:<boot>:<seq>`` made sensor ``a:b`` (no boot) and sensor ``a`` with
    boot ``b:`` share an identity, so the second door opening was dropped."""
    async with store.session() as s:
        await registry.add_household(s, "h1", "c1", start=T0 - timedelta(days=1), now=T0)
        await s.flush()
        await registry.add_sensor(s, "a", "h1", now=T0)
        await registry.add_sensor(s, "a:b", "h1", now=T0)
        await s.commit()
    async with IotService(make_settings(store.config).iot, store) as service:
        [first] = await service.ingest_batch([RawMessage(
            "netguard/sensors/a/event",
            b'{"sensor":"a","boot":"b:","seq":1,"event":"open"}')])
        [second] = await service.ingest_batch([RawMessage(
            "netguard/sensors/a:b/event", b'{"sensor":"a:b","seq":1,"event":"open"}')])
        assert (first.status, second.status) == ("stored", "stored")
        assert second.alerts_raised
        # A true redelivery is still a duplicate.
        [again] = await service.ingest_batch([RawMessage(
            "netguard/sensors/a:b/event", b'{"sensor":"a:b","seq":1,"event":"open"}')])
        assert again.status == "duplicate"


async def test_dead_letter_payloads_are_capped_with_size_and_hash(store: Store) -> None:
    await register_estate(store, T0)
    big = b"\x00\xff" * 30_000  # 60 kB: no sensor sends this; anyone may publish it
    settings = make_settings(store.config, {"mqtt": {"enabled": False,
                                                     "max_payload_bytes": 100_000}})
    async with IotService(settings.iot, store) as service:
        [dead] = await service.ingest_batch([RawMessage("netguard/sensors/n1/event", big)])
        assert dead.status == "dead"
        [ok] = await service.ingest_batch([_opening("n1", 1)])
        assert ok.status == "stored"
    async with store.session() as s:
        row = (await s.exec(select(Event).where(col(Event.kind) == "dead"))).one()
        assert row.payload == big[:4096]
        assert row.payload_size == len(big)
        assert row.payload_sha256 == hashlib.sha256(big).hexdigest()
        stored = (await s.exec(select(Event).where(col(Event.kind) == "open"))).one()
        assert stored.payload_size == len(stored.payload or b"")
        assert (await verify(s)).ok


# ---------------------------------------------------------------- property-based


class _Loop:
    """An event loop in a thread, so that a synchronous hypothesis test can drive the
    async service (hypothesis does not run async tests with function fixtures)."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._thread.start()

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = 120.0) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(30)
        self.loop.close()


class _Rig:
    """A running IotService fed by a private Mosquitto, and a publisher."""

    def __init__(self, loop: _Loop, broker: Broker, config: StoreConfig) -> None:
        self.loop = loop
        self.broker = broker
        self.config = config
        self.openings = 0
        self.refused_by_broker = 0
        self.boot = f"probe-{uuid.uuid4().hex[:8]}"
        self._stack: Any = None
        self._pub_stack: Any = None
        self.store: Store
        self.service: IotService
        self.publisher: aiomqtt.Client

    async def start(self) -> None:
        await upgrade(self.config)
        self._stack = contextlib.AsyncExitStack()
        self.store = await self._stack.enter_async_context(Store(self.config))
        await register_estate(self.store, T0)
        async with self.store.session() as s:
            await registry.add_sensor(s, "probe", "h1", now=T0)
            await s.commit()
        iot = {"mqtt": {"enabled": True, "host": self.broker.host, "port": self.broker.port,
                        "client_id": "netguard-hostile", "reconnect_min_seconds": 0.1,
                        "reconnect_max_seconds": 0.5},
               "rules": {"heartbeat_timeout_seconds": 86400}}
        self.service = await self._stack.enter_async_context(
            IotService(make_settings(self.config, iot).iot, self.store))
        await async_wait_until(self._connected, what="intake connected", timeout=60)
        await self._connect_publisher()

    async def _connect_publisher(self) -> None:
        self._pub_stack = contextlib.AsyncExitStack()
        self.publisher = await self._pub_stack.enter_async_context(aiomqtt.Client(
            self.broker.host, self.broker.port, identifier="hostile-publisher",
            protocol=aiomqtt.ProtocolVersion.V5))

    async def _connected(self) -> bool:
        return self.service.mqtt_connected

    async def stop(self) -> None:
        await self._pub_stack.aclose()
        await self._stack.aclose()

    async def send(self, topic: str, payload: bytes) -> None:
        """Publish the hostile message, then a valid opening; wait until it alerts."""
        try:
            await self.publisher.publish(topic, payload, qos=1)
        except aiomqtt.MqttError:
            # The broker itself refused it (and dropped the publisher): it never reached
            # the intake. Count it, so a strategy that only produces those shows.
            self.refused_by_broker += 1
            await self._pub_stack.aclose()
            await self._connect_publisher()
        self.openings += 1
        seq = self.openings
        await self.publisher.publish(
            "netguard/sensors/probe/event",
            json.dumps({"sensor": "probe", "boot": self.boot, "seq": seq,
                        "event": "open"}).encode(), qos=1)

        async def alerted() -> bool:
            return await _door_alert_count(self.store, "probe") >= seq

        # A generous deadline: this asserts that the opening alerts at all, not how fast.
        await async_wait_until(alerted, timeout=60, interval=0.05,
                               what=f"door opening {seq} alerts after {topic[:60]!r}")


@pytest.fixture(params=["sqlite", "postgresql"])
def rig(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[_Rig]:
    loop = _Loop()
    try:
        with mosquitto(tmp_path / "mosquitto") as broker:
            if request.param == "sqlite":
                yield from _run_rig(loop, broker, StoreConfig(path=tmp_path / "hostile.db"))
            else:
                with pg_database() as url:
                    yield from _run_rig(loop, broker, StoreConfig(url=SecretStr(url)))
    finally:
        loop.close()


def _run_rig(loop: _Loop, broker: Broker, config: StoreConfig) -> Iterator[_Rig]:
    rig = _Rig(loop, broker, config)
    loop.run(rig.start())
    try:
        yield rig
    finally:
        loop.run(rig.stop())


# Topic levels a publisher may use (MQTT forbids wildcards in a published topic; Mosquitto
# refuses NUL, control characters and non-characters, and a lone surrogate is no UTF-8):
# short ones, and ones that push the topic past the 512 characters of the topic column.
_LEVEL_CHARS = st.characters(blacklist_categories=("Cs", "Cc", "Cn"),
                             blacklist_characters="/+#")
_level = st.one_of(st.text(_LEVEL_CHARS, min_size=1, max_size=30),
                   st.text(_LEVEL_CHARS, min_size=500, max_size=700),
                   st.sampled_from(["n1", "n2", "door_z1", "shellydw2-ABC", "a:b"]))
_topic = st.one_of(
    st.builds("netguard/sensors/{}/event".format, _level),
    st.builds("zigbee2mqtt/{}".format, _level),
    st.builds("zigbee2mqtt/{}/availability".format, _level),
    st.builds("shellies/{}/sensor/{}".format, _level,
              st.sampled_from(["state", "battery", "vibration", "lux"])),
    st.builds("shellies/{}/online".format, _level),
)
_int = st.one_of(st.integers(-10, 10), st.integers(-(2**70), 2**70),
                 st.sampled_from([2**31, 2**63 - 1, 2**63, 2**64, -(2**63) - 1]))
_text = st.one_of(st.text(max_size=80), st.sampled_from(["", "\x00", "a\x00b", "\n", "x" * 70]))
_scalar = st.one_of(st.none(), st.booleans(), _int, st.floats(allow_nan=False), _text)
_native = st.fixed_dictionaries({}, optional={
    "v": st.one_of(st.just(1), _scalar), "sensor": st.one_of(st.sampled_from(["n1", "n2"]),
                                                             _text),
    "event": st.one_of(st.sampled_from(["open", "close", "heartbeat", "tamper", "battery"]),
                       _scalar),
    "door": st.one_of(st.sampled_from(["open", "closed"]), _scalar),
    "seq": _int, "boot": _text, "battery": _scalar, "ts": st.one_of(_int, _text),
    "tamper": _scalar})
_z2m = st.fixed_dictionaries({}, optional={
    "contact": _scalar, "battery": _scalar, "tamper": _scalar, "state": _scalar})
_payload = st.one_of(
    st.binary(max_size=300),
    _native.map(lambda d: json.dumps(d).encode()),
    _z2m.map(lambda d: json.dumps(d).encode()),
    st.sampled_from([b"open", b"close", b"true", b"false", b"1e999", b"-0", b"nan"]),
)


@settings(max_examples=25, deadline=None, database=None,
          derandomize=os.environ.get("CI", "").lower() in ("1", "true", "yes"),
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(topic=_topic, payload=_payload)
def test_any_message_leaves_the_intake_able_to_alert(rig: _Rig, topic: str,
                                                     payload: bytes) -> None:
    """Whatever one publisher sends on a subscribed topic, a door opening behind it still
    raises its alert, on SQLite and on PostgreSQL."""
    rig.loop.run(rig.send(topic, payload))
    snap = rig.service.snapshot()
    assert snap.store_failures == 0
    assert rig.refused_by_broker < rig.openings or rig.openings < 5


def test_hostile_rig_keeps_the_chain_verifiable(rig: _Rig) -> None:
    for topic, payload in POISON.values():
        rig.loop.run(rig.send(topic, payload))

    async def check() -> bool:
        async with rig.store.session() as s:
            return (await verify(s)).ok

    assert wait_until(lambda: rig.loop.run(check()), what="the chain verifies")
    assert rig.service.snapshot().dead_letters.get("malformed", 0) >= 2
