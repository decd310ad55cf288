"""``netguard demo``: the whole mission on one machine, in about a minute.

The runner starts, in order: the simulated SNMP agents, the MQTT broker (embedded amqtt
unless ``mqtt_url`` is given), the webhook sink, a generated config (written to
``<dir>/netguard.yaml``), the store with the quarantined households registered, the
netguard daemon itself, and the door-sensor simulator. Then it plays the scripted
faults while a live view shows what netguard makes of them, until ``stop`` is set (Ctrl-C)
or the duration ends. Everything is stopped in reverse order, child processes included.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from rich.console import Console
from rich.live import Live

from netguard.clock import SystemClock
from netguard.config import Settings
from netguard.daemon.app import Daemon
from netguard.demo.agents import SimulatedAgents
from netguard.demo.broker import EmbeddedBroker, free_tcp_port
from netguard.demo.chat import post_alertmanager, tap_ack_link
from netguard.demo.config import DemoEndpoints, build_config_data, write_config
from netguard.demo.fleet import FLEET, HOUSEHOLDS
from netguard.demo.sensors import DoorSensorSim, Household
from netguard.demo.sink import ReceivedAlert, WebhookSink
from netguard.demo.timeline import TIMELINE, Actuator, Step, run_timeline
from netguard.demo.view import (
    DemoSnapshot,
    TargetLine,
    alert_lines,
    netguard_executable,
    next_commands,
    render,
    status_line,
    ticket_news_line,
)
from netguard.errors import ConfigError
from netguard.iot.admin import IotAdmin
from netguard.metrics import IotView
from netguard.store.db import Store, upgrade
from netguard.tickets.domain import TicketTally
from netguard.tickets.service import TicketService

log = logging.getLogger(__name__)

DEFAULT_METRICS_PORT = 9108
LOW_BATTERY_PERCENT = 9
# Files of a previous run that would confuse this one (tickets, alerts, sink records).
_STALE_FILES = ("netguard.db", "netguard.db-wal", "netguard.db-shm", "alerts.jsonl")


@dataclass(frozen=True, slots=True)
class MqttTarget:
    """A broker given by URL: ``mqtt://[user[:password]@]host[:port]``."""

    host: str
    port: int
    username: str | None = None
    password: str | None = None


def parse_mqtt_url(url: str) -> MqttTarget:
    """Parse ``--mqtt-url``.

    Raises:
        ConfigError: Not an ``mqtt://`` URL with a host.
    """
    parts = urlsplit(url)
    # The error names the URL the operator typed, but never its password.
    shown = url.replace(f":{parts.password}@", ":***@") if parts.password else url
    if parts.scheme != "mqtt" or not parts.hostname:
        raise ConfigError("--mqtt-url", [f"{shown!r}: expected mqtt://[user[:password]@]host"
                                         f"[:port] (TLS brokers: use a config file)"])
    try:
        port = parts.port or 1883
    except ValueError:
        raise ConfigError("--mqtt-url", [f"{shown!r}: the port is not a number"]) from None
    return MqttTarget(parts.hostname, port,
                      unquote(parts.username) if parts.username else None,
                      unquote(parts.password) if parts.password else None)


@dataclass(frozen=True, slots=True)
class DemoOptions:
    """What ``netguard demo`` was asked to do.

    Attributes:
        directory: Where config, database, logs and alert records go.
        duration: Stop after this many seconds (``None``: run until Ctrl-C).
        mqtt_url: Use this broker instead of the embedded one.
        metrics_port: Port of ``/metrics`` (``None``: 9108 if free, else any free port).
        live: Show the live view when the console is a terminal.
        timeline: The scripted faults.
    """

    directory: Path
    duration: float | None = None
    mqtt_url: str | None = None
    metrics_port: int | None = None
    live: bool = True
    timeline: Sequence[Step] = TIMELINE


@dataclass
class DemoSummary:
    """What happened, for the final message (and tests)."""

    config_path: Path
    sink_file: Path
    metrics_url: str | None = None
    executable: str = field(default_factory=netguard_executable)
    steps: list[str] = field(default_factory=list)
    alerts: list[str] = field(default_factory=list)
    ticket_news: list[str] = field(default_factory=list)
    agent_pids: list[int] = field(default_factory=list)
    last: DemoSnapshot | None = None


class DemoActuator:
    """Applies scripted steps: door steps to the sensors, a Prometheus alert to
    ``post_alert`` (as Alertmanager), the rest to the SNMP agents."""

    def __init__(self, agents: Actuator, sensors: DoorSensorSim,
                 post_alert: Callable[[], Awaitable[None]] | None = None) -> None:
        self._agents = agents
        self._sensors = sensors
        self._post_alert = post_alert

    async def apply(self, step: Step) -> None:
        """Make ``step`` happen."""
        if step.action == "prometheus_alert":
            if self._post_alert is not None:
                await self._post_alert()
        elif step.action == "door_open":
            await self._sensors.set_door(step.subject, closed=False)
        elif step.action == "door_closed":
            await self._sensors.set_door(step.subject, closed=True)
        elif step.action == "sensor_silent":
            await self._sensors.go_silent(step.subject)
        elif step.action == "battery_low":
            await self._sensors.set_battery(step.subject, LOW_BATTERY_PERCENT)
        else:
            await self._agents.apply(step)


