"""How quickly `netguard demo` shows the mission, and what it costs.

Runs `netguard demo --duration D` once as a subprocess and measures, from launch:
- when /metrics first answers (start-up: agents, broker, sink, store, daemon);
- when the first ticket, the root ticket with its children, the first resolved ticket,
  and the first alert at the webhook sink appear;
- the CPU seconds and peak RSS of the demo and everything it started (getrusage of the
  waited-for children).

Usage: .venv/bin/python bench/bench_demo.py [--duration 60]
"""

from __future__ import annotations

import argparse
import resource
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

NETGUARD = Path(sys.executable).parent / "netguard"


def _query(db: Path, sql: str) -> int:
    if not db.exists():
        return 0
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=2) as conn:
            return int(conn.execute(sql).fetchone()[0])
    except sqlite3.Error:
        return 0


def _metrics_up(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=1) as resp:
            return resp.status == 200
    except OSError:
        return False


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--duration", type=float, default=60.0)
    parser.add_argument("--metrics-port", type=int, default=19180)
    args = parser.parse_args()
    directory = Path(tempfile.mkdtemp(prefix="ng-bench-demo-"))
    db = directory / "netguard.db"
    sink = directory / "alerts.jsonl"
    checks = {
        "/metrics answers": lambda: _metrics_up(args.metrics_port),
        "first ticket": lambda: _query(db, "SELECT COUNT(*) FROM ticket") > 0,
        "first alert at the sink": lambda: sink.exists() and sink.stat().st_size > 0,
        "root ticket with 2 children": lambda: _query(
            db, "SELECT COUNT(*) FROM ticket_child WHERE upstream_target='pl-east-uplink'") >= 2,
        "first ticket resolved": lambda: _query(
            db, "SELECT COUNT(*) FROM ticket WHERE state='resolved'") > 0,
        "silent sensor alert at the sink": lambda: sink.exists()
        and "door-old-town-01" in sink.read_text(),
    }
    seen: dict[str, float] = {}
    start = time.monotonic()
    proc = subprocess.Popen([str(NETGUARD), "demo", "--duration", str(args.duration),
                             "--dir", str(directory), "--metrics-port", str(args.metrics_port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    while proc.poll() is None:
        for name, check in checks.items():
            if name not in seen and check():
                seen[name] = time.monotonic() - start
        time.sleep(0.1)
    total = time.monotonic() - start
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    print(f"netguard demo --duration {args.duration:.0f}: exit {proc.returncode}, "
          f"{total:.1f} s wall")
    for name in checks:
        at = seen.get(name)
        print(f"  {name:<32} {'never' if at is None else f'{at:5.1f} s'}")
    print(f"  CPU (demo + children)            {usage.ru_utime + usage.ru_stime:5.1f} s "
          f"({(usage.ru_utime + usage.ru_stime) / total:.0%} of one core)")
    print(f"  peak RSS of one process          {usage.ru_maxrss / 1024:5.0f} MiB")
    print(f"  tickets {_query(db, 'SELECT COUNT(*) FROM ticket')}, door events "
          f"{_query(db, 'SELECT COUNT(*) FROM iot_event')}")


if __name__ == "__main__":
    main()
