"""``netguard run`` at scale: N targets on a 60 s interval against real snmpd agents.

One run creates a network namespace with ``--veth`` veth pairs (7 interfaces with the
default 3, so each poll of the private-line profile brings about 116 values), starts
``--agents`` net-snmp ``snmpd`` processes on 127.0.1.1, 127.0.1.2, ... port 161 inside
it, writes a config with ``--targets`` private-line targets spread over the agents
(``probes.engine`` as given), and runs ``netguard run`` (through bench/stall_probe.py,
which records event-loop lateness) for ``--cycles`` poll intervals. Per interval it
reports:

- polls started and finished (``netguard_polls_total``), skipped runs (scheduler
  overruns + misfires), the daemon's CPU seconds (its process only, from /proc) and the
  agents' CPU apart, RSS (before and after the cycle's scrape, and the peak so far);
- ``/metrics``: bytes and the wall time of a whole scrape (render + transfer), gzip as
  Prometheus asks for it (``--plain``: uncompressed);
- the longest event-loop stall (timer lateness; the machine's own scheduling delay is in
  it too, so an idle loop in another process is probed beside it as the baseline, and
  the load average is printed alongside).

With ``--profile`` it also samples the daemon with py-spy for ``--profile-seconds`` in
the last interval and prints the top functions (self and inclusive).

    .venv/bin/python bench/bench_scale.py --targets 1000 [--cycles 3] [--agents 4]
        [--interval 60] [--engine gufo] [--profile] [--json out.json]

Needs root (``ip netns``); the namespace and every process in it are removed at the end,
also on Ctrl-C, failure or ``--max-seconds``.
"""

from __future__ import annotations

import argparse
import collections
import gzip
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

import netlab

METRICS_PORT = 19108
HERE = Path(__file__).resolve().parent


def write_config(path: Path, args: argparse.Namespace, tmp: Path) -> None:
    lines = [
        "probes:", f"  engine: {args.engine}",
        "store:", f"  path: {tmp / 'netguard.db'}", "  auto_upgrade: true",
        "metrics:", f"  listen: 127.0.0.1:{METRICS_PORT}",
        "logging:", "  level: WARNING", "  format: json",
        "daemon:",
        # First polls spread over the whole interval, as later ones are: a big estate
        # started at once would otherwise burst (the default spread is 2 s).
        f"  poll_jitter_seconds: {args.interval}",
        f"  max_concurrent_polls: {args.concurrency}",
        "iot:", "  mqtt:", "    enabled: false",
        "targets:",
    ]
    for i in range(args.targets):
        lines += [f"  - id: pl-{i:05d}", "    kind: private_line",
                  f"    address: 127.0.1.{i % args.agents + 1}",
                  f"    site: site-{i % 50}", "    profile: private-line",
                  f"    interval_seconds: {args.interval}", "    timeout_seconds: 5",
                  "    snmp: {version: \"2c\", community: public}"]
    path.write_text("\n".join(lines) + "\n")


GZIP = [True]  # scrape as Prometheus does (Accept-Encoding: gzip); --plain turns it off


def scrape() -> tuple[str, float]:
    """The body and the wall time to its last byte (decompressing it is not counted)."""
    started = time.perf_counter()
    request = urllib.request.Request(
        f"http://127.0.0.1:{METRICS_PORT}/metrics",
        headers={"Accept-Encoding": "gzip"} if GZIP[0] else {})
    with urllib.request.urlopen(request, timeout=60) as resp:
        raw = resp.read()
        encoded = resp.headers.get("Content-Encoding") == "gzip"
    seconds = time.perf_counter() - started
    return (gzip.decompress(raw) if encoded else raw).decode(), seconds


def sample_sum(body: str, name: str, label: str | None = None) -> float:
    total = 0.0
    pattern = re.compile(rf"^{re.escape(name)}(\{{[^}}]*\}})? (\S+)$", re.MULTILINE)
    for match in pattern.finditer(body):
        if label is None or (match.group(1) and label in match.group(1)):
            total += float(match.group(2))
    return total


def wait_ready(proc: subprocess.Popen[bytes], deadline: float) -> None:
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"netguard run exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{METRICS_PORT}/healthz",
                                        timeout=2):
                return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError("netguard run did not answer /healthz in time")