def _metrics_port(requested: int | None) -> int:
    if requested is not None:
        return requested
    with contextlib.suppress(OSError), socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", DEFAULT_METRICS_PORT))
        return DEFAULT_METRICS_PORT
    return free_tcp_port()


def _prepare_directory(directory: Path) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    # Keep a demo folder inside a git checkout out of `git status`.
    ignore = directory / ".gitignore"
    if not ignore.exists():
        ignore.write_text("*\n", encoding="utf-8")
    for name in _STALE_FILES:
        (directory / name).unlink(missing_ok=True)


async def register_households(settings: Settings, households: Sequence[Household],
                              now: datetime) -> None:
    """Migrate the demo store and register every household, quarantined from ``now``."""
    await upgrade(settings.store)
    async with Store(settings.store) as store:
        admin = IotAdmin(store)
        for household in households:
            await admin.add_household(household.household_id, household.community,
                                      label=household.address, start=now)
            await admin.add_sensor(household.sensor_id, household.household_id,
                                   fmt=household.format)


def door_numbers(iot: IotView | None) -> tuple[int, int]:
    """``(open alerts, door events stored)`` from the door-sensor part of the daemon's
    metrics snapshot; a dead letter is stored in the event log too."""
    if iot is None:
        return 0, 0
    return (sum(iot.alerts_open.values()),
            sum(iot.door_events.values()) + sum(iot.dead_letters.values()))


class StoreCounts:
    """Reads ticket counts and ticket news for the live view, through the ticket service.

    It opens its own store, as ``netguard tickets`` would from another terminal: the view
    must not reach into the daemon's services while they work. The door-sensor numbers
    come from the daemon's metrics snapshot instead (:func:`door_numbers`: no query).
    """

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._tickets: TicketService | None = None
        self._admin: IotAdmin | None = None
        self._last_event = 0
        self._stack = contextlib.AsyncExitStack()

    async def __aenter__(self) -> StoreCounts:
        store = await self._stack.enter_async_context(Store(self._settings.store))
        self._tickets = TicketService(store, self._settings.tickets)
        self._admin = IotAdmin(store)
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._stack.aclose()

    async def read(self) -> dict[str, int]:
        """Active and done tickets, and children under the active ones (0 when unknown)."""
        assert self._tickets is not None
        try:
            tally = await self._tickets.tally()
        except Exception:  # the view must survive whatever the store says
            log.debug("ticket counts unavailable", exc_info=True)
            tally = TicketTally()
        return {"open": tally.active, "resolved": tally.done, "children": tally.children}

    async def acknowledged(self, alert_id: int) -> str:
        """Who acknowledged door alert ``alert_id`` and how, as the CLI would show it."""
        assert self._admin is not None
        alert = await self._admin.alert(alert_id)
        if alert["acked_at"] is None:
            return f"alert {alert_id} is not acknowledged"
        return (f"alert {alert_id} acknowledged by {alert['acked_by']} "
                f"via {alert.get('acked_via') or 'cli'}: its reminders stop")

    async def news(self) -> list[str]:
        """A line for each ticket opened, grouped or resolved since the last call."""
        assert self._tickets is not None
        try:
            events = await self._tickets.news(self._last_event)
        except Exception:  # the view must survive whatever the store says
            log.debug("ticket news unavailable", exc_info=True)
            return []
        lines: list[str] = []
        for event in events:
            self._last_event = max(self._last_event, event.event_id)
            line = ticket_news_line(event.ref, event.action, event.message, event.summary)
            if line is not None:
                lines.append(line)
        return lines


def _ack_link(body: Any) -> tuple[int, str] | None:
    """The first door alert with an acknowledgement link in a webhook body, if any."""
    alerts = body.get("alerts") if isinstance(body, dict) else None
    for alert in alerts if isinstance(alerts, list) else ():
        if isinstance(alert, dict) and alert.get("subject", "alert") == "alert" \
                and alert.get("type") == "door_open" and isinstance(alert.get("ack_url"), str):
            return int(alert["alert_id"]), str(alert["ack_url"])
    return None


