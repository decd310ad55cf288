"""The daemon keeps its start-up heap out of the garbage collector's full passes."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import weakref
from contextlib import AsyncExitStack

from netguard.clock import Clock
from netguard.config import Settings, settings_from_data
from netguard.daemon.app import Daemon
from netguard.daemon.heap import frozen_heap, keep_settled, refreeze, settle
from netguard.daemon.ports import Services
from tests.daemon.test_app import Iot, Probes, Store, Tickets
from tests.daemon.test_reload_plan import _data, _target
from tests.support.wait import async_wait_until


class _Kept:
    """A GC-tracked object (an instance with a ``__dict__``)."""


def _walked(obj: object) -> bool:
    """Whether a full collection walks ``obj`` (the permanent generation is not listed)."""
    return any(o is obj for o in gc.get_objects())


def test_frozen_heap_hides_what_lived_before_it_and_gives_it_back() -> None:
    before = _Kept()
    assert gc.is_tracked(before)
    assert _walked(before)
    with frozen_heap() as frozen:
        during = _Kept()
        assert frozen > 0
        assert not _walked(before)
        assert _walked(during)
    assert _walked(before)
    assert gc.get_freeze_count() == 0


def test_refreeze_outside_frozen_heap_freezes_nothing() -> None:
    assert refreeze() == 0
    assert gc.get_freeze_count() == 0


async def test_serving_daemon_does_not_walk_its_settings_in_full_collections() -> None:
    services = Services(store=Store(), probes=Probes(), tickets=Tickets(), iot=Iot())

    async def opener(_s: Settings, _c: Clock, _st: AsyncExitStack, _t: object) -> Services:
        return services

    settings = settings_from_data(_data(_target("a")))
    daemon = Daemon(settings, open_services=opener)
    assert _walked(settings)
    stop = asyncio.Event()
    async with daemon:
        serving = asyncio.create_task(daemon.serve(stop))
        try:
            await async_wait_until(lambda: _ready(gc.get_freeze_count() > 0),
                                   what="heap frozen")
            assert not _walked(settings)
        finally:
            stop.set()
            await serving
    assert gc.get_freeze_count() == 0
    assert _walked(settings)


async def _ready(value: bool) -> bool:
    return value


class _Cycle:
    """A GC-tracked object that refers to itself: only the collector frees it."""

    def __init__(self) -> None:
        self.me = self


def test_settle_freezes_what_survived_and_collects_young_cycles() -> None:
    with frozen_heap():
        kept = _Kept()
        garbage = _Cycle()
        gone = weakref.ref(garbage)
        del garbage
        assert _walked(kept)
        assert settle() is False  # no full pass: the heap has not doubled
        assert not _walked(kept)
        assert gone() is None
    assert _walked(kept)


def test_settle_runs_a_full_pass_once_the_heap_has_grown() -> None:
    with frozen_heap():
        leaked = _Cycle()
        gone = weakref.ref(leaked)
        settle()  # frozen while alive
        del leaked  # now cyclic garbage among the frozen: no young collection sees it
        assert settle() is False
        assert gone() is not None
        grown = [_Kept() for _ in range(20_000)]
        assert settle(growth=0.001) is True
        assert gone() is None
        assert not _walked(grown[0])
        assert settle(growth=0.001) is False  # measured from the last full pass


def test_settle_while_warming_moves_the_baseline_instead_of_a_full_pass() -> None:
    with frozen_heap():
        leaked = _Cycle()
        gone = weakref.ref(leaked)
        settle()
        del leaked
        grown = [_Kept() for _ in range(50_000)]
        assert settle(growth=0.01, warming=True) is False
        assert gone() is not None  # no full pass while the estate fills
        assert not _walked(grown[0])
        assert settle(growth=0.01) is False  # the warm-up's growth is the new baseline
        more = [_Kept() for _ in range(50_000)]
        assert settle(growth=0.01) is True
        assert gone() is None
        assert not _walked(more[0])


async def test_keep_settled_asks_whether_warming_until_it_is_not() -> None:
    answers = [True, True, False]
    asked: list[bool] = []

    def warming() -> bool:
        asked.append(answers[len(asked)] if len(asked) < len(answers) else True)
        return asked[-1]

    with frozen_heap():
        task = asyncio.create_task(keep_settled(0.001, warming))
        try:
            await async_wait_until(lambda: _ready(len(asked) >= 3), what="warm")
            later = _Kept()  # frozen by a settle after the last question
            await async_wait_until(lambda: _ready(not _walked(later)), what="settled")
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
    assert asked == [True, True, False]


def test_settle_outside_frozen_heap_freezes_nothing() -> None:
    assert settle() is False
    assert gc.get_freeze_count() == 0