def stalls_between(path: Path, start: float, end: float) -> float:
    worst = 0.0
    if path.exists():
        for line in path.read_text().splitlines():
            t, late = line.split()
            if start <= float(t) < end:
                worst = max(worst, float(late))
    return worst


def pyspy(pid: int, seconds: float, out: Path) -> subprocess.Popen[bytes] | None:
    exe = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    if not Path(exe).exists():
        print("py-spy not installed (pip install py-spy); no profile", file=sys.stderr)
        return None
    return subprocess.Popen([exe, "record", "-p", str(pid), "-d", str(int(seconds)),
                             "-r", "50", "-f", "raw", "-o", str(out), "--nonblocking"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def top_frames(raw: Path, n: int = 20) -> dict[str, list[tuple[str, float]]]:
    self_: collections.Counter[str] = collections.Counter()
    incl: collections.Counter[str] = collections.Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        if "select (selectors.py" in stack.rsplit(";", 1)[-1]:
            continue  # the loop waiting for I/O: idle, not cost
        total += count
        frames = [re.sub(r" \((?:/[^)]*/)?(?:site-packages/)?([^)]*)\)", r" (\1)", f)
                  for f in stack.split(";")]
        self_[frames[-1]] += count
        for frame in set(frames):
            incl[frame] += count
    pct = 100.0 / max(total, 1)
    return {"self": [(f, round(c * pct, 1)) for f, c in self_.most_common(n)],
            "inclusive": [(f, round(c * pct, 1)) for f, c in incl.most_common(n)],
            "samples": [("total", total)]}


def inner_main(args: argparse.Namespace) -> None:
    GZIP[0] = not args.plain
    started: list[subprocess.Popen[Any]] = []
    cycles: list[dict[str, Any]] = []
    profile: dict[str, Any] | None = None
    with tempfile.TemporaryDirectory(prefix="ng-scale-") as tmp_name:
        tmp = Path(tmp_name)
        try:
            agents = [netlab.start_snmpd(tmp / f"agent{i}", 161, f"127.0.1.{i + 1}")
                      for i in range(args.agents)]
            started += agents
            config = tmp / "netguard.yaml"
            write_config(config, args, tmp)
            stall_file = tmp / "stalls.txt"
            env = {**os.environ, "NG_STALL_FILE": str(stall_file)}
            log = (tmp / "netguard.log").open("wb")
            t0 = time.monotonic()
            daemon = subprocess.Popen([sys.executable, str(HERE / "stall_probe.py"), "run",
                                       "--config", str(config)], env=env,
                                      stdout=log, stderr=subprocess.STDOUT)
            started.insert(0, daemon)
            idle_file = tmp / "idle-stalls.txt"
            started.append(subprocess.Popen(
                [sys.executable, str(HERE / "stall_probe.py"), "--idle"],
                env={**os.environ, "NG_STALL_FILE": str(idle_file)}))
            wait_ready(daemon, time.monotonic() + 120)
            print(f"netguard up after {time.monotonic() - t0:.1f} s, "
                  f"RSS {netlab.proc_rss(daemon.pid) / 2**20:.0f} MiB", file=sys.stderr)
            body, _ = scrape()
            prev = {"t": time.monotonic(), "cpu": netlab.proc_cpu(daemon.pid),
                    "agents": sum(netlab.proc_cpu(a.pid) for a in agents),
                    "polls": sample_sum(body, "netguard_polls_total"),
                    "overruns": sample_sum(body, "netguard_scheduler_overruns_total"),
                    "misfires": sample_sum(body, "netguard_scheduler_misfires_total")}
            spy = None
            for cycle in range(args.cycles):
                end = prev["t"] + args.interval
                if args.profile and cycle == args.cycles - 1:
                    spy = pyspy(daemon.pid, min(args.profile_seconds, args.interval - 5),
                                tmp / "pyspy.txt")
                    if spy is not None:
                        started.append(spy)
                time.sleep(max(0.0, end - time.monotonic()))
                if daemon.poll() is not None:
                    raise RuntimeError(f"netguard run exited with {daemon.returncode}")
                now = time.monotonic()
                cpu = netlab.proc_cpu(daemon.pid)
                agent_cpu = sum(netlab.proc_cpu(a.pid) for a in agents)
                rss_before = netlab.proc_rss(daemon.pid)
                body, scrape_s = scrape()
                row = {
                    "cycle": cycle + 1, "seconds": round(now - prev["t"], 1),
                    "polls": sample_sum(body, "netguard_polls_total") - prev["polls"],
                    "unreachable": sample_sum(body, "netguard_polls_total",
                                              'result="failure"'),
                    "overruns": sample_sum(body, "netguard_scheduler_overruns_total")
                    - prev["overruns"],
                    "misfires": sample_sum(body, "netguard_scheduler_misfires_total")
                    - prev["misfires"],
                    "daemon_cpu_s": round(cpu - prev["cpu"], 2),
                    "agents_cpu_s": round(agent_cpu - prev["agents"], 2),
                    "rss_mib": round(netlab.proc_rss(daemon.pid) / 2**20, 1),
                    "rss_before_scrape_mib": round(rss_before / 2**20, 1),
                    "rss_peak_mib": round(netlab.proc_rss(daemon.pid, "VmHWM") / 2**20, 1),
                    "metrics_bytes": len(body.encode()),
                    "metrics_series": sum(1 for ln in body.splitlines()
                                          if ln and not ln.startswith("#")),
                    "scrape_s": round(scrape_s, 3),
                    "max_stall_ms": round(stalls_between(stall_file, prev["t"], now) * 1e3,
                                          1),
                    "idle_loop_max_stall_ms": round(
                        stalls_between(idle_file, prev["t"], now) * 1e3, 1),
                    "load1": netlab.loadavg()[0],
                }
                row["daemon_cpu_ms_per_poll"] = round(
                    row["daemon_cpu_s"] / max(row["polls"], 1) * 1e3, 2)
                row["agents_cpu_ms_per_poll"] = round(
                    row["agents_cpu_s"] / max(row["polls"], 1) * 1e3, 2)
                cycles.append(row)
                print(json.dumps(row), file=sys.stderr)
                prev = {"t": now, "cpu": cpu, "agents": agent_cpu,
                        "polls": sample_sum(body, "netguard_polls_total"),
                        "overruns": sample_sum(body, "netguard_scheduler_overruns_total"),
                        "misfires": sample_sum(body, "netguard_scheduler_misfires_total")}
            if spy is not None:
                spy.wait(timeout=120)
                if (tmp / "pyspy.txt").exists():
                    profile = top_frames(tmp / "pyspy.txt")
        finally:
            netlab.stop(started)
    report = {"command": " ".join(["bench/bench_scale.py", *sys.argv[1:]]),
              "machine": netlab.machine(), "targets": args.targets, "agents": args.agents,
              "engine": args.engine, "interval": args.interval, "cycles": cycles,
              "profile": profile}
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=1))
    print(json.dumps(report, indent=1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--targets", type=int, default=1000)
    parser.add_argument("--agents", type=int, default=4)
    parser.add_argument("--cycles", type=int, default=3)
    parser.add_argument("--interval", type=float, default=60.0)
    parser.add_argument("--engine", default="gufo", choices=("gufo", "pysnmp"))
    parser.add_argument("--concurrency", type=int, default=64,
                        help="daemon.max_concurrent_polls")
    parser.add_argument("--veth", type=int, default=3)
    parser.add_argument("--profile", action="store_true", help="py-spy the last cycle")
    parser.add_argument("--profile-seconds", type=float, default=30)
    parser.add_argument("--json", help="also write the report here")
    parser.add_argument("--plain", action="store_true",
                        help="scrape without Accept-Encoding: gzip")
    parser.add_argument("--max-seconds", type=float, default=0,
                        help="hard limit (default: cycles x interval + 5 min)")
    args = parser.parse_args()
    if netlab.inside_netns():
        inner_main(args)
    else:
        limit = args.max_seconds or args.cycles * args.interval + 300
        sys.exit(netlab.run_in_netns(args.veth, limit))


if __name__ == "__main__":
    main()