def _target_lines(daemon: Any) -> tuple[TargetLine, ...]:
    statuses = daemon.probes.statuses()
    lines = []
    for target in FLEET:
        status = statuses.get(target.id)
        if status is None:
            lines.append(TargetLine(target.id, target.kind, target.site, "pending"))
            continue
        state = getattr(status.state, "value", status.state)
        reasons = tuple(getattr(status, "reasons", ()) or ())
        lines.append(TargetLine(target.id, target.kind, target.site, str(state),
                                "; ".join(reasons)[:120],
                                getattr(status, "suppressed_by", None)))
    return tuple(lines)


class _Run:
    """One demo run: the started parts and what the view shows."""

    def __init__(self, options: DemoOptions, console: Console,
                 on_snapshot: Callable[[DemoSnapshot], None] | None) -> None:
        self.options = options
        self.console = console
        self.on_snapshot = on_snapshot
        self.directory = options.directory.resolve()
        self.summary = DemoSummary(self.directory / "netguard.yaml",
                                   self.directory / "alerts.jsonl")
        self.started = time.monotonic()
        self.mqtt_label = ""
        self.daemon: Any = None
        self.sink: WebhookSink | None = None
        self.counts: StoreCounts | None = None
        self.settings: Settings | None = None
        # The first door alert's link is tapped once, as staff would; held so the task
        # is not collected mid-flight.
        self._tap: asyncio.Task[None] | None = None

    def elapsed(self) -> float:
        return time.monotonic() - self.started

    async def start(self, stack: contextlib.AsyncExitStack) -> DemoActuator:
        """Start every part on ``stack``; returns what plays the timeline."""
        options, summary = self.options, self.summary
        mqtt = parse_mqtt_url(options.mqtt_url) if options.mqtt_url else None
        _prepare_directory(self.directory)
        isolate = {s.subject for s in options.timeline if s.action == "agent_down"}
        agents = await stack.enter_async_context(
            SimulatedAgents(FLEET, self.directory / "agents", isolate=isolate))
        summary.agent_pids = agents.pids
        protocol = "5"
        if mqtt is None:
            broker = await stack.enter_async_context(EmbeddedBroker())
            mqtt = MqttTarget(broker.host, broker.port)
            protocol = "3.1.1"  # amqtt speaks nothing newer
            self.mqtt_label = f"{broker.url} (embedded)"
        else:
            self.mqtt_label = f"mqtt://{mqtt.host}:{mqtt.port}"
        self.sink = await stack.enter_async_context(
            WebhookSink(summary.sink_file, on_receive=self.on_alert))
        data = build_config_data(self.directory, DemoEndpoints(
            agents.addresses, mqtt.host, mqtt.port, protocol, self.sink.url(),
            _metrics_port(options.metrics_port)), profiles=agents.profiles)
        if mqtt.username:
            data["iot"]["mqtt"]["username"] = mqtt.username
        if mqtt.password:
            data["iot"]["mqtt"]["password"] = mqtt.password
        settings = self.settings = write_config(summary.config_path, data)
        await register_households(settings, HOUSEHOLDS, SystemClock().now())
        self.daemon = await stack.enter_async_context(Daemon(settings))
        if self.daemon.metrics_url:
            summary.metrics_url = f"{self.daemon.metrics_url.rstrip('/')}/metrics"
        self.counts = await stack.enter_async_context(StoreCounts(settings))
        sensors = await stack.enter_async_context(DoorSensorSim(
            HOUSEHOLDS, mqtt.host, mqtt.port, heartbeat_seconds=3.0,
            client_id="netguard-demo-sensors", username=mqtt.username,
            password=mqtt.password))
        # The script's clock starts now, so its first fault follows netguard's first polls.
        self.started = time.monotonic()
        return DemoActuator(agents, sensors, self.post_alert)

    def say(self, text: str) -> None:
        # Never wrap: paths and commands must stay copyable.
        self.console.print(text, soft_wrap=True, highlight=False)

    def introduce(self) -> None:
        summary = self.summary
        self.say(f"[bold]netguard demo[/bold] in {self.directory}")
        self.say(f"  config   {summary.config_path}")
        self.say(f"  metrics  {summary.metrics_url or 'disabled'}")
        self.say(f"  alerts   {summary.sink_file}")
        self.say(f"  log      {self.directory / 'netguard.log'}")
        for command in next_commands(str(summary.config_path), summary.executable):
            self.say(f"  try      [cyan]{command}[/cyan]")

    @property
    def live(self) -> bool:
        return self.options.live and self.console.is_terminal

    def reachable(self, target_id: str) -> bool | None:
        status = self.daemon.probes.statuses().get(target_id)
        return None if status is None else bool(status.reachable)

    def note(self, line: str) -> None:
        self.summary.alerts.append(f"{self.elapsed():4.0f}s  {line}")
        if not self.live:
            self.say(f"alert: {line}")

    def on_alert(self, alert: ReceivedAlert) -> None:
        for line in alert_lines(alert.body):
            self.note(line)
        if self._tap is None:
            found = _ack_link(alert.body)
            if found is not None:
                self._tap = asyncio.get_running_loop().create_task(
                    self.tap(*found), name="netguard[demo].ack-link")

    async def tap(self, alert_id: int, url: str) -> None:
        """Tap a door alert's acknowledgement link, then show what the store says."""
        assert self.counts is not None
        try:
            self.note(f"chat: staff tap the link of alert {alert_id}: {await tap_ack_link(url)}")
            self.note(f"chat: {await self.counts.acknowledged(alert_id)}")
        except Exception as exc:  # the demo goes on without this step
            log.warning("demo: the acknowledgement link failed: %s", exc)

    async def post_alert(self) -> None:
        """Post a Prometheus alert to netguard's Alertmanager webhook."""
        settings = self.settings
        if settings is None or not settings.notifications.alertmanager.enabled \
                or not self.daemon.metrics_url:
            return
        token = settings.notifications.alertmanager.token
        assert token is not None
        self.note(await post_alertmanager(self.daemon.metrics_url, token.get_secret_value(),
                                          SystemClock().now()))

    def on_step(self, step: Step) -> None:
        self.summary.steps.append(f"{self.elapsed():4.0f}s  {step.description}")
        if not self.live:
            self.say(f"step: {step.description}")

    async def read_news(self) -> None:
        """Record (and off a terminal, print) each ticket opened, grouped or resolved."""
        assert self.counts is not None
        for line in await self.counts.news():
            self.summary.ticket_news.append(f"{self.elapsed():4.0f}s  {line}")
            if not self.live:
                self.say(f"ticket: {line}")

    async def snapshot(self) -> DemoSnapshot:
        assert self.counts is not None
        assert self.sink is not None
        await self.read_news()
        numbers = await self.counts.read()
        alerts_open, door_events = door_numbers(self.daemon.metrics_snapshot().iot)
        snap = DemoSnapshot(
            elapsed_seconds=self.elapsed(), duration_seconds=self.options.duration,
            targets=_target_lines(self.daemon), tickets_open=numbers["open"],
            tickets_resolved=numbers["resolved"], tickets_children=numbers["children"],
            alerts_open=alerts_open, alerts_received=len(self.sink.received),
            door_events=door_events, steps=tuple(self.summary.steps),
            alerts=tuple(self.summary.alerts), ticket_news=tuple(self.summary.ticket_news),
            metrics_url=self.summary.metrics_url, config_path=str(self.summary.config_path),
            executable=self.summary.executable,
            sink_file=str(self.summary.sink_file), mqtt_url=self.mqtt_label)
        self.summary.last = snap
        if self.on_snapshot is not None:
            self.on_snapshot(snap)
        return snap

    async def show(self) -> None:
        if not self.live:
            # Ticket news within a second (one indexed query); the counts every five.
            ticks = 0
            while True:
                await asyncio.sleep(1.0)
                ticks += 1
                if ticks % 5:
                    await self.read_news()
                else:
                    self.say(status_line(await self.snapshot()))
        with Live(render(await self.snapshot()), console=self.console,
                  refresh_per_second=2) as live:
            while True:
                await asyncio.sleep(0.5)
                live.update(render(await self.snapshot()))


