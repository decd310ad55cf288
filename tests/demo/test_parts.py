"""The demo's parts, each against real peers: amqtt broker, aiohttp sink, MQTT sensors."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import aiohttp
import aiomqtt
import pytest

from netguard.clock import ManualClock
from netguard.demo.broker import EmbeddedBroker
from netguard.demo.fleet import FLEET, HOUSEHOLDS, fleet_target
from netguard.demo.sensors import (
    DoorSensorSim,
    Household,
    SensorState,
    native_message,
    zigbee2mqtt_message,
)
from netguard.demo.sink import WebhookSink, read_received
from netguard.demo.timeline import TIMELINE, Step, run_timeline
from tests.support.ports import tcp_accepts

NATIVE = Household("hh-1", "riverside", "1 River Road", "door-1", "native")
Z2M = Household("hh-2", "riverside", "4 River Road", "door-2", "zigbee2mqtt")


def test_fleet_has_every_kind_and_enough_households() -> None:
    counts = {k: sum(1 for t in FLEET if t.kind == k)
              for k in ("fiber", "wireless", "private_line", "cabin_5g", "pon")}
    assert counts["fiber"] >= 3
    assert counts["wireless"] >= 3
    assert counts["private_line"] >= 3
    assert counts["cabin_5g"] >= 2
    assert counts["pon"] >= 2
    assert len({t.vendor for t in FLEET}) >= 4
    assert len(HOUSEHOLDS) >= 10
    assert {h.format for h in HOUSEHOLDS} == {"native", "zigbee2mqtt"}
    # The scripted upstream outage darkens two sites.
    children = [t for t in FLEET if t.upstream == "pl-east-uplink"]
    assert len({t.site for t in children}) == 2


def test_timeline_covers_the_issue_and_fits_in_a_minute() -> None:
    actions = {s.action for s in TIMELINE}
    for needed in ("rx_power_low", "rx_power_normal", "on_battery", "onus_lost",
                   "radio_degraded", "agent_down", "door_open", "sensor_silent",
                   "battery_low", "prometheus_alert"):
        assert needed in actions
    assert max(s.at_seconds for s in TIMELINE) < 60
    # The children go dark only once netguard reports their upstream unreachable, so
    # their faults group under its ticket; they come back before it, so none is left
    # dark under a working uplink.
    children = [t.id for t in FLEET if t.upstream == "pl-east-uplink"]
    ordered = sorted(TIMELINE, key=lambda s: s.at_seconds)
    for step in ordered:
        if step.action == "agent_down" and step.subject in children:
            assert step.after == (("pl-east-uplink", False),)
    ups = [s for s in ordered if s.action == "agent_up"]
    assert ups[-1].subject == "pl-east-uplink"
    assert {t for t, _ in ups[-1].after} == set(children)
    sensor_ids = {h.sensor_id for h in HOUSEHOLDS}
    for step in TIMELINE:
        if step.action.startswith(("door_", "sensor_", "battery_")):
            assert step.subject in sensor_ids
        elif step.action == "prometheus_alert":
            assert step.subject.startswith("Netguard")  # the alert rule's name
        else:
            fleet_target(step.subject)


def test_native_payload_bytes() -> None:
    now = datetime(2026, 11, 29, 14, 0, tzinfo=UTC)
    message = native_message(NATIVE, SensorState(closed=False, battery_percent=15, seq=7), now,
                             event="open", boot="b1")
    assert message.topic == "netguard/sensors/door-1/event"
    assert message.payload == (b'{"v":1,"sensor":"door-1","event":"open","seq":7,"battery":15,'
                               b'"ts":"2026-11-29T14:00:00+00:00","boot":"b1"}')


def test_zigbee2mqtt_payload_bytes() -> None:
    message = zigbee2mqtt_message(Z2M, SensorState(closed=True, battery_percent=10))
    assert message.topic == "zigbee2mqtt/door-2"
    assert json.loads(message.payload) == {"battery": 10, "battery_low": True, "contact": True,
                                           "linkquality": 153, "tamper": False, "voltage": 2730}


def test_household_rejects_topic_characters() -> None:
    with pytest.raises(ValueError, match="MQTT topic"):
        Household("hh", "c", "a", "door/1", "native")


async def test_timeline_runs_in_order_and_survives_a_failing_step() -> None:
    applied: list[str] = []
    slept: list[float] = []
    now = [0.0]

    class Actuator:
        async def apply(self, step: Step) -> None:
            if step.subject == "broken":
                raise RuntimeError("agent vanished")
            applied.append(step.subject)

    async def sleep(seconds: float) -> None:
        slept.append(seconds)
        now[0] += seconds

    reports: dict[str, list[bool | None]] = {"up": [None, None, True], "never": [False]}

    def reachable(target: str) -> bool | None:
        values = reports[target]
        return values.pop(0) if len(values) > 1 else values[0]

    steps = [Step(5, "door_open", "b", "b"), Step(1, "door_open", "a", "a"),
             Step(3, "agent_down", "broken", "x"), Step(5, "door_open", "c", "c"),
             Step(6, "door_open", "d", "d", after=(("up", True),)),
             Step(6, "door_open", "e", "e", after=(("never", True),))]
    seen: list[str] = []
    await run_timeline(steps, Actuator(), elapsed=lambda: now[0], sleep=sleep,
                       on_step=lambda s: seen.append(s.subject), reachable=reachable,
                       max_wait=1.0)
    assert applied == ["a", "b", "c", "d", "e"]
    assert seen == ["a", "b", "c", "d", "e"]
    # d waited two checks for "up"; e gave up after max_wait.
    assert slept[:4] == [1, 2, 2, 1]
    assert slept[4:6] == [0.2, 0.2]
    assert len(slept) == 6 + 5


async def test_embedded_broker_round_trip_and_release() -> None:
    async with EmbeddedBroker() as broker, aiomqtt.Client(broker.host, broker.port,
                              protocol=aiomqtt.ProtocolVersion.V311) as sub:
        await sub.subscribe("t/#", qos=1)
        async with aiomqtt.Client(broker.host, broker.port,
                                  protocol=aiomqtt.ProtocolVersion.V311) as pub:
            await pub.publish("t/x", b"payload", qos=1)
        async for message in sub.messages:
            assert message.payload == b"payload"
            break
    assert not tcp_accepts(broker.port)


async def test_webhook_sink_records_jsonl(tmp_path: Path) -> None:
    record = tmp_path / "alerts.jsonl"
    clock = ManualClock(datetime(2026, 11, 29, 14, 0, tzinfo=UTC))
    got: list[str] = []
    sink = WebhookSink(record, clock=clock, on_receive=lambda a: got.append(a.path))
    async with sink, aiohttp.ClientSession() as http:
        async with http.post(sink.url("/wecom"), json={"msgtype": "text"}) as resp:
            assert await resp.json() == {"errcode": 0, "errmsg": "ok"}
        async with http.post(sink.url(), data=b"not json") as resp:
            assert resp.status == 200
    received = read_received(record)
    assert [(a.path, a.body) for a in received] == [("/wecom", {"msgtype": "text"}),
                                                    ("/alerts", "not json")]
    assert received[0].received_at == "2026-11-29T14:00:00+00:00"
    assert got == ["/wecom", "/alerts"]


async def test_sensor_sim_publishes_door_battery_and_silence() -> None:
    async with EmbeddedBroker() as broker, aiomqtt.Client(broker.host, broker.port,
                              protocol=aiomqtt.ProtocolVersion.V311) as sub:
        await sub.subscribe("netguard/sensors/#", qos=1)
        await sub.subscribe("zigbee2mqtt/#", qos=1)
        async with DoorSensorSim([NATIVE, Z2M], broker.host, broker.port,
                                 heartbeat_seconds=0.2) as sim:
            await sim.set_door("door-2", closed=False)
            await sim.set_battery("door-1", 12)
            await sim.go_silent("door-1")
            seen_open = seen_low = False
            after_silence: dict[str, int] = {"door-1": 0, "door-2": 0}
            async for message in sub.messages:
                topic = str(message.topic)
                assert isinstance(message.payload, bytes)
                if topic.endswith("/availability"):
                    assert json.loads(message.payload) == {"state": "online"}
                    continue
                body = json.loads(message.payload)
                if topic == "zigbee2mqtt/door-2" and body["contact"] is False:
                    seen_open = True
                if topic.startswith("netguard/sensors/door-1") and \
                            body["battery"] == 12:
                    seen_low = True
                    after_silence["door-1"] = -1  # the report just before silence
                    continue
                if seen_low:
                    key = "door-1" if "door-1" in topic else "door-2"
                    after_silence[key] += 1
                if after_silence["door-2"] >= 3:
                    break
    assert seen_open
    assert seen_low
    # door-2 kept its heartbeats; door-1 said nothing after going silent.
    assert after_silence["door-1"] == -1
