"""What a SIGHUP reload applies, decided without I/O, and how the daemon applies it."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
from contextlib import AsyncExitStack
from typing import Any

import pytest

from netguard.clock import Clock
from netguard.config import Settings, settings_from_data
from netguard.daemon.app import Daemon
from netguard.daemon.ports import Services
from netguard.daemon.reload import plan_reload
from netguard.daemon.signals import reload_on_signal
from netguard.errors import ConfigError
from netguard.probes.config import TargetConfig
from netguard.tickets.config import TicketsConfig
from tests.daemon.test_app import Iot, Probes, Store, Tickets
from tests.support.wait import async_wait_until


def _target(tid: str, **extra: Any) -> dict[str, Any]:
    return {"id": tid, "kind": "fiber", "address": "127.0.0.1:9", "interval_seconds": 60,
            **extra}


def _data(*targets: dict[str, Any], **sections: Any) -> dict[str, Any]:
    return {"targets": list(targets), "metrics": {"listen": "127.0.0.1:0"},
            "daemon": {"sweep_interval_seconds": 60, "poll_jitter_seconds": 0}, **sections}


def test_plan_lists_target_changes_and_applies_live_sections() -> None:
    running = settings_from_data(_data(_target("a"), _target("b"), _target("c")))
    loaded = settings_from_data(_data(
        _target("b", interval_seconds=30), _target("c"), _target("d"),
        tickets={"resolve_hold_seconds": 5}, logging={"level": "DEBUG"}))
    plan = plan_reload(running, loaded)
    assert (plan.added, plan.removed, plan.changed) == (("d",), ("a",), ("b",))
    assert plan.targets_changed
    assert plan.tickets_changed
    assert plan.logging_changed
    assert plan.needs_restart == ()
    assert plan.settings == loaded


def test_plan_keeps_restart_only_options_and_names_them_without_values() -> None:
    running = settings_from_data(_data(_target("a")))
    loaded = settings_from_data(_data(
        _target("a"), metrics={"listen": "0.0.0.0:9999"},
        store={"url": "postgresql://netguard:sekrit-password@db/netguard"},
        iot={"mqtt": {"enabled": True, "host": "broker.example"}},
        daemon={"sweep_interval_seconds": 60, "poll_jitter_seconds": 0,
                "shutdown_timeout_seconds": 3}))
    plan = plan_reload(running, loaded)
    assert set(plan.needs_restart) == {"metrics.listen", "store.url", "iot.mqtt.enabled",
                                       "iot.mqtt.host", "daemon.shutdown_timeout_seconds"}
    assert "sekrit" not in repr(plan.needs_restart)
    assert not plan.changes_anything
    for section in ("store", "iot", "metrics", "daemon"):
        assert getattr(plan.settings, section) == getattr(running, section)


def test_an_unchanged_file_changes_nothing() -> None:
    settings = settings_from_data(_data(_target("a")))
    plan = plan_reload(settings, settings_from_data(_data(_target("a"))))
    assert not plan.changes_anything
    assert plan.needs_restart == ()


async def test_sighup_handler_is_scoped_and_restores_the_previous_one() -> None:
    seen: list[int] = []

    def previous(signum: int, _frame: object) -> None:
        seen.append(signum)

    old = signal.signal(signal.SIGHUP, previous)
    try:
        requested = asyncio.Event()
        with reload_on_signal(requested.set):
            os.kill(os.getpid(), signal.SIGHUP)
            await asyncio.wait_for(requested.wait(), timeout=5)
        assert signal.getsignal(signal.SIGHUP) is previous
        assert seen == []
    finally:
        signal.signal(signal.SIGHUP, old)


class Loader:
    """Returns the next settings, or raises the next ConfigError."""

    def __init__(self) -> None:
        self.next: Settings | ConfigError | None = None

    def __call__(self) -> Settings:
        assert self.next is not None
        if isinstance(self.next, ConfigError):
            raise self.next
        return self.next


async def test_daemon_reload_applies_targets_and_tickets_and_survives_a_bad_file() -> None:
    probes = Probes()
    made: list[TicketsConfig] = []

    def make_tickets(config: TicketsConfig) -> Tickets:
        made.append(config)
        return Tickets()

    first_tickets = Tickets()
    services = Services(store=Store(), probes=probes, tickets=first_tickets, iot=Iot(),
                        make_tickets=make_tickets)

    async def opener(_s: Settings, _c: Clock, _st: AsyncExitStack, _t: object) -> Services:
        return services

    loader = Loader()
    daemon = Daemon(settings_from_data(_data(_target("a"), _target("b"))),
                    open_services=opener, load_settings=loader)
    stop = asyncio.Event()
    root = logging.getLogger()
    root_state = (root.level, list(root.handlers))
    async with daemon:
        serving = asyncio.create_task(daemon.serve(stop))
        try:
            loader.next = settings_from_data(_data(
                _target("b"), _target("c", interval_seconds=0.05),
                tickets={"resolve_hold_seconds": 7}, logging={"level": "WARNING"}))
            daemon.request_reload()
            await async_wait_until(lambda: _done(daemon.reloads["success"] == 1),
                                   what="reload applied")
            assert probes.updates == [["b", "c"]]
            assert [t.id for t in daemon.settings.targets] == ["b", "c"]
            assert made[-1].resolve_hold_seconds == 7
            assert root.level == logging.WARNING
            assert services.tickets is not first_tickets
            assert daemon.scheduler.stats().targets_scheduled == 2
            await async_wait_until(lambda: _done(probes.polled.count("c") >= 2),
                                   what="the new target polled")

            running = daemon.settings
            loader.next = ConfigError("netguard.yaml", ["targets[0].interval_seconds: bad"])
            daemon.request_reload()
            await async_wait_until(lambda: _done(daemon.reloads["error"] == 1),
                                   what="failed reload counted")
            assert daemon.settings is running
            stats = daemon.metrics_snapshot().daemon
            assert stats.config_reloads == {"success": 1, "error": 1}
            assert stats.config_last_reload_successful is False
        finally:
            stop.set()
            await serving
            root.setLevel(root_state[0])
            root.handlers[:] = root_state[1]


async def _done(value: bool) -> bool:
    return value


@pytest.mark.parametrize("targets", [[], [TargetConfig.model_validate(_target("x"))]])
def test_plan_counts_an_inventory_emptied_or_filled(targets: list[TargetConfig]) -> None:
    running = settings_from_data(_data(_target("a")))
    loaded = running.model_copy(update={"targets": targets})
    plan = plan_reload(running, loaded)
    assert plan.removed == ("a",)
    assert plan.added == tuple(t.id for t in targets)
