"""Run the door-sensor service alone: ``python -m netguard.iot.intake_main --config X``.

The full daemon (``netguard run``) embeds the same :class:`IotService`; this entry point
exists for the durability tests (which SIGKILL it) and for sites that run the intake as
its own process.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
from collections.abc import Sequence

from netguard.config import Settings, load_settings
from netguard.errors import NetguardError
from netguard.iot.service import IotService
from netguard.logsetup import SECRETS, collect_secrets, configure_logging
from netguard.store import Store

log = logging.getLogger("netguard.iot")


async def serve(settings: Settings, stop: asyncio.Event) -> None:
    """Run the service until ``stop`` is set, sweeping periodically."""
    async with Store(settings.store) as store, IotService(
            settings.iot, store,
            shutdown_timeout=settings.daemon.shutdown_timeout_seconds) as service:
        log.info("iot service started")
        while not stop.is_set():
            try:
                await service.sweep()
            except NetguardError as exc:
                log.warning("sweep failed: %s", exc)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(settings.daemon.sweep_interval_seconds):
                    await stop.wait()
        log.info("iot service stopping")


async def _main(settings: Settings) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        await serve(settings, stop)
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)


def main(argv: Sequence[str] | None = None) -> int:
    """Parse arguments, load config, run until SIGTERM/SIGINT."""
    parser = argparse.ArgumentParser(prog="python -m netguard.iot.intake_main")
    parser.add_argument("--config", "-c", required=True)
    args = parser.parse_args(argv)
    try:
        settings = load_settings(args.config)
    except NetguardError as exc:
        print(f"error: {exc}")
        return 2
    SECRETS.add(collect_secrets(settings))
    configure_logging(settings.logging.level, settings.logging.format)
    try:
        asyncio.run(_main(settings))
    except NetguardError as exc:
        log.error("iot service failed: %s", exc)  # noqa: TRY400  (no traceback for known errors)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
