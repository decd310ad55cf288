"""Simulated door sensors of quarantined households, publishing over MQTT.

Half the sensors speak Zigbee2MQTT (``zigbee2mqtt/<name>``, ``contact: true`` = closed),
half netguard's native JSON (``netguard/sensors/<id>/event``). Each reports its state
every ``heartbeat_seconds`` until told to go silent; the demo timeline opens doors, drains
batteries and silences sensors through the methods here.

Payload building is pure (:func:`native_message`, :func:`zigbee2mqtt_message`) and tested
against netguard's own decoders.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from types import TracebackType
from typing import Any, Literal

import aiomqtt

from netguard.clock import Clock, SystemClock

log = logging.getLogger(__name__)

SensorFormat = Literal["native", "zigbee2mqtt"]
NativeEvent = Literal["open", "close", "heartbeat", "battery"]


@dataclass(frozen=True, slots=True)
class Household:
    """A quarantined household with one door sensor."""

    household_id: str
    community: str
    address: str
    sensor_id: str
    format: SensorFormat

    def __post_init__(self) -> None:
        if not self.sensor_id or "/" in self.sensor_id or "+" in self.sensor_id:
            raise ValueError(f"sensor id {self.sensor_id!r} is not usable in an MQTT topic")


@dataclass(frozen=True, slots=True)
class SensorState:
    """What a simulated sensor currently reports."""

    closed: bool = True
    battery_percent: int = 95
    seq: int = 0


@dataclass(frozen=True, slots=True)
class Message:
    """One MQTT publication."""

    topic: str
    payload: bytes
    retain: bool = False


def native_message(household: Household, state: SensorState, now: datetime, *,
                   event: NativeEvent = "heartbeat", boot: str | None = None) -> Message:
    """The native netguard payload (schema version 1, see docs/iot.md).

    Args:
        household: Whose sensor.
        state: What it reports.
        now: Device time.
        event: ``open``, ``close``, ``heartbeat`` or ``battery``.
        boot: Changes when the device restarts its sequence numbers.
    """
    body: dict[str, Any] = {"v": 1, "sensor": household.sensor_id, "event": event,
                            "seq": state.seq, "battery": state.battery_percent,
                            "ts": now.isoformat()}
    if boot is not None:
        body["boot"] = boot
    return Message(f"netguard/sensors/{household.sensor_id}/event",
                   json.dumps(body, separators=(",", ":")).encode())


def zigbee2mqtt_message(household: Household, state: SensorState) -> Message:
    """A Zigbee2MQTT door/window sensor report (Aqara MCCGQ11LM style)."""
    body = {
        "battery": state.battery_percent,
        "battery_low": state.battery_percent < 20,
        "contact": state.closed,
        "linkquality": 153,
        "tamper": False,
        # These sensors report ~3.0 V full and ~2.7 V nearly empty.
        "voltage": 2700 + 3 * state.battery_percent,
    }
    return Message(f"zigbee2mqtt/{household.sensor_id}",
                   json.dumps(body, separators=(",", ":")).encode())


def zigbee2mqtt_availability(household: Household, online: bool) -> Message:
    """The retained availability message Zigbee2MQTT publishes per device."""
    body = json.dumps({"state": "online" if online else "offline"}).encode()
    return Message(f"zigbee2mqtt/{household.sensor_id}/availability", body, retain=True)


def state_message(household: Household, state: SensorState, now: datetime, *,
                  event: NativeEvent = "heartbeat", boot: str | None = None) -> Message:
    """The report of ``household``'s sensor in its own format.

    Zigbee2MQTT devices always send their whole state, so ``event`` matters only for
    native sensors.
    """
    if household.format == "native":
        return native_message(household, state, now, event=event, boot=boot)
    return zigbee2mqtt_message(household, state)


@dataclass
class _Sensor:
    household: Household
    state: SensorState = field(default_factory=SensorState)
    silent: bool = False


class DoorSensorSim:
    """Publishes every household's sensor state over MQTT, as an async context manager.

    Args:
        households: The households to simulate.
        host: Broker host.
        port: Broker port.
        heartbeat_seconds: How often each sensor reports while not silent.
        clock: Time source for native timestamps.
        client_id: MQTT client id of the simulator.
        boot: Boot id in native payloads (a fresh one per run by default).
        username: Broker user (a real broker may refuse anonymous clients).
        password: Broker password.
    """

    def __init__(self, households: Sequence[Household], host: str, port: int, *,
                 heartbeat_seconds: float = 5.0, clock: Clock | None = None,
                 client_id: str = "netguard-demo-sensors", boot: str | None = None,
                 username: str | None = None, password: str | None = None) -> None:
        self._sensors = {h.sensor_id: _Sensor(h) for h in households}
        self._host = host
        self._port = port
        self._heartbeat = heartbeat_seconds
        self._clock = clock or SystemClock()
        self._client_id = client_id
        self._username = username
        self._password = password
        # Native sensors number their messages per boot; a new boot id per run keeps a
        # reused demo folder from mistaking this run's messages for redeliveries.
        self._boot = boot or uuid.uuid4().hex[:12]
        self._client: Any = None
        self._stack: contextlib.AsyncExitStack | None = None
        self._task: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()
        self.published = 0

    @property
    def households(self) -> list[Household]:
        """The simulated households."""
        return [s.household for s in self._sensors.values()]

    def state(self, sensor_id: str) -> SensorState:
        """The state a sensor currently reports."""
        return self._sensors[sensor_id].state

    async def __aenter__(self) -> DoorSensorSim:
        stack = contextlib.AsyncExitStack()
        try:
            self._client = await stack.enter_async_context(aiomqtt.Client(
                self._host, self._port, identifier=self._client_id,
                username=self._username, password=self._password,
                protocol=aiomqtt.ProtocolVersion.V311))
            for sensor in self._sensors.values():
                if sensor.household.format == "zigbee2mqtt":
                    await self._publish(zigbee2mqtt_availability(sensor.household, True))
            await self.report_all()
        except BaseException:
            await stack.aclose()
            raise
        self._stack = stack
        self._task = asyncio.create_task(self._heartbeats(), name="netguard[demo].sensors")
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self._stack is not None:
            stack, self._stack = self._stack, None
            await stack.aclose()

    async def _heartbeats(self) -> None:
        while True:
            await asyncio.sleep(self._heartbeat)
            try:
                await self.report_all()
            except aiomqtt.MqttError as exc:
                # The broker may be restarting; the next heartbeat retries.
                log.warning("door-sensor simulator could not publish: %s", exc)

    async def _publish(self, message: Message) -> None:
        async with self._lock:
            await self._client.publish(message.topic, message.payload, qos=1,
                                       retain=message.retain)
            self.published += 1

    async def _report(self, sensor: _Sensor, event: NativeEvent = "heartbeat") -> None:
        if sensor.silent:
            return
        sensor.state = replace(sensor.state, seq=sensor.state.seq + 1)
        await self._publish(state_message(sensor.household, sensor.state, self._clock.now(),
                                          event=event, boot=self._boot))

    async def report_all(self) -> None:
        """Publish every non-silent sensor's state once."""
        for sensor in self._sensors.values():
            await self._report(sensor)

    async def set_door(self, sensor_id: str, *, closed: bool) -> None:
        """Open or close a household's door and report it at once."""
        sensor = self._sensors[sensor_id]
        sensor.state = replace(sensor.state, closed=closed)
        await self._report(sensor, "close" if closed else "open")

    async def set_battery(self, sensor_id: str, percent: int) -> None:
        """Change a sensor's battery level and report it at once."""
        sensor = self._sensors[sensor_id]
        sensor.state = replace(sensor.state, battery_percent=max(0, min(100, percent)))
        await self._report(sensor, "battery")

    async def go_silent(self, sensor_id: str) -> None:
        """Stop a sensor's reports, as a dead battery or a broken radio would.

        Zigbee2MQTT marks battery devices offline only after 25 hours, so no
        availability message is sent: netguard must notice the silence itself.
        """
        self._sensors[sensor_id].silent = True

    async def resume(self, sensor_id: str) -> None:
        """Let a silent sensor report again."""
        sensor = self._sensors[sensor_id]
        sensor.silent = False
        await self._report(sensor)
