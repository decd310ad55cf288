"""Scoped signal handling that restores the previous handlers on exit.

SIGTERM and SIGINT stop the daemon (:func:`stop_on_signals`); SIGHUP asks it to reload
its configuration (:func:`reload_on_signal`) instead of ending it, which is SIGHUP's
default action.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager

log = logging.getLogger(__name__)

STOP_SIGNALS: tuple[signal.Signals, ...] = (signal.SIGTERM, signal.SIGINT)
RELOAD_SIGNAL = signal.SIGHUP


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
        _restore(loop, previous)


@contextmanager
def reload_on_signal(request_reload: Callable[[], object],
                     sig: signal.Signals = RELOAD_SIGNAL) -> Iterator[None]:
    """Call ``request_reload()`` when ``sig`` (SIGHUP) arrives, for the duration of the block.

    Must be used inside the running event loop's thread. ``request_reload`` runs on the
    event loop and must only schedule the work (e.g. set an event). The previous handler
    is put back when the block exits.
    """
    loop = asyncio.get_running_loop()
    previous = {sig: signal.getsignal(sig)}

    def on_signal() -> None:
        log.info("reload requested", extra={"signal": sig.name})
        request_reload()

    loop.add_signal_handler(sig, on_signal)
    try:
        yield
    finally:
        _restore(loop, previous)


def _restore(loop: asyncio.AbstractEventLoop,
             previous: dict[signal.Signals, signal._HANDLER]
             ) -> None:
    for sig, handler in previous.items():
        loop.remove_signal_handler(sig)
        if handler is not None:
            signal.signal(sig, handler)
