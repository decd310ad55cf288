"""Run ``netguard`` with a probe that records how late the event loop runs its timers.

Used by bench_scale.py as ``python bench/stall_probe.py run --config ...`` (and
``python bench/stall_probe.py --idle`` for an idle loop beside it, the baseline). A callback
re-arms itself every 5 ms on the loop ``asyncio.run`` creates; how late it fires is how
long the loop was stalled (or starved of CPU by the machine). Once a second the worst
lateness of that second is appended to ``$NG_STALL_FILE`` as ``<monotonic> <seconds>``.

With ``$NG_SLOW_FILE`` set, every loop callback that runs longer than ``$NG_SLOW_MS``
(default 50) is also named there: its wall time, the loop thread's CPU time during it
(a callback that blocks in a system call or waits for the GIL has wall >> CPU; one that
computes has them close, whatever the machine's load), and the loop thread's Python stack
as a watchdog thread saw it while the callback was still running. That names what blocks
the loop without trusting wall-clock throughput on a shared machine.
"""

from __future__ import annotations

import asyncio
import gc
import os
import sys
import threading
import time
import traceback
from asyncio import events
from typing import Any

PERIOD = 0.005


class _ProbedPolicy(asyncio.DefaultEventLoopPolicy):
    def new_event_loop(self) -> asyncio.AbstractEventLoop:
        loop = super().new_event_loop()
        path = os.environ.get("NG_STALL_FILE")
        if path:
            _arm(loop, path)
        return loop


def _watch_callbacks(path: str, slow: float) -> None:
    """Patch ``Handle._run`` to time each callback; a thread samples the slow ones' stacks."""
    out = open(path, "a", buffering=1)  # noqa: SIM115 - open for the process's life
    state: dict[str, Any] = {"started": None, "stack": None, "thread": None}
    original = events.Handle._run

    def timed(handle: events.Handle) -> None:
        state["thread"] = threading.get_ident()
        state["stack"] = None
        wall0, cpu0 = time.perf_counter(), time.thread_time()
        state["started"] = wall0
        try:
            original(handle)
        finally:
            state["started"] = None
            wall = time.perf_counter() - wall0
            if wall >= slow:
                cpu = time.thread_time() - cpu0
                stack = state["stack"] or "(no sample)"
                out.write(f"{time.monotonic():.3f} wall={wall * 1e3:.1f}ms "
                          f"cpu={cpu * 1e3:.1f}ms {handle!r:.160}\n{stack}\n")

    def watchdog() -> None:
        while True:
            time.sleep(slow / 2)
            started, ident = state["started"], state["thread"]
            if started is None or time.perf_counter() - started < slow / 2:
                continue
            frame = sys._current_frames().get(ident)
            if frame is not None and state["stack"] is None:
                state["stack"] = "".join(traceback.format_stack(frame, limit=12))

    gc_state: dict[str, float] = {}

    def on_gc(phase: str, info: dict[str, int]) -> None:
        # A full collection walks every tracked object: named apart from the callbacks.
        if phase == "start":
            gc_state["t"], gc_state["cpu"] = time.perf_counter(), time.thread_time()
            return
        took = time.perf_counter() - gc_state.get("t", time.perf_counter())
        cpu = time.thread_time() - gc_state.get("cpu", time.thread_time())
        if took >= slow / 5:
            out.write(f"{time.monotonic():.3f} gc gen{info['generation']} "
                      f"wall={took * 1e3:.1f}ms cpu={cpu * 1e3:.1f}ms "
                      f"collected={info['collected']}\n")

    gc.callbacks.append(on_gc)
    events.Handle._run = timed  # type: ignore[method-assign,assignment]
    threading.Thread(target=watchdog, name="slow-callback-watchdog", daemon=True).start()


def _arm(loop: asyncio.AbstractEventLoop, path: str) -> None:
    out = open(path, "a", buffering=1)  # noqa: SIM115 - open for the loop's whole life
    state: dict[str, Any] = {"worst": 0.0, "flush": loop.time() + 1.0}

    def tick(expected: float) -> None:
        now = loop.time()
        state["worst"] = max(state["worst"], now - expected)
        if now >= state["flush"]:
            out.write(f"{time.monotonic():.3f} {state['worst']:.6f}\n")
            state["worst"] = 0.0
            state["flush"] = now + 1.0
        loop.call_at(now + PERIOD, tick, now + PERIOD)

    loop.call_soon(tick, loop.time())


async def _idle() -> None:
    await asyncio.Event().wait()


if __name__ == "__main__":
    if os.environ.get("NG_SLOW_FILE"):
        _watch_callbacks(os.environ["NG_SLOW_FILE"],
                         float(os.environ.get("NG_SLOW_MS", "50")) / 1e3)
    asyncio.set_event_loop_policy(_ProbedPolicy())
    if sys.argv[1:] == ["--idle"]:
        # The baseline: the same probe on an idle loop shows what the machine alone adds.
        asyncio.run(_idle())
    from netguard.cli import main

    sys.argv = ["netguard", *sys.argv[1:]]
    main()
