"""Keep the start-up heap out of the cyclic garbage collector's full passes.

CPython's full (generation 2) collection walks every tracked object, on the event loop's
thread, whenever a quarter more objects have survived since the last one. A polling
daemon replaces every target's status once per interval, so that happens every 15-30 s,
and each pass also walks everything that lives for the daemon's whole life: modules,
SQLAlchemy and pydantic metadata, the settings and every target's config and slot. At
5,000 targets those passes were the longest event-loop stalls in steady state (0.4-0.9 s
wall, 0.22-0.30 s CPU each; bench/RESULTS.md, issue 10 section 4).

``gc.freeze()`` once start-up is done moves what is alive then into a permanent
generation that no collection walks; only what polling creates afterwards is collected
as before. Objects in it are still freed by reference counting; only a reference cycle
among them would outlive its use, which is why a reload (whose old settings are dropped)
collects and freezes again, and leaving :func:`frozen_heap` gives everything back.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager

_open_blocks: list[None] = []  # one entry per frozen_heap block entered and not left


def refreeze() -> int:
    """Collect what is garbage now, then freeze everything still alive.

    Only inside :func:`frozen_heap` (elsewhere nothing would unfreeze it); a no-op outside.

    Returns:
        Objects frozen (not walked by later collections).
    """
    if not _open_blocks:
        return 0
    return _freeze()


def _freeze() -> int:
    gc.unfreeze()
    gc.collect()
    gc.freeze()
    return gc.get_freeze_count()


@contextmanager
def frozen_heap() -> Iterator[int]:
    """Freeze the heap for the block (see the module docstring); unfreeze after it.

    Yields:
        Objects frozen at entry.
    """
    _open_blocks.append(None)
    try:
        yield _freeze()
    finally:
        _open_blocks.pop()
        if not _open_blocks:
            gc.unfreeze()
