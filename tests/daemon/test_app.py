"""The daemon's own logic with stand-in services: event delivery, backlog, sweeps, phases."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from netguard.clock import Clock, ManualClock
from netguard.config import Settings, settings_from_data
from netguard.daemon import faultwriter
from netguard.daemon.app import Daemon
from netguard.daemon.faultwriter import POISON_EVENT_ATTEMPTS
from netguard.daemon.parts import Part
from netguard.daemon.ports import Services
from netguard.errors import ConfigError, StoreError, StoreUnavailableError
from netguard.faults import FaultCleared, FaultEvent, FaultKey, FaultOpened
from netguard.iot.service import IotSnapshot
from netguard.probes.assess import ActiveFault
from netguard.probes.config import TargetConfig
from netguard.probes.state import PollOutcome, TargetStatus
from netguard.store.health import StoreHealth
from netguard.tickets.domain import TicketCounts
from tests.support.timing import slack
from tests.support.wait import async_wait_until

NOW = datetime(2026, 1, 1, tzinfo=UTC)


@pytest.fixture(autouse=True)
def _in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # The fault-event journal defaults to the working directory with these settings.
    monkeypatch.chdir(tmp_path)


def _opened(target: str) -> FaultOpened:
    return FaultOpened(FaultKey(target, "agent", "unreachable"), "fiber", None, "critical",
                       "down", (), NOW)


def _cleared(target: str) -> FaultCleared:
    return FaultCleared(FaultKey(target, "agent", "unreachable"), NOW)


@dataclass
class Probes:
    events: dict[str, list[FaultEvent]] = field(default_factory=dict)
    polled: list[str] = field(default_factory=list)
    active: list[ActiveFault] = field(default_factory=list)
    updates: list[list[str]] = field(default_factory=list)

    async def update_targets(self, targets: Sequence[TargetConfig]) -> None:
        self.updates.append([t.id for t in targets])

    def active_faults(self) -> list[ActiveFault]:
        return list(self.active)

    def statuses(self) -> dict[str, TargetStatus]:
        return {t: TargetStatus(target=t, kind="fiber", reachable=True, state="up")
                for t in self.polled}

    async def poll(self, target_id: str) -> PollOutcome:
        self.polled.append(target_id)
        events = tuple(self.events.pop(target_id, []))
        return PollOutcome(TargetStatus(target=target_id, kind="fiber", reachable=True,
                                        state="up"), events)


@dataclass
class Tickets:
    down: bool = False
    handled: list[FaultEvent] = field(default_factory=list)
    sweeps: int = 0

    async def handle(self, event: FaultEvent, *, fence: object = None) -> None:
        if self.down:
            raise StoreUnavailableError("database unreachable")
        self.handled.append(event)

    async def sweep(self, *, still_active: Callable[[str], bool] | None = None,
                    fence: object = None) -> None:
        self.sweeps += 1
        if self.down:
            raise StoreUnavailableError("database unreachable")

    async def counts(self) -> TicketCounts:
        return TicketCounts(open={("fiber", "critical"): len(self.handled)})


@dataclass
class Iot:
    sweeps: int = 0
    mqtt_connected: bool = True
    steps: list[float] = field(default_factory=list)

    async def sweep(self) -> None:
        self.sweeps += 1

    async def on_clock_step(self, step_seconds: float) -> None:
        self.steps.append(step_seconds)

    def snapshot(self) -> IotSnapshot:
        return IotSnapshot(mqtt_connected=self.mqtt_connected)


@dataclass
class Store:
    up: bool = True

    async def writable(self, within: float | None = None) -> StoreHealth:
        return StoreHealth(True) if self.up else StoreHealth(False, "unreachable")


def _settings(**daemon: Any) -> Settings:
    return settings_from_data({
        "targets": [{"id": f"t{i}", "kind": "fiber", "address": "127.0.0.1:9",
                     "interval_seconds": 0.1} for i in range(3)],
        "iot": {"mqtt": {"enabled": True}},
        "metrics": {"listen": "127.0.0.1:0"},
        "daemon": {"sweep_interval_seconds": 0.05, "poll_jitter_seconds": 0.01, **daemon},
    })


def _opener(services: Services) -> Any:
    async def open_services(_s: Settings, _c: Clock, _stack: AsyncExitStack,
                            _on_trap: object) -> Services:
        return services
    return open_services


async def _true(value: bool) -> bool:
    return value


async def test_fault_events_reach_tickets_and_survive_a_store_outage_in_order() -> None:
    probes, tickets = Probes(), Tickets()
    services = Services(store=Store(), probes=probes, tickets=tickets, iot=Iot())
    stop = asyncio.Event()
    seen: list[str] = []
    async with Daemon(_settings(), open_services=_opener(services)) as daemon:
        daemon.on_poll.append(lambda outcome: seen.append(outcome.status.target))
        async with asyncio.TaskGroup() as tg:
            tg.create_task(daemon.serve(stop))
            probes.events["t0"] = [_opened("t0")]
            await async_wait_until(lambda: _true(len(tickets.handled) == 1), what="delivery")
            tickets.down = True
            probes.events["t1"] = [_opened("t1")]
            await async_wait_until(lambda: _true(daemon.backlog == 1), what="backlog")
            # Later events for the same fault queue behind, never overtake.
            probes.events["t1"] = [_cleared("t1")]
            await async_wait_until(lambda: _true(daemon.backlog == 2), what="queued behind")
            await async_wait_until(lambda: _true(daemon.sweep_errors >= 1), what="sweep fails")
            tickets.down = False
            await async_wait_until(lambda: _true(daemon.backlog == 0), what="drained")
            stop.set()
    assert [type(e).__name__ for e in tickets.handled] == ["FaultOpened", "FaultOpened",
                                                           "FaultCleared"]
    assert [e.key.target for e in tickets.handled] == ["t0", "t1", "t1"]
    assert {"t0", "t1", "t2"} <= set(seen)


async def test_metrics_and_readiness_reflect_the_services() -> None:
    store, iot = Store(), Iot()
    services = Services(store=store, probes=Probes(), tickets=Tickets(), iot=iot)
    stop = asyncio.Event()
    async with Daemon(_settings(), open_services=_opener(services)) as daemon, \
            aiohttp.ClientSession() as http:
        assert daemon.metrics_url is not None
        # Before serve(): alive, not ready (the scheduler is not running yet).
        async with http.get(f"{daemon.metrics_url}/readyz") as resp:
            assert resp.status == 503
        async with asyncio.TaskGroup() as tg:
            tg.create_task(daemon.serve(stop))
            await async_wait_until(lambda: _true(daemon.scheduler.running), what="running")
            assert await daemon.readiness() == {"scheduler": True, "store": True,
                                                "broker": True}
            iot.mqtt_connected = False
            store.up = False
            assert await daemon.readiness() == {"scheduler": True, "store": False,
                                                "broker": False}
            snap = daemon.metrics_snapshot()
            assert snap.iot is not None
            assert snap.iot.mqtt_connected is False
            assert snap.daemon.scheduler_running
            stop.set()
        assert not daemon.scheduler.running


async def test_a_failing_startup_closes_what_was_opened() -> None:
    closed: list[str] = []

    async def open_services(_s: Settings, _c: Clock, stack: AsyncExitStack,
                            _on_trap: object) -> Services:
        stack.callback(closed.append, "store")
        raise StoreUnavailableError("cannot reach the database")

    with pytest.raises(StoreUnavailableError):
        async with Daemon(_settings(), open_services=open_services):
            pass
    assert closed == ["store"]


async def test_busy_port_fails_startup_and_releases_services() -> None:
    closed: list[str] = []

    async def open_services(_s: Settings, _c: Clock, stack: AsyncExitStack,
                            _on_trap: object) -> Services:
        stack.callback(closed.append, "services")
        return Services(store=Store(), probes=Probes(), tickets=Tickets(), iot=Iot())

    async with Daemon(_settings(), open_services=_opener(
            Services(store=Store(), probes=Probes(), tickets=Tickets(), iot=Iot()))) as first:
        assert first.metrics_url is not None
        port = first.metrics_url.rsplit(":", 1)[1]
        settings = settings_from_data({**_settings().model_dump(mode="json"),
                                       "metrics": {"listen": f"127.0.0.1:{port}"}})

        with pytest.raises(ConfigError, match="cannot listen"):
            async with Daemon(settings, open_services=open_services):
                pass
    assert closed == ["services"]


async def test_shutdown_is_bounded_even_if_a_service_hangs_on_close(
        caplog: pytest.LogCaptureFixture) -> None:
    closed: list[str] = []

    async def hang() -> None:
        await asyncio.Event().wait()

    async def open_services(_s: Settings, _c: Clock, stack: AsyncExitStack,
                            _on_trap: object) -> Services:
        stack.callback(closed.append, "store")  # opened first, closed last
        stack.push_async_callback(hang)
        return Services(store=Store(), probes=Probes(), tickets=Tickets(), iot=Iot())

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    # Without the budget the close would hang for ever; fail here rather than at the
    # suite's timeout. The 1 s budget is fixed; only the overhead allowance scales.
    async with asyncio.timeout(1.0 + slack(1.5)):
        async with Daemon(_settings(shutdown_timeout_seconds=1.0),
                          open_services=open_services) as daemon:
            loop.call_later(0.2, stop.set)
            await daemon.serve(stop)
    # The daemon's own budget cut the hanging close short (not the guard above) ...
    assert [r.getMessage() for r in caplog.records if r.levelname == "ERROR"] == [
        "services did not close within the shutdown timeout"]
    assert closed == ["store"]  # ... and the rest of the stack still closed


@dataclass
class PickyTickets(Tickets):
    """A store that answers but refuses one fault for good (a value too long, say)."""

    refused: str = "t1"
    refusals: int = 0

    async def handle(self, event: FaultEvent, *, fence: object = None) -> None:
        if event.key.target == self.refused and isinstance(event, FaultOpened):
            self.refusals += 1
            raise StoreError("database failed: value too long for type character varying(128)")
        await super().handle(event)


async def test_an_event_the_store_always_refuses_does_not_block_later_ones(
        caplog: pytest.LogCaptureFixture) -> None:
    probes, tickets = Probes(), PickyTickets()
    services = Services(store=Store(), probes=probes, tickets=tickets, iot=Iot())
    stop = asyncio.Event()
    async with Daemon(_settings(), open_services=_opener(services)) as daemon, \
            asyncio.TaskGroup() as tg:
        tg.create_task(daemon.serve(stop))
        probes.events["t1"] = [_opened("t1")]
        await async_wait_until(lambda: _true(tickets.refusals >= 1), what="refused")
        probes.events["t2"] = [_opened("t2")]
        await async_wait_until(lambda: _true(len(tickets.handled) == 1), timeout=10,
                               what="the later event delivered")
        stop.set()
    assert [e.key.target for e in tickets.handled] == ["t2"]
    assert daemon.events_rejected == 1
    assert daemon.backlog == 0
    assert any("set aside" in r.getMessage() and getattr(r, "fault", "") == "t1|agent|unreachable"
               for r in caplog.records)


async def test_an_outage_never_sets_events_aside(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(faultwriter, "RETRY_MAX_SECONDS", 0.2)
    probes, tickets, store = Probes(), PickyTickets(), Store(up=False)
    services = Services(store=store, probes=probes, tickets=tickets, iot=Iot())
    stop = asyncio.Event()
    async with Daemon(_settings(), open_services=_opener(services)) as daemon, \
            asyncio.TaskGroup() as tg:
        tg.create_task(daemon.serve(stop))
        probes.events["t1"] = [_opened("t1")]
        # Many attempts fail while the database does not answer: the event stays.
        await async_wait_until(lambda: _true(tickets.refusals >= 2 * POISON_EVENT_ATTEMPTS),
                               timeout=60, what="retries")
        assert daemon.backlog == 1
        assert daemon.events_rejected == 0
        stop.set()


def _sample(text: str, name: str) -> float | None:
    for line in text.splitlines():
        if line.startswith(f"{name} "):
            return float(line.split()[1])
    return None


async def test_a_full_backlog_spills_to_the_journal_and_replays_in_order(
        tmp_path: Path) -> None:
    probes, tickets = Probes(), Tickets(down=True)
    services = Services(store=Store(), probes=probes, tickets=tickets, iot=Iot())
    stop = asyncio.Event()
    journal = tmp_path / "fault-events.journal"
    sent: list[FaultEvent] = [_opened("t0"), _cleared("t0")] * 3  # 6 events, 2 fit in memory
    async with Daemon(_settings(fault_backlog_memory=2), open_services=_opener(services)
                      ) as daemon, aiohttp.ClientSession() as http:
        assert daemon.metrics_url is not None
        async with asyncio.TaskGroup() as tg:
            tg.create_task(daemon.serve(stop))
            probes.events["t0"] = list(sent)
            await async_wait_until(lambda: _true(daemon.backlog == 6), what="backlog")
            assert len(journal.read_text().splitlines()) == 4
            async with http.get(f"{daemon.metrics_url}/metrics") as resp:
                text = await resp.text()
            tickets.down = False
            await async_wait_until(lambda: _true(daemon.backlog == 0), timeout=60,
                                   what="replayed")
            stop.set()
    assert _sample(text, "netguard_fault_event_backlog") == 6
    assert _sample(text, "netguard_fault_events_dropped_total") == 0
    assert tickets.handled == sent
    assert not journal.exists()


async def test_events_waiting_at_shutdown_are_delivered_after_a_restart(
        tmp_path: Path) -> None:
    probes, tickets = Probes(), Tickets(down=True)
    services = Services(store=Store(), probes=probes, tickets=tickets, iot=Iot())
    stop = asyncio.Event()
    sent: list[FaultEvent] = [_opened("t0"), _opened("t1"), _cleared("t0")]
    async with Daemon(_settings(shutdown_timeout_seconds=1.0),
                      open_services=_opener(services)) as daemon, asyncio.TaskGroup() as tg:
        tg.create_task(daemon.serve(stop))
        probes.events["t0"] = list(sent)
        await async_wait_until(lambda: _true(daemon.backlog == 3), what="backlog")
        stop.set()
    assert tickets.handled == []
    assert len((tmp_path / "fault-events.journal").read_text().splitlines()) == 3

    tickets.down = False
    stop = asyncio.Event()
    async with Daemon(_settings(), open_services=_opener(services)) as daemon:
        assert daemon.backlog == 3
        async with asyncio.TaskGroup() as tg:
            tg.create_task(daemon.serve(stop))
            await async_wait_until(lambda: _true(daemon.backlog == 0), what="replayed")
            stop.set()
    assert tickets.handled == sent
    assert not (tmp_path / "fault-events.journal").exists()


async def test_a_wall_clock_step_is_caught_by_the_next_sweep_and_handed_to_iot() -> None:
    iot = Iot()
    services = Services(store=Store(), probes=Probes(), tickets=Tickets(), iot=iot)
    clock = ManualClock()
    async with Daemon(_settings(clock_step_threshold_seconds=30), clock=clock,
                      open_services=_opener(services)) as daemon:
        clock.advance(15)
        await daemon.sweep()
        assert iot.steps == []
        clock.step_wall(-7200)
        clock.advance(15)
        await daemon.sweep()
        assert iot.steps == [-7200]
        assert (daemon.clock_watch.forward, daemon.clock_watch.backward) == (0, 1)
        assert daemon.metrics_snapshot().daemon.clock_steps == {"forward": 0, "backward": 1}
        assert iot.sweeps == 2  # the sweep itself still ran


async def test_the_intake_alone_runs_no_polls_no_tickets_and_no_fault_journal(
        tmp_path: Path) -> None:
    iot = Iot()
    services = Services(store=Store(), probes=None, tickets=None, iot=iot)
    journal = tmp_path / "fault-events.journal"
    journal.write_text('{"not": "read"}\n')  # the polling daemon's: not this process's
    stop = asyncio.Event()
    async with Daemon(_settings(), open_services=_opener(services), only=Part.INTAKE
                      ) as daemon, asyncio.TaskGroup() as tg:
        tg.create_task(daemon.serve(stop))
        await async_wait_until(lambda: _true(iot.sweeps >= 2), what="IoT sweeps")
        assert not daemon.scheduler.running
        assert daemon.scheduler.stats().targets_scheduled == 0
        assert await daemon.readiness() == {"store": True, "broker": True}
        snapshot = daemon.metrics_snapshot()
        assert snapshot.targets == {}
        assert snapshot.tickets is None
        assert snapshot.daemon.fault_event_journal == 0
        assert daemon.backlog == 0
        with pytest.raises(RuntimeError, match="only the intake"):
            _ = daemon.probes
        stop.set()
    assert daemon.sweep_errors == 0
    assert journal.read_text() == '{"not": "read"}\n'
