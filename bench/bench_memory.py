"""What each polled target holds in memory: tracemalloc and RSS per target.

Creates a namespace with one net-snmp ``snmpd`` serving ``--veth`` veth pairs (plus ``lo``:
7 interfaces, about 116 values per poll by default), then in one process builds a
``ProbeService`` with N private-line targets (all on that agent, each its own session),
polls every target twice (so each holds a previous sample for its rates), scrapes
``/metrics`` twice as the daemon serves it (gzip streamed from a worker thread through
its ``Renderer``), and reports the memory that
remains per target, with the top allocation sites (tracemalloc, grouped by line).

    .venv/bin/python bench/bench_memory.py --targets 1000 [--engine gufo] [--top 15]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path
from typing import Any

import netlab

PORT = 16161


def _scrape(renderer: Any, statuses: Any) -> int:
    """One gzip scrape, as ``/metrics`` serves it: the bytes sent."""
    from netguard.daemon.http import gzip_pieces
    from netguard.metrics import MetricsSnapshot

    return sum(len(piece) for piece in gzip_pieces(renderer, MetricsSnapshot(targets=statuses)))


async def run(args: argparse.Namespace) -> dict[str, Any]:
    from netguard.config import settings_from_data
    from netguard.daemon import http  # noqa: F401  # imported before the baseline: fixed cost
    from netguard.metrics import Renderer
    from netguard.probes.config import ProbesConfig
    from netguard.probes.service import ProbeService

    raw = [{"id": f"pl-{i:05d}", "kind": "private_line", "address": f"127.0.0.1:{PORT}",
            "site": f"site-{i % 50}", "profile": "private-line",
            "snmp": {"version": "2c", "community": netlab.COMMUNITY},
            "timeout_seconds": 10} for i in range(args.targets)]
    targets = settings_from_data({"targets": raw}).targets
    renderer = Renderer()
    gc.collect()
    rss0 = netlab.proc_rss(os.getpid())
    if args.trace:
        tracemalloc.start(args.frames)
    base = tracemalloc.take_snapshot() if args.trace else None
    started = time.perf_counter()
    async with ProbeService(targets, max_concurrency=64,
                            probes=ProbesConfig(engine=args.engine,  # type: ignore[arg-type]
                                                max_open_sockets=args.sockets)) as probes:
        for _ in range(2):
            outcomes = await probes.poll_all()
            bad = [o.status.target for o in outcomes if not o.status.reachable]
            assert not bad, f"unreachable: {bad[:3]}"
            for _ in range(2):
                # As the daemon scrapes: gzip streamed from the render thread.
                size = await asyncio.to_thread(_scrape, renderer, probes.statuses())
        gc.collect()
        rss1 = netlab.proc_rss(os.getpid())
        after = tracemalloc.take_snapshot() if args.trace else None
        values = probes.wire_counts()[2] / (2 * args.targets)
    report: dict[str, Any] = {
        "targets": args.targets, "engine": args.engine, "values_per_poll": round(values),
        "rss_growth_per_target_kb": round((rss1 - rss0) / args.targets / 1024, 1),
        "metrics_gzip_bytes": size, "seconds": round(time.perf_counter() - started, 1),
        "load1": netlab.loadavg()[0],
    }
    if base is not None and after is not None:
        stats = after.compare_to(base, "traceback" if args.frames > 1 else "lineno")
        traced = sum(s.size_diff for s in stats)
        report["traced_per_target_kb"] = round(traced / args.targets / 1024, 2)
        report["top"] = [{"kb_per_target": round(s.size_diff / args.targets / 1024, 2),
                          "count_per_target": round(s.count_diff / args.targets, 1),
                          "where": [f"{f.filename.split('site-packages/')[-1]}:{f.lineno}"
                                    for f in s.traceback][:args.frames]}
                         for s in stats[:args.top]]
    return report


def inner_main(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory(prefix="ng-mem-") as tmp:
        agent = netlab.start_snmpd(Path(tmp), PORT)
        try:
            report = asyncio.run(run(args))
        finally:
            netlab.stop([agent])
    report["command"] = " ".join(["bench/bench_memory.py", *sys.argv[1:]])
    print(json.dumps(report, indent=1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--targets", type=int, default=1000)
    parser.add_argument("--engine", default="gufo", choices=("gufo", "pysnmp"))
    parser.add_argument("--sockets", type=int, default=512, help="probes.max_open_sockets")
    parser.add_argument("--veth", type=int, default=3)
    parser.add_argument("--top", type=int, default=15)
    parser.add_argument("--frames", type=int, default=1)
    parser.add_argument("--no-trace", dest="trace", action="store_false")
    parser.add_argument("--max-seconds", type=float, default=900)
    args = parser.parse_args()
    if netlab.inside_netns():
        inner_main(args)
    else:
        sys.exit(netlab.run_in_netns(args.veth, args.max_seconds))


if __name__ == "__main__":
    main()
