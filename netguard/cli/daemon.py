"""``netguard run``: the long-lived daemon."""

from __future__ import annotations

from typing import TYPE_CHECKING

import typer

from netguard.cli.common import ConfigOption, handle_errors, load_config, run_async

if TYPE_CHECKING:
    from netguard.config import Settings


def register(app: typer.Typer) -> None:
    """Add ``run`` to ``app``."""

    @app.command("run")
    @handle_errors
    def run(config: ConfigOption = None) -> None:
        """Poll targets, keep tickets, ingest door sensors and serve /metrics until stopped.

        Stops gracefully on SIGTERM or SIGINT (within daemon.shutdown_timeout_seconds)
        and exits 0. Exit codes: 2 bad config, 5 outdated database schema, 1 other
        failures.
        """
        settings = load_config(config)
        from netguard.logsetup import configure_logging

        configure_logging(settings.logging.level, settings.logging.format)
        run_async(_serve(settings))


async def _serve(settings: Settings) -> None:
    import asyncio

    from netguard.daemon.app import Daemon
    from netguard.daemon.signals import stop_on_signals

    stop = asyncio.Event()
    with stop_on_signals(stop):
        async with Daemon(settings) as daemon:
            await daemon.serve(stop)
