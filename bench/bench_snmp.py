"""SNMP polling benchmark: netguard's ProbeService vs a bare pysnmp walk of the same agents.

Starts several snmpsim processes serving simulated targets of every kind, then in the same
run alternates rounds of

- ``netguard``: ``ProbeService.poll_all()`` (GET + multi-column GETBULK, decode, counter
  maths, assessment, status snapshot);
- ``bare``: the same GET and the same multi-column GETBULK requests issued with raw pysnmp
  (one engine, prebuilt ObjectTypes, ``lookupMib=False``), values kept as pysnmp objects;
- ``bulk_walk_cmd`` (optional, ``--naive``): pysnmp's own ``bulk_walk_cmd``, one walk per
  column, as most scripts do it.

It reports varbinds/s and CPU-seconds of this process per 1,000 varbinds
(``time.process_time``). Agents run in other processes, so their CPU is not counted.

Usage: ``.venv/bin/python bench/bench_snmp.py [--targets 200] [--sims 4] [--rounds 3]``
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from importlib.metadata import version
from pathlib import Path
from typing import Any

from netguard.config import settings_from_data
from netguard.probes.config import LINK_KINDS, TargetConfig
from netguard.probes.profiles import default_library
from netguard.probes.service import ProbeService
from netguard.sim import SimFleet, SnmpSim, build_agent


def build_fleet(n_targets: int, n_sims: int, directory: Path) -> tuple[SimFleet, list[Any]]:
    per_sim: list[list[Any]] = [[] for _ in range(n_sims)]
    for i in range(n_targets):
        kind = LINK_KINDS[i % len(LINK_KINDS)]
        per_sim[i % n_sims].append(build_agent(f"{kind}-{i:04d}", kind, interfaces=4))
    sims = [SnmpSim(agents, directory / f"sim{j}") for j, agents in enumerate(per_sim) if agents]
    raw = [sim.target(a.name, timeout_seconds=5.0, retries=1) for sim in sims
           for a in sim.agents.values()]
    return SimFleet(sims), raw


async def measure(name: str, polls: int,
                  body: Callable[[], Awaitable[tuple[int, int]]]) -> dict[str, Any]:
    cpu0, wall0 = time.process_time(), time.perf_counter()
    varbinds, values = await body()
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    return {"mode": name, "varbinds": varbinds, "values": values, "wall_s": wall, "cpu_s": cpu,
            "varbinds_per_s": varbinds / wall, "cpu_s_per_1000_varbinds": cpu / varbinds * 1000,
            "cpu_ms_per_target_poll": cpu / polls * 1000}


class Bare:
    """The same requests as netguard makes, with raw pysnmp and nothing else."""

    def __init__(self, targets: list[TargetConfig], concurrency: int) -> None:
        from pysnmp.hlapi.v3arch import asyncio as hl

        self.hl = hl
        self.engine = hl.SnmpEngine()
        self.targets = targets
        self.sem = asyncio.Semaphore(concurrency)
        lib = default_library()
        self.plans: dict[str, Any] = {}
        for t in targets:
            profile = lib.for_target(t)
            assert t.snmp.community is not None
            self.plans[t.id] = {
                "auth": hl.CommunityData(t.snmp.community.get_secret_value()),
                "scalars": [hl.ObjectType(hl.ObjectIdentity(m.oid)) for m in profile.scalars],
                "columns": [(m.oid_tuple, m.oid) for m in profile.columns],
                "obj": {},
                "udp": None,
                "rows": None,
            }

    def close(self) -> None:
        self.engine.close_dispatcher()

    def _obj(self, plan: dict[str, Any], oid: str) -> Any:
        cache = plan["obj"]
        if oid not in cache:
            cache[oid] = self.hl.ObjectType(self.hl.ObjectIdentity(oid))
        return cache[oid]

    async def poll(self, t: TargetConfig) -> tuple[int, int]:
        hl, plan = self.hl, self.plans[t.id]
        async with self.sem:
            if plan["udp"] is None:
                plan["udp"] = await hl.UdpTransportTarget.create((t.host, t.port), timeout=5,
                                                                 retries=1)
            ctx = hl.ContextData()
            err, _, _, vbs = await hl.get_cmd(self.engine, plan["auth"], plan["udp"], ctx,
                                              *plan["scalars"], lookupMib=False)
            assert not err, err
            count = kept = len(vbs)
            cursor = {prefix: prefix for prefix, _ in plan["columns"]}
            rows = dict.fromkeys(cursor, 0)
            active = [prefix for prefix, _ in plan["columns"]]
            # Same request plan as netguard: size the first GETBULK by last walk's rows.
            reps = t.snmp.max_repetitions
            if plan["rows"] is not None:
                reps = max(1, min(reps, plan["rows"] + 1))
            while active:
                req = [self._obj(plan, ".".join(map(str, cursor[p]))) for p in active]
                err, status, _, vbs = await hl.bulk_cmd(self.engine, plan["auth"], plan["udp"],
                                                        ctx, 0, reps, *req, lookupMib=False)
                reps = t.snmp.max_repetitions
                if err or int(status):
                    raise RuntimeError(f"bare walk of {t.id} failed: {err or status}")
                count += len(vbs)
                width, done = len(active), set()
                for pos, vb in enumerate(vbs):
                    prefix = active[pos % width]
                    if prefix in done:
                        continue
                    oid = tuple(vb[0])
                    if oid[:len(prefix)] != prefix or oid <= cursor[prefix]:
                        done.add(prefix)
                    else:
                        cursor[prefix] = oid
                        rows[prefix] += 1
                        kept += 1
                active = [p for p in active if p not in done]
            plan["rows"] = max(rows.values(), default=0)
            return count, kept

    async def poll_all(self) -> tuple[int, int]:
        counts = await asyncio.gather(*(self.poll(t) for t in self.targets))
        return sum(c for c, _ in counts), sum(k for _, k in counts)

    async def naive(self, t: TargetConfig) -> tuple[int, int]:
        hl, plan = self.hl, self.plans[t.id]
        count = kept = 0
        async with self.sem:
            for _, oid in plan["columns"]:
                async for err, status, _, vbs in hl.bulk_walk_cmd(
                        self.engine, plan["auth"], plan["udp"], hl.ContextData(), 0,
                        t.snmp.max_repetitions, hl.ObjectType(hl.ObjectIdentity(oid)),
                        lookupMib=False, lexicographicMode=False):
                    if err or int(status):
                        break
                    count += len(vbs)
                    kept += len(vbs)
        return count, kept

    async def naive_all(self) -> tuple[int, int]:
        counts = await asyncio.gather(*(self.naive(t) for t in self.targets))
        return sum(c for c, _ in counts), sum(k for _, k in counts)


async def run(args: argparse.Namespace, raw: list[Any]) -> list[dict[str, Any]]:
    configs = settings_from_data({"targets": raw}).targets
    results: list[dict[str, Any]] = []
    n = len(configs)
    bare = Bare(configs, args.concurrency)
    try:
        async with ProbeService(configs, max_concurrency=args.concurrency) as probes:
            await probes.poll_all()  # warm-up: sessions, transports, first samples
            await bare.poll_all()

            async def netguard_round() -> tuple[int, int]:
                _, vb0, kept0 = probes.wire_counts()
                outcomes = await probes.poll_all()
                bad = [o.status.target for o in outcomes if not o.status.reachable]
                assert not bad, f"unreachable during bench: {bad[:5]}"
                _, vb1, kept1 = probes.wire_counts()
                return vb1 - vb0, kept1 - kept0

            for r in range(args.rounds):
                results.append(await measure("netguard", n, netguard_round))
                results.append(await measure("bare", n, bare.poll_all))
                if args.naive:
                    results.append(await measure("bulk_walk_cmd", n, bare.naive_all))
                print(f"round {r + 1}/{args.rounds} done", file=sys.stderr)
    finally:
        bare.close()
    return results


def summarise(results: list[dict[str, Any]]) -> dict[str, dict[str, float]]:
    out: dict[str, dict[str, float]] = {}
    for mode in dict.fromkeys(str(r["mode"]) for r in results):
        rows = [r for r in results if r["mode"] == mode]
        out[mode] = {
            "varbinds_per_round": statistics.median(r["varbinds"] for r in rows),
            "values_per_round": statistics.median(r["values"] for r in rows),
            "cpu_ms_per_target_poll": statistics.median(r["cpu_ms_per_target_poll"]
                                                        for r in rows),
            "varbinds_per_s": statistics.median(r["varbinds_per_s"] for r in rows),
            "cpu_s_per_1000_varbinds": statistics.median(r["cpu_s_per_1000_varbinds"]
                                                         for r in rows),
        }
    if "bare" in out:
        base = out["bare"]["cpu_s_per_1000_varbinds"]
        for row in out.values():
            row["cpu_overhead_vs_bare"] = row["cpu_s_per_1000_varbinds"] / base - 1
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--targets", type=int, default=200)
    parser.add_argument("--sims", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--naive", action="store_true", help="also time bulk_walk_cmd")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="ng-bench-") as tmp:
        fleet, raw = build_fleet(args.targets, args.sims, Path(tmp))
        with fleet:
            results = asyncio.run(run(args, raw))
    report = {
        "command": " ".join(sys.argv),
        "machine": f"{platform.machine()} {platform.processor() or ''} "
                   f"python {platform.python_version()}",
        "versions": {p: version(p) for p in ("pysnmp", "snmpsim", "pyasn1")},
        "targets": args.targets, "snmpsim_processes": args.sims, "rounds": args.rounds,
        "concurrency": args.concurrency,
        "summary": summarise(results),
        "rounds_detail": results,
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
