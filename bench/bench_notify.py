"""Issue 9: from a fault to the chat robot, with 1,000 targets and 100 faults at once.

What is timed, per fault: from the moment the probes raise ``FaultOpened`` (the poll's
assessment: what a target going down becomes) to the moment a real HTTP sink answering as
a WeCom group robot has received a message naming that fault's ticket. In between run the
daemon's own parts, unchanged: the fault writer (events handed over as polls do, delivered
in order), the ticket service, the ticket notifier (route, ``group_wait``), the persistent
outbox (the WeCom robot's 20 messages a minute; waiting messages are folded into one) and
the WeCom notifier over HTTP. The time a poll takes to *notice* a target down is the
target's own interval and timeout, not measured here.

Goal (issue 9): p99 <= 2 s + group_wait.

Usage::

    .venv/bin/python bench/bench_notify.py [--targets 1000] [--faults 100] [--rounds 3]
        [--group-wait 5]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import re
import statistics
import sys
import tempfile
import time
from collections.abc import Mapping
from contextlib import AsyncExitStack
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from netguard.clock import SystemClock  # noqa: E402
from netguard.config import Settings, settings_from_data  # noqa: E402
from netguard.daemon.backlog import FaultBacklog  # noqa: E402
from netguard.daemon.faultwriter import FaultWriter  # noqa: E402
from netguard.faults import FaultKey, FaultOpened  # noqa: E402
from netguard.iot.notifiers.registry import build_notifier  # noqa: E402
from netguard.iot.outbox import OutboxWorker  # noqa: E402
from netguard.notify.texts import TicketTexts  # noqa: E402
from netguard.notify.tickets import TicketNotifier  # noqa: E402
from netguard.store import Store  # noqa: E402
from netguard.store.db import upgrade  # noqa: E402
from netguard.tickets.domain import TicketFilter, format_ref  # noqa: E402
from netguard.tickets.service import TicketService  # noqa: E402

_REF = re.compile(r"NG-\d{6}")


class Sink:
    """A WeCom-robot stand-in: records when each ticket ref first arrives (monotonic)."""

    def __init__(self) -> None:
        self.first_seen: dict[str, float] = {}
        self.messages = 0
        self._runner: web.AppRunner | None = None
        self.port = 0

    async def _post(self, request: web.Request) -> web.Response:
        body: Any = await request.json()
        now = time.monotonic()
        self.messages += 1
        content = str((body.get("markdown") or {}).get("content", ""))
        for ref in _REF.findall(content):
            self.first_seen.setdefault(ref, now)
        return web.json_response({"errcode": 0, "errmsg": "ok"})

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/wecom", self._post)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()


def _settings(db: Path, sink_port: int, targets: int, group_wait: float) -> Settings:
    return settings_from_data({
        "targets": [{"id": f"t{i:05d}", "kind": "fiber", "address": "127.0.0.1",
                     "site": f"site-{i % 50}", "labels": {"tier": "access"}}
                    for i in range(targets)],
        "store": {"path": str(db)},
        "iot": {"notifiers": [{"name": "netops", "type": "wecom",
                               "url": f"http://127.0.0.1:{sink_port}/wecom?key=bench",
                               "rate_per_minute": 20, "timeout_seconds": 5}]},
        "notifications": {"routes": [{
            "name": "network-duty", "notifiers": ["netops"],
            "match": {"labels": {"tier": "~access|core"}},
            "group_wait_seconds": group_wait, "group_interval_seconds": 60,
            "repeat_interval_seconds": 0}]},
    })


async def one_round(targets: int, faults: int, group_wait: float) -> list[float]:
    """Latencies (s) of ``faults`` simultaneous faults among ``targets`` targets."""
    sink = Sink()
    await sink.start()
    with tempfile.TemporaryDirectory(prefix="ng-bench-notify-") as tmp:
        settings = _settings(Path(tmp) / "netguard.db", sink.port, targets, group_wait)
        await upgrade(settings.store)
        async with AsyncExitStack() as stack:
            store = await stack.enter_async_context(Store(settings.store))
            http = await stack.enter_async_context(aiohttp.ClientSession())
            worker = OutboxWorker(store, {n.name: build_notifier(n, http, settings.iot.mqtt)
                                          for n in settings.iot.notifiers}, settings.iot,
                                  SystemClock())
            labels: Mapping[str, Mapping[str, str]] = {t.id: t.labels
                                                         for t in settings.targets}
            notifier = TicketNotifier(store, settings.notifications, texts=TicketTexts(),
                                      ref=format_ref, outbox=worker,
                                      labels=lambda t: labels.get(t, {}))
            tickets = TicketService(store, settings.tickets, on_change=notifier.wake)
            writer = FaultWriter(FaultBacklog(Path(tmp) / "journal"), lambda: tickets,
                                 lambda: store, timeout=10.0)
            tasks = [asyncio.create_task(worker.run()), asyncio.create_task(writer.run())]
            await stack.enter_async_context(notifier)
            raised: dict[str, float] = {}
            events = []
            for i in range(0, targets, max(1, targets // faults))[:faults]:
                target = f"t{i:05d}"
                raised[target] = time.monotonic()
                events.append(FaultOpened(
                    key=FaultKey(target, "agent", "unreachable"), category="fiber",
                    site=f"site-{i % 50}", severity="major", summary=f"{target} down",
                    reasons=("no answer",), at=datetime.now(UTC)))
            writer.hand_over(events)
            refs = {}
            deadline = time.monotonic() + group_wait + 120
            while time.monotonic() < deadline:
                for ticket in await tickets.list(TicketFilter(limit=None)):
                    if ticket.target is not None:
                        refs[ticket.target] = ticket.ref
                if len(refs) == faults and all(r in sink.first_seen for r in refs.values()):
                    break
                await asyncio.sleep(0.05)
            writer.finish()
            worker.stop()
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
    await sink.stop()
    missing = [t for t in raised if refs.get(t) not in sink.first_seen]
    if missing:
        raise SystemExit(f"{len(missing)} faults never reached the sink: {missing[:5]}")
    print(f"  round: {faults} faults -> {sink.messages} robot messages")
    return [sink.first_seen[refs[t]] - raised[t] for t in raised]


def _pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--targets", type=int, default=1000)
    parser.add_argument("--faults", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--group-wait", type=float, default=5.0)
    args = parser.parse_args()
    print(f"machine: {platform.machine()} {os.cpu_count()} cpu, Python "
          f"{platform.python_version()}, load {os.getloadavg()[0]:.1f}")
    latencies: list[float] = []
    for _ in range(args.rounds):
        latencies += await one_round(args.targets, args.faults, args.group_wait)
    budget = 2.0 + args.group_wait
    p50, p99 = statistics.median(latencies), _pct(latencies, 99)
    print(f"{len(latencies)} faults over {args.rounds} rounds, {args.targets} targets, "
          f"group_wait {args.group_wait:g} s: p50 {p50:.2f} s, p99 {p99:.2f} s, max "
          f"{max(latencies):.2f} s (goal p99 <= {budget:g} s: "
          f"{'met' if p99 <= budget else 'NOT met'}); load {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    asyncio.run(main())
