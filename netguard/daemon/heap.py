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

That alone still left full passes of 30-130 ms CPU at 5,000 targets: every target's
status, last sample and interface readings live for a poll interval, long enough to
reach the oldest generation, so each pass walked the whole estate's state. So while
serving, :func:`keep_settled` collects the young heap every few seconds and freezes what
survived (:func:`settle`): a pass then walks only what the last few seconds created,
whatever the size of the estate. A frozen object that becomes cyclic garbage later is not
collected until a full pass, which :func:`settle` runs when the heap has doubled since
the last one (CPython's rule for its oldest generation is a quarter; doubling keeps the
passes of a large estate's first poll cycle, each a stall, to one or two): an estate that
is not growing keeps its heap flat, because its states are replaced, and freed by
reference counting, poll by poll, so leaked cycles are bounded by the live heap.

While the estate fills (``warming``: the daemon says until every target has been polled
twice), the heap grows by live data alone: every target's status and previous sample,
the renderer's lines. A full pass then would walk all of it and free nothing (at 10,000
targets: 419-438 ms CPU, stalls of 510-571 ms; bench/RESULTS.md, issue 10 section 6), so
until then the growth only moves the baseline; cyclic garbage left among the frozen
objects meanwhile is collected by the first full pass after that, once the heap has
doubled since.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Protocol

log = logging.getLogger("netguard.daemon.heap")

# How often the young heap is collected and frozen while serving: each pass walks what
# the last period created (5 s: 8-30 ms CPU at 10,000 targets a minute; 2 s: a third).
SETTLE_SECONDS = 2.0
FULL_PASS_GROWTH = 1.0  # heap growth since the last full pass that triggers one

_open_blocks: list[None] = []  # one entry per frozen_heap block entered and not left
_after_full_pass = [0]  # objects frozen right after the last full pass


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
    _after_full_pass[0] = sys.getallocatedblocks()
    return gc.get_freeze_count()


def settle(growth: float = FULL_PASS_GROWTH, *, warming: bool = False) -> bool:
    """Collect what is not frozen, then freeze the survivors (see the module docstring).

    Only inside :func:`frozen_heap`; a no-op outside. Runs a full pass (unfreeze, collect,
    freeze) instead when the heap's allocated blocks have grown by more than ``growth``
    since the last full pass. (Blocks, not frozen objects: counting those walks the
    whole frozen heap, which costs as much as the pass it would avoid.)

    Args:
        growth: Growth since the last full pass that triggers one (0.25: by a quarter).
        warming: The estate is still filling (first polls): growth moves the
            baseline instead of triggering a full pass.

    Returns:
        Whether a full pass ran.
    """
    if not _open_blocks:
        return False
    gc.collect()
    gc.freeze()
    blocks = sys.getallocatedblocks()
    if warming:
        _after_full_pass[0] = max(_after_full_pass[0], blocks)
        return False
    if blocks <= _after_full_pass[0] * (1 + growth):
        return False
    started = time.perf_counter()
    frozen = _freeze()
    log.info("full garbage collection of the frozen heap",
             extra={"objects_frozen": frozen,
                    "seconds": round(time.perf_counter() - started, 3)})
    return True


async def keep_settled(period: float = SETTLE_SECONDS,
                       warming: Callable[[], bool] | None = None) -> None:
    """:func:`settle` every ``period`` seconds, until cancelled.

    Args:
        period: Seconds between two settles.
        warming: True while the estate fills (see the module docstring); asked
            before each settle until it first answers False.
    """
    warm = warming is None
    while True:
        await asyncio.sleep(period)
        if not warm and warming is not None:
            warm = not warming()
        settle(warming=not warm)


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


class _PollCounts(Protocol):
    @property
    def scheduler_running(self) -> bool: ...
    @property
    def polls(self) -> Mapping[str, int]: ...
    @property
    def targets_scheduled(self) -> int: ...


def estate_filling(stats: _PollCounts) -> bool:
    """Whether the estate is still filling: not every target polled twice yet.

    Heap growth is then live data, not garbage. Two polls each: the second leaves a
    target its previous sample (for rates) as well.
    """
    return stats.scheduler_running and sum(stats.polls.values()) < 2 * stats.targets_scheduled
