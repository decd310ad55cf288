"""Metrics benchmark (issue 5, acceptance 4): ``/metrics`` with 10,000 targets.

Builds a state snapshot of N simulated targets of every kind (probe ``TargetStatus``
objects built directly, no SNMP), then measures

- render time of the exposition: cold (first scrape), warm (no target changed since the
  last scrape) and typical (a quarter of the targets re-polled since the last scrape, as
  with a 15 s scrape and a 60 s poll interval); prometheus_client's ``generate_latest``
  over the same snapshot for reference;
- a real scrape of the running HTTP endpoint by an external client (``curl``), while a
  ticker task on the event loop records how late it wakes up: the longest lag is the
  loop's longest stall during the scrape. The same ticker without a scrape gives the
  baseline.

Goals: render <= 0.5 s, stall <= 20 ms.

Each scrape also reports the process's CPU seconds while it ran (render, gzip, HTTP writes).
``--detail summary|interfaces`` renders at that ``metrics.detail.level`` instead of full.

``--estate private-line`` builds bench_scale.py's targets instead (7 interfaces, 73 series
each); ``--gzip-only`` measures only whole gzip scrapes in-process, with the RSS after each.

Usage: ``.venv/bin/python bench/bench_metrics.py [--targets 10000] [--scrapes 5] [--gzip]
[--detail LEVEL] [--estate mixed|private-line] [--gzip-only] [--no-http]``
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import dataclasses
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path

from prometheus_client import CollectorRegistry, generate_latest

from netguard.daemon.config import MetricsConfig
from netguard.daemon.http import MetricsServer
from netguard.metrics import MetricsSnapshot, Renderer, SnapshotCollector
from netguard.probes.state import InterfaceReading, TargetStatus

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.daemon.fakes import estate  # after the sys.path line: needs the repo root


def private_lines(n: int, interfaces: int = 7) -> MetricsSnapshot:
    """``n`` private-line targets with ``interfaces`` interfaces each and realistic values.

    The shape of bench_scale.py's estate (73 series per target at 7 interfaces): counters
    of many digits and rates with fractions, as a real poll leaves them, so that number
    formatting costs what it costs in the daemon.
    """
    targets = {}
    for i in range(n):
        itfs = tuple(InterfaceReading(
            index=k + 1, name=f"veth{k}" if k else "lo", admin_status=1, oper_status=1,
            in_octets=123_456_789_012 + 7919 * i + k, out_octets=98_765_432_109 + 104_729 * i,
            in_errors=i % 7, out_errors=0, in_discards=i % 3, out_discards=k,
            speed_bps=10_000_000_000, in_bps=1234.5678 * (i + 1), out_bps=987.654 * (k + 1),
            utilisation=1.234e-6 * (i % 97 + 1)) for k in range(interfaces))
        target = f"pl-{i:05d}"
        targets[target] = TargetStatus(
            target=target, kind="private_line", site=f"site-{i % 50}", reachable=True,
            state="up", poll_duration_seconds=0.0123 + i * 1e-7,
            last_success_at=datetime(2026, 12, 3, 16, 40, i % 60, 1000 * (i % 997), UTC),
            interfaces=itfs)
    return MetricsSnapshot(targets=targets)


def _timed(fn: object, runs: int) -> tuple[list[float], list[float]]:
    """Wall and CPU seconds of each run (CPU shows the cost when other jobs share the cores)."""
    wall, cpu = [], []
    for _ in range(runs):
        start, start_cpu = time.perf_counter(), time.process_time()
        fn()  # type: ignore[operator]
        wall.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
    return wall, cpu


def _repolled(snapshot: MetricsSnapshot, share: float) -> MetricsSnapshot:
    targets = dict(snapshot.targets)
    step = max(1, round(1 / share))
    for key in list(targets)[::step]:
        targets[key] = dataclasses.replace(targets[key])  # type: ignore[type-var]
    return dataclasses.replace(snapshot, targets=targets)


def bench_render(snapshot: MetricsSnapshot, runs: int, config: MetricsConfig
                 ) -> dict[str, object]:
    # Only a --detail run touches config.detail, so the script also runs on older trees.
    make = (lambda: Renderer(None, config.detail.export())) if "detail" in config.model_fields_set \
        else Renderer
    cold, cold_cpu = _timed(lambda: make().render(snapshot), runs)
    renderer = make()
    body = renderer.render(snapshot)
    warm, warm_cpu = _timed(lambda: renderer.render(snapshot), runs)
    typical, typical_cpu = [], []
    for _ in range(runs):
        changed = _repolled(snapshot, 0.25)
        wall, cpu = _timed(lambda c=changed: renderer.render(c), 1)  # type: ignore[misc]
        typical += wall
        typical_cpu += cpu
    registry = CollectorRegistry()
    SnapshotCollector(lambda: snapshot, registry)
    reference, reference_cpu = _timed(lambda: generate_latest(registry), 1)
    return {
        "series": body.count(b"\n") - 2 * body.count(b"# TYPE"),
        "bytes": len(body),
        "cold_s": statistics.median(cold), "cold_cpu_s": statistics.median(cold_cpu),
        "typical_s": statistics.median(typical),
        "typical_cpu_s": statistics.median(typical_cpu),
        "warm_s": statistics.median(warm), "warm_cpu_s": statistics.median(warm_cpu),
        "generate_latest_s": reference[0], "generate_latest_cpu_s": reference_cpu[0],
    }


def bench_gzip(snapshot: MetricsSnapshot, runs: int, config: MetricsConfig
               ) -> dict[str, object]:
    """CPU seconds of whole gzip scrapes in-process (render and compress, as the render
    thread does them), and the process's RSS after each, scrapes in a worker thread.

    ``cold``: a new renderer; ``typical``: a quarter of the targets re-polled since the
    last scrape; ``repolled``: every target (a scrape interval as long as the poll's).
    """
    from netguard.daemon.http import gzip_pieces
    from netguard.metrics import runtime_registry

    detail = config.detail.export() if "detail" in config.model_fields_set else None
    make = (lambda: Renderer(runtime_registry(), detail)) if detail is not None \
        else (lambda: Renderer(runtime_registry()))
    pool = concurrent.futures.ThreadPoolExecutor(1)

    def scrape(renderer: Renderer, snap: MetricsSnapshot) -> tuple[float, int]:
        def work() -> tuple[float, int]:
            cpu = time.process_time()
            size = sum(len(piece) for piece in gzip_pieces(renderer, snap))
            return time.process_time() - cpu, size
        return pool.submit(work).result()

    cold = [scrape(make(), snapshot)[0] for _ in range(runs)]
    renderer = make()
    size = scrape(renderer, snapshot)[1]
    typical, repolled, rss = [], [], []
    current = snapshot
    for _ in range(runs):
        current = _repolled(current, 0.25)
        typical.append(scrape(renderer, current)[0])
        rss.append(_rss_mib())
    for _ in range(runs):
        current = _repolled(current, 1.0)
        repolled.append(scrape(renderer, current)[0])
        rss.append(_rss_mib())
    pool.shutdown()
    return {"gzip_bytes": size, "cold_cpu_s": cold, "typical_cpu_s": typical,
            "repolled_cpu_s": repolled, "rss_mib_after_each": rss,
            "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)}


def _rss_mib() -> int:
    with open("/proc/self/statm") as statm:
        return round(int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20)


async def _ticker(stop: asyncio.Event, lags: list[float]) -> None:
    loop = asyncio.get_running_loop()
    period = 0.001
    while not stop.is_set():
        before = loop.time()
        await asyncio.sleep(period)
        lags.append(loop.time() - before - period)


async def _scrape(url: str, gzip: bool) -> tuple[float, int]:
    proc = await asyncio.create_subprocess_exec(
        "curl", "-s", *(["-H", "Accept-Encoding: gzip"] if gzip else []), "-o", "/dev/null",
        "-w", "%{time_total} %{size_download}", url, stdout=subprocess.PIPE)
    out, _ = await proc.communicate()
    seconds, size = out.decode().split()
    return float(seconds), int(size)


async def bench_stall(snapshot: MetricsSnapshot, scrapes: int, gzip: bool,
                      config: MetricsConfig) -> dict[str, object]:
    current = [snapshot]
    async with MetricsServer(config, lambda: current[0],
                             _ready) as server:
        stop = asyncio.Event()
        idle: list[float] = []
        task = asyncio.create_task(_ticker(stop, idle))
        await asyncio.sleep(2.0)
        stop.set()
        await task

        results = []
        for i in range(scrapes):
            # Every scrape after the first sees a quarter of the targets re-polled.
            if i:
                current[0] = _repolled(current[0], 0.25)
            lags: list[float] = []
            stop = asyncio.Event()
            task = asyncio.create_task(_ticker(stop, lags))
            cpu = time.process_time()
            seconds, size = await _scrape(f"{server.url}/metrics", gzip)
            cpu = time.process_time() - cpu
            stop.set()
            await task
            results.append({"scrape_s": seconds, "scrape_cpu_s": cpu, "bytes": size,
                            "max_stall_ms": max(lags) * 1e3,
                            "p99_stall_ms": sorted(lags)[int(len(lags) * 0.99)] * 1e3,
                            "ticks": len(lags)})
    return {"idle_max_stall_ms": max(idle) * 1e3, "scrapes": results}


async def _ready() -> dict[str, bool]:
    return {"bench": True}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--targets", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--scrapes", type=int, default=5)
    parser.add_argument("--gzip", action="store_true",
                        help="scrape with Accept-Encoding: gzip, as Prometheus does")
    parser.add_argument("--switch-interval", type=float, default=None,
                        help="sys.setswitchinterval() for the run (the daemon's own setting "
                             "is the default)")
    parser.add_argument("--detail", choices=("summary", "interfaces", "full"), default=None,
                        help="metrics.detail.level (default: not set, i.e. full)")
    parser.add_argument("--estate", choices=("mixed", "private-line"), default="mixed",
                        help="every kind with 1-2 interfaces (mixed), or bench_scale.py's "
                             "private-line targets with 7 interfaces each")
    parser.add_argument("--no-http", dest="http", action="store_false",
                        help="render in-process only, no HTTP scrapes")
    parser.add_argument("--gzip-only", action="store_true",
                        help="only in-process gzip scrapes in a worker thread, with RSS "
                             "(nothing else runs first, so the RSS is theirs)")
    args = parser.parse_args()
    config = MetricsConfig(listen="127.0.0.1:0") if args.detail is None \
        else MetricsConfig.model_validate({"listen": "127.0.0.1:0",
                                           "detail": {"level": args.detail}})
    if args.switch_interval is not None:
        sys.setswitchinterval(args.switch_interval)
    snapshot = estate(args.targets) if args.estate == "mixed" else private_lines(args.targets)
    print(json.dumps({
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count(),
                    "platform": platform.platform(),
                    "prometheus_client": version("prometheus-client"),
                    "aiohttp": version("aiohttp"),
                    "load_avg": os.getloadavg()},
        "targets": args.targets,
        "switch_interval_s": sys.getswitchinterval(),
        "detail": args.detail or "full",
        "estate": args.estate,
        "rss_mib_snapshot": _rss_mib(),
        "gzip_scrapes": bench_gzip(snapshot, args.runs, config) if args.gzip_only else None,
        "render": None if args.gzip_only else bench_render(snapshot, args.runs, config),
        "http": asyncio.run(bench_stall(snapshot, args.scrapes, args.gzip, config))
        if args.http and not args.gzip_only else None,
    }, indent=2))


if __name__ == "__main__":
    main()
