"""``netguard run``: the long-lived daemon."""

from __future__ import annotations

from typing import TYPE_CHECKING

import typer

from netguard.cli.common import (
    ConfigOption,
    handle_errors,
    load_config,
    resolve_config_path,
    run_async,
)

if TYPE_CHECKING:
    from pathlib import Path

    from netguard.config import Settings


def register(app: typer.Typer) -> None:
    """Add ``run`` to ``app``."""

    @app.command("run")
    @handle_errors
    def run(config: ConfigOption = None) -> None:
        """Poll targets, keep tickets, ingest door sensors and serve /metrics until stopped.

        Stops gracefully on SIGTERM or SIGINT (within daemon.shutdown_timeout_seconds)
        and exits 0. SIGHUP reloads the config file: targets, logging and ticket
        settings apply live; an invalid file is logged and the running config kept.
        Exit codes: 2 bad config, 5 outdated database schema, 1 other failures.
        """
        settings = load_config(config)
        from netguard.logsetup import configure_logging

        configure_logging(settings.logging.level, settings.logging.format)
        run_async(_serve(settings, resolve_config_path(config)))


async def _serve(settings: Settings, path: Path | None) -> None:
    import asyncio
    import functools

    from netguard.config import load_settings
    from netguard.daemon.app import Daemon
    from netguard.daemon.signals import reload_on_signal, stop_on_signals

    stop = asyncio.Event()
    daemon = Daemon(settings, load_settings=functools.partial(load_settings, path))
    with stop_on_signals(stop), reload_on_signal(daemon.request_reload):
        async with daemon:
            await daemon.serve(stop)