async def run_demo(options: DemoOptions, stop: asyncio.Event, *,
                   console: Console | None = None,
                   on_snapshot: Callable[[DemoSnapshot], None] | None = None) -> DemoSummary:
    """Run the demo until ``stop`` is set or ``options.duration`` has passed.

    Args:
        options: What to run.
        stop: Set it (e.g. on Ctrl-C) to stop everything.
        console: Where the live view and messages go.
        on_snapshot: Called with each view snapshot.

    Raises:
        ConfigError: A bad ``--mqtt-url``.
        DemoError: A simulated part could not start.
        NetguardError: netguard itself could not start.
    """
    run = _Run(options, console or Console(), on_snapshot)

    async def stop_after(seconds: float) -> None:
        await asyncio.sleep(seconds)
        stop.set()

    async with contextlib.AsyncExitStack() as stack:
        actuator = await run.start(stack)
        run.introduce()
        async with asyncio.TaskGroup() as tg:
            tg.create_task(run.daemon.serve(stop), name="netguard[demo].daemon")
            helpers = [
                tg.create_task(run_timeline(options.timeline, actuator, elapsed=run.elapsed,
                                            on_step=run.on_step, reachable=run.reachable),
                               name="netguard[demo].timeline"),
                tg.create_task(run.show(), name="netguard[demo].view"),
            ]
            if options.duration is not None:
                helpers.append(tg.create_task(stop_after(options.duration),
                                              name="netguard[demo].duration"))
            await stop.wait()
            for task in helpers:
                task.cancel()
        with contextlib.suppress(Exception):
            await run.snapshot()
    return run.summary
