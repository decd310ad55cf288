"""Scoped SIGTERM/SIGINT handling that restores the previous handlers on exit."""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

log = logging.getLogger(__name__)

STOP_SIGNALS: tuple[signal.Signals, ...] = (signal.SIGTERM, signal.SIGINT)


@contextmanager
def stop_on_signals(stop: asyncio.Event,
                    signals: Sequence[signal.Signals] = STOP_SIGNALS) -> Iterator[None]:
    """Set ``stop`` when one of ``signals`` arrives, for the duration of the block.

    Must be used inside the running event loop's thread. A second signal while stopping
    is logged and otherwise ignored: shutdown is already bounded by its own timeout.
    The handlers that were installed before (Python's default SIGINT handler, say) are
    put back when the block exits.
    """
    loop = asyncio.get_running_loop()
    previous = {sig: signal.getsignal(sig) for sig in signals}

    def on_signal(sig: signal.Signals) -> None:
        if stop.is_set():
            log.warning("already stopping", extra={"signal": sig.name})
            return
        log.info("stop requested", extra={"signal": sig.name})
        stop.set()

    for sig in signals:
        loop.add_signal_handler(sig, on_signal, sig)
    try:
        yield
    finally:
        for sig in signals:
            loop.remove_signal_handler(sig)
            handler = previous[sig]
            if handler is not None:
                signal.signal(sig, handler)
