"""Several ``netguard run`` instances sharing one estate through PostgreSQL (issue 11).

One run creates a throwaway database on the PostgreSQL at ``--pg`` (default
``postgresql://postgres@127.0.0.1:5432/postgres``, trust auth; dropped at the end), starts
``--agents`` net-snmp ``snmpd`` processes on free UDP ports of 127.0.0.1 (they serve this
host's own interfaces), and writes one config per instance: ``--targets`` private-line
targets spread over the agents, ``cluster.enabled`` with its own ``instance_id``, its own
``/metrics`` port and fault journal, MQTT off. Then, for each count in ``--instances``
(default ``1,2,3``), it starts that many ``netguard run`` processes, waits until they agree
on the members and together own every target, lets one interval pass (the first polls
spread over it), and measures ``--cycles`` cycles of ``--window`` seconds (default: the
interval, at least 10 s). Per count it reports:

- polls finished per second, summed over the instances (``netguard_polls_total``), and
  what the schedule asks for (targets / interval); skipped runs (overruns + misfires);
- the daemons' CPU (user + system from /proc, summed over the instances) per poll, and
  the agents' CPU apart, per poll;
- each instance's share of the targets, and the load average.

Each instance is scraped once per cycle (that render is in its CPU, as a Prometheus
scrape would be). The instances are stopped (SIGTERM) before the next count starts.

    .venv/bin/python bench/bench_cluster.py --targets 1000 --interval 1 --window 15
        [--cycles 3] [--instances 1,2,3] [--agents 4] [--json out.json]

(the run in bench/RESULTS.md, "Scale-out"; about 2.5 minutes).

Everything it starts is stopped by its own handle, also on Ctrl-C or failure.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import asyncpg  # type: ignore[import-untyped]
import netlab
import yaml

NETGUARD = str(Path(sys.executable).parent / "netguard")
PG_ADMIN = os.environ.get("NETGUARD_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")


def free_port(kind: int) -> int:
    with socket.socket(socket.AF_INET, kind) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _pg_execute(admin_url: str, sql: str) -> None:
    async def run() -> None:
        conn = await asyncpg.connect(admin_url)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    asyncio.run(run())


@contextlib.contextmanager
def pg_database(admin_url: str) -> Iterator[str]:
    """A throwaway database on the server of ``admin_url``; yields its URL."""
    name = f"ng_bench_{uuid.uuid4().hex[:12]}"
    _pg_execute(admin_url, f'CREATE DATABASE "{name}"')
    try:
        yield f"{admin_url.rsplit('/', 1)[0]}/{name}"
    finally:
        _pg_execute(admin_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def base_config(args: argparse.Namespace, pg_url: str, agents: list[int]) -> dict[str, Any]:
    return {
        "probes": {"engine": args.engine},
        "store": {"url": pg_url},
        "logging": {"level": "WARNING", "format": "json"},
        # First polls spread over the whole interval, as later ones are.
        "daemon": {"poll_jitter_seconds": args.interval,
                   "max_concurrent_polls": args.concurrency},
        "cluster": {"enabled": True, "heartbeat_seconds": args.heartbeat,
                    "lease_seconds": args.lease},
        "iot": {"mqtt": {"enabled": False}},
        "targets": [{"id": f"pl-{i:05d}", "kind": "private_line",
                     "address": f"127.0.0.1:{agents[i % len(agents)]}",
                     "site": f"site-{i % 50}", "profile": "private-line",
                     "interval_seconds": args.interval, "timeout_seconds": 5,
                     "snmp": {"version": "2c", "community": netlab.COMMUNITY}}
                    for i in range(args.targets)],
    }


class Instance:
    """One ``netguard run`` process with its own config, port and journal."""

    def __init__(self, tmp: Path, name: str, base: dict[str, Any]) -> None:
        self.name = name
        self.port = free_port(socket.SOCK_STREAM)
        self.config = tmp / f"{name}.yaml"
        data = {**base, "metrics": {"listen": f"127.0.0.1:{self.port}"},
                "cluster": {**base["cluster"], "instance_id": name},
                "daemon": {**base["daemon"], "fault_journal": str(tmp / f"{name}.journal")}}
        self.config.write_text(yaml.safe_dump(data))
        self.log = tmp / f"{name}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen([NETGUARD, "run", "--config", str(self.config)],
                                         stdout=log, stderr=subprocess.STDOUT)

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def metrics(self) -> str:
        if self.proc is not None and self.proc.poll() is not None:
            raise RuntimeError(f"{self.name} exited with {self.proc.returncode}; "
                               f"see {self.log}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/metrics",
                                        timeout=60) as resp:
                return str(resp.read().decode())
        except OSError:
            return ""


def sample_sum(body: str, name: str) -> float:
    pattern = re.compile(rf"^{re.escape(name)}(\{{[^}}]*\}})? (\S+)$", re.MULTILINE)
    return sum(float(m.group(2)) for m in pattern.finditer(body))


def settled(instances: list[Instance], targets: int) -> bool:
    """Every instance sees all members, and together they own every target once."""
    owned = 0.0
    for instance in instances:
        body = instance.metrics()
        if sample_sum(body, "netguard_cluster_members") != len(instances):
            return False
        owned += sample_sum(body, "netguard_cluster_owned_targets")
    return owned == targets


def wait_for(condition: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.5)
    raise RuntimeError(f"timed out waiting for {what}")


def snapshot(instances: list[Instance], agents: list[subprocess.Popen[bytes]]
             ) -> dict[str, Any]:
    """Counters now: CPU from /proc first (the scrape's own cost lands in the next one)."""
    cpu = sum(netlab.proc_cpu(i.pid) for i in instances)
    agent_cpu = sum(netlab.proc_cpu(a.pid) for a in agents)
    t = time.monotonic()
    bodies = [i.metrics() for i in instances]
    return {"t": t, "cpu": cpu, "agents": agent_cpu,
            "polls": sum(sample_sum(b, "netguard_polls_total") for b in bodies),
            "skipped": sum(sample_sum(b, "netguard_scheduler_overruns_total")
                           + sample_sum(b, "netguard_scheduler_misfires_total")
                           for b in bodies),
            "owned": [int(sample_sum(b, "netguard_cluster_owned_targets")) for b in bodies]}


def measure(args: argparse.Namespace, tmp: Path, base: dict[str, Any], count: int,
            agents: list[subprocess.Popen[bytes]]) -> dict[str, Any]:
    """Start ``count`` instances, let them settle, measure, stop them."""
    instances = [Instance(tmp, f"ng-{count}-{k}", base) for k in range(count)]
    try:
        for instance in instances:
            instance.start()
        t0 = time.monotonic()
        wait_for(lambda: settled(instances, args.targets), 120 + 30 * count,
                 f"{count} instances to split the targets")
        settle_s = time.monotonic() - t0
        time.sleep(args.interval)  # warm-up: the first polls spread over one interval
        cycles = []
        prev = snapshot(instances, agents)
        for _ in range(args.cycles):
            time.sleep(max(0.0, prev["t"] + window(args) - time.monotonic()))
            now = snapshot(instances, agents)
            cycles.append(cycle_row(prev, now))
            print(json.dumps({"instances": count, **cycles[-1]}), file=sys.stderr)
            prev = now
        return summarise(args, count, settle_s, cycles, prev)
    finally:
        netlab.stop([i.proc for i in instances if i.proc is not None])


def window(args: argparse.Namespace) -> float:
    """Seconds per measured cycle: the interval, but at least 10 s (one scrape each)."""
    return args.window or max(args.interval, 10.0)


def cycle_row(prev: dict[str, Any], now: dict[str, Any]) -> dict[str, Any]:
    seconds = now["t"] - prev["t"]
    polls = now["polls"] - prev["polls"]
    return {"seconds": round(seconds, 2), "polls": polls,
            "skipped": now["skipped"] - prev["skipped"],
            "daemon_cpu_s": round(now["cpu"] - prev["cpu"], 2),
            "agents_cpu_s": round(now["agents"] - prev["agents"], 2),
            "owned": now["owned"], "load1": netlab.loadavg()[0]}


def summarise(args: argparse.Namespace, count: int, settle_s: float,
              cycles: list[dict[str, Any]], last: dict[str, Any]) -> dict[str, Any]:
    seconds = sum(c["seconds"] for c in cycles)
    polls = sum(c["polls"] for c in cycles)
    daemon_cpu = sum(c["daemon_cpu_s"] for c in cycles)
    agents_cpu = sum(c["agents_cpu_s"] for c in cycles)
    return {
        "instances": count, "targets": args.targets, "owned": last["owned"],
        "settle_s": round(settle_s, 1),
        "scheduled_polls_per_s": round(args.targets / args.interval, 1),
        "polls_per_s": round(polls / seconds, 1), "polls": polls,
        "skipped": sum(c["skipped"] for c in cycles),
        "daemon_cpu_s": round(daemon_cpu, 2),
        "daemon_cores": round(daemon_cpu / seconds, 2),
        "daemon_cpu_ms_per_poll": round(daemon_cpu / max(polls, 1) * 1e3, 2),
        "agents_cpu_s": round(agents_cpu, 2),
        "agents_cpu_ms_per_poll": round(agents_cpu / max(polls, 1) * 1e3, 2),
        "load1": [c["load1"] for c in cycles], "loadavg_end": netlab.loadavg(),
        "cycles": cycles,
    }


def run(args: argparse.Namespace) -> dict[str, Any]:
    counts = [int(c) for c in args.instances.split(",")]
    results = []
    load_start = netlab.loadavg()
    with tempfile.TemporaryDirectory(prefix="ng-cluster-") as tmp_name, \
            pg_database(args.pg) as pg_url:
        tmp = Path(tmp_name)
        ports = [free_port(socket.SOCK_DGRAM) for _ in range(args.agents)]
        agents = []
        try:
            for k, port in enumerate(ports):
                agents.append(netlab.start_snmpd(tmp / f"agent{k}", port))
            base = base_config(args, pg_url, ports)
            Instance(tmp, "upgrade", base)  # writes a config to migrate with
            subprocess.run([NETGUARD, "db", "upgrade", "--config", str(tmp / "upgrade.yaml")],
                           check=True, stdout=subprocess.DEVNULL)
            for count in counts:
                results.append(measure(args, tmp, base, count, agents))
        finally:
            netlab.stop(agents)
    return {"command": " ".join(["bench/bench_cluster.py", *sys.argv[1:]]),
            "machine": netlab.machine(), "interval": args.interval, "window": window(args),
            "agents": args.agents, "engine": args.engine, "loadavg_start": load_start,
            "results": results}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--targets", type=int, default=900)
    parser.add_argument("--interval", type=float, default=5.0)
    parser.add_argument("--cycles", type=int, default=3)
    parser.add_argument("--window", type=float, default=0,
                        help="seconds per measured cycle (default: the interval, >= 10 s)")
    parser.add_argument("--instances", default="1,2,3")
    parser.add_argument("--agents", type=int, default=4)
    parser.add_argument("--engine", default="gufo", choices=("gufo", "pysnmp"))
    parser.add_argument("--concurrency", type=int, default=64,
                        help="daemon.max_concurrent_polls")
    parser.add_argument("--heartbeat", type=float, default=1.0)
    parser.add_argument("--lease", type=float, default=5.0)
    parser.add_argument("--pg", default=PG_ADMIN,
                        help="admin URL of the PostgreSQL server (a database is created "
                        "and dropped on it)")
    parser.add_argument("--json", help="also write the report here")
    args = parser.parse_args()
    report = run(args)
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=1))
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
