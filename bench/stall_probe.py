"""Run ``netguard`` with a probe that records how late the event loop runs its timers.

Used by bench_scale.py as ``python bench/stall_probe.py run --config ...`` (and
``python bench/stall_probe.py --idle`` for an idle loop beside it, the baseline). A callback
re-arms itself every 5 ms on the loop ``asyncio.run`` creates; how late it fires is how
long the loop was stalled (or starved of CPU by the machine). Once a second the worst
lateness of that second is appended to ``$NG_STALL_FILE`` as ``<monotonic> <seconds>``.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from typing import Any

PERIOD = 0.005


class _ProbedPolicy(asyncio.DefaultEventLoopPolicy):
    def new_event_loop(self) -> asyncio.AbstractEventLoop:
        loop = super().new_event_loop()
        path = os.environ.get("NG_STALL_FILE")
        if path:
            _arm(loop, path)
        return loop


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
    asyncio.set_event_loop_policy(_ProbedPolicy())
    if sys.argv[1:] == ["--idle"]:
        # The baseline: the same probe on an idle loop shows what the machine alone adds.
        asyncio.run(_idle())
    from netguard.cli import main

    sys.argv = ["netguard", *sys.argv[1:]]
    main()
