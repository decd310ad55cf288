"""``netguard run``: the long-lived daemon."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from netguard.cli.common import (
    ConfigOption,
    find_config_file,
    handle_errors,
    load_config_at,
    run_async,
)
from netguard.daemon.parts import Part

if TYPE_CHECKING:
    from pathlib import Path

    from netguard.config import Settings

OnlyOption = Annotated[
    Part | None,
    typer.Option("--only", help="Run one part alone. 'intake': the store and the door-sensor "
                                "service (MQTT intake, alert outbox, IoT sweeps), with no "
                                "polling and no tickets. Default: everything."),
]


def register(app: typer.Typer) -> None:
    """Add ``run`` to ``app``."""

    @app.command("run")
    @handle_errors
    def run(config: ConfigOption = None, only: OnlyOption = None) -> None:
        """Poll targets, keep tickets, ingest door sensors and serve /metrics until stopped.

        Stops gracefully on SIGTERM or SIGINT (within daemon.shutdown_timeout_seconds)
        and exits 0. SIGHUP reloads the config file: targets, logging and ticket
        settings apply live; an invalid file is logged and the running config kept.
        --only intake runs the door-sensor intake alone (its own process).
        Exit codes: 2 bad config, 5 outdated database schema, 1 other failures.
        """
        import logging

        from netguard.daemon import allocator
        from netguard.logsetup import configure_logging

        # Before any thread exists, and the parse's garbage handed back once it is done
        # (netguard/daemon/allocator.py).
        allocator.limit_arenas()
        location = find_config_file(config)
        settings = load_config_at(location)
        allocator.trim()
        configure_logging(settings.logging.level, settings.logging.format)
        logging.getLogger("netguard.cli").info(
            "configuration loaded", extra={"config": str(location.path.resolve()),
                                           "found_by": location.found_by})
        run_async(_serve(settings, location.path, only))


async def _serve(settings: Settings, path: Path, only: Part | None) -> None:
    import asyncio
    import contextlib
    import functools

    from netguard.config import load_settings
    from netguard.daemon.app import Daemon
    from netguard.daemon.sdnotify import SystemdNotifier
    from netguard.daemon.signals import reload_on_signal, stop_on_signals

    stop = asyncio.Event()
    daemon = Daemon(settings, load_settings=functools.partial(load_settings, path), only=only)

    async def announce_stop(notifier: SystemdNotifier) -> None:
        await stop.wait()
        notifier.stopping()

    # Under systemd (Type=notify): READY once serving, watchdog pings from this loop,
    # STOPPING when the shutdown begins. Outside systemd these do nothing.
    async with SystemdNotifier.from_env() as notifier:
        notifier.status("starting: opening the store and services")
        with stop_on_signals(stop), reload_on_signal(daemon.request_reload):
            async with daemon:
                stopping = asyncio.create_task(announce_stop(notifier),
                                               name="netguard[systemd].stopping")
                serving = "the intake only" if only else f"{len(settings.targets)} targets"
                notifier.ready(f"serving: {serving}, metrics "
                               f"{daemon.metrics_url or 'disabled'}")
                try:
                    await daemon.serve(stop)
                finally:
                    if not stop.is_set():  # a failure, not a requested stop
                        stopping.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await stopping
        notifier.status("stopped")
