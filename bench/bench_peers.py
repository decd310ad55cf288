"""netguard against its peers: CPU per value, polling the same OIDs from one snmpd.

One run creates a network namespace with ``--veth`` veth pairs (2 interfaces each, plus
``lo``), starts one net-snmp ``snmpd`` in it, and polls netguard's private-line profile
(4 scalars, 17 columns) through each poller in turn, in rounds, so every poller sees the
same machine load:

- ``snmp_exporter``: Debian's prometheus-snmp-exporter, with a module written here for the
  same OIDs (its CPU is read from /proc while it is scraped; the scraper is not counted);
- ``snmpbulkwalk``: net-snmp's tools, one ``snmpget`` and one ``snmpbulkwalk`` per column
  per poll (the CPU of those child processes);
- ``pysnmp``: bare pysnmp, one multi-column GETBULK walk (as netguard's pysnmp engine);
- ``gufo``: bare gufo-snmp, one GETBULK walk per column;
- ``netguard-gufo`` and ``netguard-pysnmp``: ``ProbeService.poll`` (transport, decode,
  counter maths, assessment, status) on each engine.

Each Python poller runs in its own process, whose CPU alone is measured after a warm-up
poll. Reported: CPU seconds per 1,000 values and the ratio to snmp_exporter, at v2c and
v3 (authPriv SHA/AES), at concurrency 1 and 8 (that many agents' worth of sessions polling
at once: the same agent under several target ids).

    .venv/bin/python bench/bench_peers.py [--veth 30] [--seconds 4] [--rounds 2]
        [--pollers snmp_exporter,gufo,...] [--json out.json]

Needs root (``ip netns``); the namespace and every process in it are removed at the end,
also on Ctrl-C or failure.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import netlab

PORT = 16161
EXPORTER_PORT = 19116
POLLERS = ("snmp_exporter", "snmpbulkwalk", "pysnmp", "gufo", "netguard-gufo",
           "netguard-pysnmp")
REPS = 25  # max-repetitions for every poller (snmp_exporter's and netguard's default)


def profile_oids() -> tuple[list[str], list[str], dict[str, str]]:
    """The private-line profile's scalar OIDs (with .0), column OIDs, and text OIDs."""
    from netguard.probes.profiles import default_library

    profile = default_library().resolve("private-line")
    scalars = [m.oid for m in profile.scalars]
    columns = [m.oid for m in profile.columns]
    kinds = {m.oid: "text" if m.text else "number" for m in (*profile.scalars, *profile.columns)}
    return scalars, columns, kinds


# --------------------------------------------------------------------------- workers


async def _measure(poll_round: Any, seconds: float) -> dict[str, Any]:
    """Warm up once, then poll rounds for ``seconds``; this process's CPU only."""
    await poll_round()
    values = polls = 0
    cpu0, wall0 = time.process_time(), time.perf_counter()
    while time.perf_counter() - wall0 < seconds or polls == 0:
        v, p = await poll_round()
        values += v
        polls += p
    return {"values": values, "polls": polls, "cpu_s": time.process_time() - cpu0,
            "wall_s": time.perf_counter() - wall0}


async def worker_gufo(version: str, conc: int, seconds: float) -> dict[str, Any]:
    from gufo.snmp import Aes128Key, Sha1Key, User
    from gufo.snmp.aio.client import SnmpSession

    scalars, columns, _ = profile_oids()
    sessions = []
    for _ in range(conc):
        if version == "v3":
            user = User(netlab.V3_USER, auth_key=Sha1Key(netlab.V3_AUTH.encode()),
                        priv_key=Aes128Key(netlab.V3_PRIV.encode()))
            s = SnmpSession("127.0.0.1", PORT, user=user, timeout=5, max_repetitions=REPS)
            await s.refresh()
        else:
            s = SnmpSession("127.0.0.1", PORT, community=netlab.COMMUNITY, timeout=5,
                            max_repetitions=REPS)
        sessions.append(s)

    async def one(s: Any) -> int:
        n = len(await s.get_many(scalars))
        for col in columns:
            async for _ in s.getbulk(col, max_repetitions=REPS):
                n += 1
        return n

    async def poll_round() -> tuple[int, int]:
        counts = await asyncio.gather(*(one(s) for s in sessions))
        return sum(counts), len(counts)

    return await _measure(poll_round, seconds)


async def worker_pysnmp(version: str, conc: int, seconds: float) -> dict[str, Any]:
    from pysnmp.hlapi.v3arch import asyncio as hl

    scalars, columns, _ = profile_oids()
    engine = hl.SnmpEngine()
    if version == "v3":
        auth = hl.UsmUserData(netlab.V3_USER, netlab.V3_AUTH, netlab.V3_PRIV,
                              authProtocol=hl.USM_AUTH_HMAC96_SHA,
                              privProtocol=hl.USM_PRIV_CFB128_AES)
    else:
        auth = hl.CommunityData(netlab.COMMUNITY)
    ctx = hl.ContextData()
    get_objs = [hl.ObjectType(hl.ObjectIdentity(o)) for o in scalars]
    prefixes = [tuple(int(x) for x in c.split(".")) for c in columns]
    udps = [await hl.UdpTransportTarget.create(("127.0.0.1", PORT), timeout=5, retries=1)
            for _ in range(conc)]

    async def one(udp: Any) -> int:
        err, _, _, vbs = await hl.get_cmd(engine, auth, udp, ctx, *get_objs, lookupMib=False)
        assert not err, err
        kept = len(vbs)
        cursor = {p: p for p in prefixes}
        active = list(prefixes)
        while active:
            req = [hl.ObjectType(hl.ObjectIdentity(".".join(map(str, cursor[p]))))
                   for p in active]
            err, status, _, vbs = await hl.bulk_cmd(engine, auth, udp, ctx, 0, REPS, *req,
                                                    lookupMib=False)
            if err or int(status):
                raise RuntimeError(f"GETBULK failed: {err or status}")
            width, done = len(active), set()
            for pos, vb in enumerate(vbs):
                p = active[pos % width]
                if p in done:
                    continue
                oid = tuple(vb[0])
                if oid[:len(p)] != p or oid <= cursor[p]:
                    done.add(p)
                else:
                    cursor[p] = oid
                    kept += 1
            active = [p for p in active if p not in done]
        return kept

    async def poll_round() -> tuple[int, int]:
        counts = await asyncio.gather(*(one(u) for u in udps))
        return sum(counts), len(counts)

    try:
        return await _measure(poll_round, seconds)
    finally:
        engine.close_dispatcher()


async def worker_netguard(engine: str, version: str, conc: int,
                          seconds: float) -> dict[str, Any]:
    from netguard.config import settings_from_data
    from netguard.probes.config import ProbesConfig
    from netguard.probes.service import ProbeService

    snmp: dict[str, Any] = {"version": "2c", "community": netlab.COMMUNITY}
    if version == "v3":
        snmp = {"version": "3", "user": netlab.V3_USER, "auth_protocol": "sha",
                "auth_key": netlab.V3_AUTH, "priv_protocol": "aes128",
                "priv_key": netlab.V3_PRIV}
    raw = [{"id": f"pl-{i}", "kind": "private_line", "address": f"127.0.0.1:{PORT}",
            "profile": "private-line", "snmp": snmp, "timeout_seconds": 5}
           for i in range(conc)]
    targets = settings_from_data({"targets": raw}).targets
    async with ProbeService(targets, max_concurrency=conc,
                            probes=ProbesConfig(engine=engine)) as probes:  # type: ignore[arg-type]

        async def poll_round() -> tuple[int, int]:
            before = probes.wire_counts()[2]
            outcomes = await asyncio.gather(*(probes.poll(t.id) for t in targets))
            bad = [o.status.reasons for o in outcomes if not o.status.reachable]
            assert not bad, bad
            return probes.wire_counts()[2] - before, len(outcomes)

        return await _measure(poll_round, seconds)


def worker_snmpbulkwalk(version: str, conc: int, seconds: float) -> dict[str, Any]:
    scalars, columns, _ = profile_oids()
    if version == "v3":
        cred = ["-v3", "-l", "authPriv", "-u", netlab.V3_USER, "-a", "SHA", "-A",
                netlab.V3_AUTH, "-x", "AES", "-X", netlab.V3_PRIV]
    else:
        cred = ["-v2c", "-c", netlab.COMMUNITY]
    common = [*cred, "-m", "", "-On", "-Oq", "-t", "5"]
    target = f"127.0.0.1:{PORT}"
    env = {**os.environ, "MIBS": ""}

    def run(argv: list[str]) -> int:
        out = subprocess.run(argv, capture_output=True, text=True, env=env, check=True)
        return len(out.stdout.splitlines())

    def one(_: int) -> int:
        n = run(["snmpget", *common, target, *scalars])
        for col in columns:
            n += run(["snmpbulkwalk", *common, f"-Cr{REPS}", target, col])
        return n

    with ThreadPoolExecutor(conc) as pool:
        list(pool.map(one, range(conc)))  # warm-up
        values = polls = 0
        ru0, wall0 = resource.getrusage(resource.RUSAGE_CHILDREN), time.perf_counter()
        while time.perf_counter() - wall0 < seconds or polls == 0:
            counts = list(pool.map(one, range(conc)))
            values += sum(counts)
            polls += len(counts)
        ru1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (ru1.ru_utime - ru0.ru_utime) + (ru1.ru_stime - ru0.ru_stime)
    return {"values": values, "polls": polls, "cpu_s": cpu,
            "wall_s": time.perf_counter() - wall0}


def worker_main(args: argparse.Namespace) -> None:
    name, version, conc, seconds = args.worker, args.version, args.concurrency, args.seconds
    if name == "gufo":
        result = asyncio.run(worker_gufo(version, conc, seconds))
    elif name == "pysnmp":
        result = asyncio.run(worker_pysnmp(version, conc, seconds))
    elif name.startswith("netguard-"):
        result = asyncio.run(worker_netguard(name.removeprefix("netguard-"), version, conc,
                                             seconds))
    elif name == "snmpbulkwalk":
        result = worker_snmpbulkwalk(version, conc, seconds)
    else:
        raise SystemExit(f"unknown worker {name}")
    print(json.dumps(result))


# --------------------------------------------------------------------------- snmp_exporter


def exporter_config() -> str:
    """An snmp_exporter 0.21 module per SNMP version for the private-line OIDs."""
    scalars, columns, kinds = profile_oids()
    metrics = []
    for oid in scalars:
        base = oid.removesuffix(".0")
        metrics.append({"name": f"s_{base.replace('.', '_')}", "oid": base,
                        "type": "DisplayString" if kinds[oid] == "text" else "gauge"})
    for oid in columns:
        metrics.append({"name": f"c_{oid.replace('.', '_')}", "oid": oid,
                        "type": "DisplayString" if kinds[oid] == "text" else "gauge",
                        "indexes": [{"labelname": "ifIndex", "type": "gauge"}]})
    base: dict[str, Any] = {"walk": columns, "get": scalars, "max_repetitions": REPS,
                            "timeout": "5s", "retries": 1, "metrics": metrics}
    modules = {
        "privline_v2c": {**base, "version": 2, "auth": {"community": netlab.COMMUNITY}},
        "privline_v3": {**base, "version": 3, "auth": {
            "security_level": "authPriv", "username": netlab.V3_USER,
            "password": netlab.V3_AUTH, "auth_protocol": "SHA", "priv_protocol": "AES",
            "priv_password": netlab.V3_PRIV}},
    }
    return json.dumps(modules, indent=1)  # JSON is YAML


def start_exporter(workdir: Path) -> subprocess.Popen[bytes]:
    conf = workdir / "snmp.yml"
    conf.write_text(exporter_config())
    proc = subprocess.Popen(
        ["prometheus-snmp-exporter", f"--config.file={conf}",
         f"--web.listen-address=127.0.0.1:{EXPORTER_PORT}", "--log.level=warn"],
        stdout=subprocess.DEVNULL, stderr=open(workdir / "exporter.log", "wb"))  # noqa: SIM115
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{EXPORTER_PORT}/", timeout=1).read()
            return proc
        except OSError:
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError(f"snmp_exporter did not start; see {workdir}/exporter.log")


def scrape_exporter(pid: int, version: str, conc: int, seconds: float) -> dict[str, Any]:
    url = (f"http://127.0.0.1:{EXPORTER_PORT}/snmp?target=127.0.0.1:{PORT}"
           f"&module=privline_{version}")

    def one(_: int) -> int:
        body = urllib.request.urlopen(url, timeout=30).read().decode()
        for line in body.splitlines():
            if line.startswith("snmp_scrape_pdus_returned "):
                return int(float(line.split()[1]))
        raise RuntimeError(f"no snmp_scrape_pdus_returned in the scrape: {body[:300]}")

    with ThreadPoolExecutor(conc) as pool:
        list(pool.map(one, range(conc)))
        values = polls = 0
        cpu0, wall0 = netlab.proc_cpu(pid), time.perf_counter()
        while time.perf_counter() - wall0 < seconds or polls == 0:
            counts = list(pool.map(one, range(conc)))
            values += sum(counts)
            polls += len(counts)
        cpu = netlab.proc_cpu(pid) - cpu0
    return {"values": values, "polls": polls, "cpu_s": cpu,
            "wall_s": time.perf_counter() - wall0}


# --------------------------------------------------------------------------- orchestration


def run_worker(name: str, version: str, conc: int, seconds: float) -> dict[str, Any]:
    argv = [sys.executable, __file__, "--worker", name, "--version", version,
            "--concurrency", str(conc), "--seconds", str(seconds)]
    out = subprocess.run(argv, capture_output=True, text=True, check=False, timeout=300)
    if out.returncode != 0:
        raise RuntimeError(f"worker {name} {version} c={conc} failed:\n{out.stderr[-2000:]}")
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def inner_main(args: argparse.Namespace) -> None:
    pollers = args.pollers.split(",")
    unknown = set(pollers) - set(POLLERS)
    if unknown:
        raise SystemExit(f"unknown pollers: {', '.join(sorted(unknown))}")
    started = []
    loads = [netlab.loadavg()]
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="ng-peers-") as tmp:
        try:
            agent = netlab.start_snmpd(Path(tmp) / "snmpd", PORT)
            started.append(agent)
            exporter = start_exporter(Path(tmp)) if "snmp_exporter" in pollers else None
            if exporter is not None:
                started.append(exporter)
            ifs = subprocess.run(["snmpbulkwalk", "-v2c", "-c", netlab.COMMUNITY, "-m", "",
                                  "-On", f"127.0.0.1:{PORT}", "1.3.6.1.2.1.2.2.1.1"],
                                 capture_output=True, text=True, check=True).stdout
            interfaces = len(ifs.splitlines())
            print(f"snmpd serves {interfaces} interfaces", file=sys.stderr)
            for rnd in range(args.rounds):
                for version in ("v2c", "v3"):
                    for conc in (1, 8):
                        for name in pollers:
                            agent0 = netlab.proc_cpu(agent.pid)
                            if name == "snmp_exporter":
                                assert exporter is not None
                                res = scrape_exporter(exporter.pid, version, conc,
                                                      args.seconds)
                            else:
                                res = run_worker(name, version, conc, args.seconds)
                            res.update(poller=name, version=version, concurrency=conc,
                                       round=rnd, load1=netlab.loadavg()[0],
                                       agent_cpu_s=netlab.proc_cpu(agent.pid) - agent0)
                            res["cpu_s_per_1000"] = res["cpu_s"] / res["values"] * 1000
                            rows.append(res)
                            print(f"r{rnd} {version} c={conc} {name:16s} "
                                  f"{res['values'] / max(res['polls'], 1):6.0f} values/poll "
                                  f"{res['cpu_s_per_1000'] * 1000:8.2f} ms CPU/1000 values "
                                  f"load {res['load1']}", file=sys.stderr)
                loads.append(netlab.loadavg())
        finally:
            netlab.stop(started)
    report = {"command": " ".join(["bench/bench_peers.py", *sys.argv[1:]]),
              "machine": netlab.machine(), "interfaces": interfaces,
              "loadavg": loads, "summary": summarise(rows), "runs": rows}
    text = json.dumps(report, indent=1)
    if args.json:
        Path(args.json).write_text(text)
    print(format_table(report["summary"]))


def summarise(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    keys = dict.fromkeys((r["version"], r["concurrency"]) for r in rows)
    for version, conc in keys:
        group = [r for r in rows if r["version"] == version and r["concurrency"] == conc]
        base = None
        per: dict[str, float] = {}
        for name in dict.fromkeys(r["poller"] for r in group):
            mine = [r for r in group if r["poller"] == name]
            per[name] = statistics.median(r["cpu_s_per_1000"] for r in mine)
            if name == "snmp_exporter":
                base = per[name]
        for name, value in per.items():
            mine = [r for r in group if r["poller"] == name]
            out.append({"version": version, "concurrency": conc, "poller": name,
                        "cpu_s_per_1000_values": round(value, 5),
                        "values_per_poll": round(statistics.median(
                            r["values"] / r["polls"] for r in mine)),
                        "cpu_ms_per_poll": round(statistics.median(
                            r["cpu_s"] / r["polls"] * 1000 for r in mine), 2),
                        "agent_cpu_ms_per_poll": round(statistics.median(
                            r["agent_cpu_s"] / r["polls"] * 1000 for r in mine), 2),
                        "vs_snmp_exporter": None if base is None else round(value / base, 2),
                        "load1": [r["load1"] for r in mine]})
    return out


def format_table(summary: list[dict[str, Any]]) -> str:
    lines = ["| version | conc | poller | values/poll | CPU s / 1,000 values | CPU ms / poll "
             "| agent CPU ms / poll | vs snmp_exporter | load |",
             "|---|---:|---|---:|---:|---:|---:|---:|---|"]
    for r in summary:
        ratio = "" if r["vs_snmp_exporter"] is None else f"{r['vs_snmp_exporter']:.2f}x"
        lines.append(f"| {r['version']} | {r['concurrency']} | {r['poller']} | "
                     f"{r['values_per_poll']} | {r['cpu_s_per_1000_values']:.4f} | "
                     f"{r['cpu_ms_per_poll']:.2f} | {r['agent_cpu_ms_per_poll']:.2f} | "
                     f"{ratio} | {', '.join(map(str, r['load1']))} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--veth", type=int, default=30, help="veth pairs (2 interfaces each)")
    parser.add_argument("--seconds", type=float, default=4.0, help="per measurement")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--pollers", default=",".join(POLLERS))
    parser.add_argument("--json", help="also write the full report here")
    parser.add_argument("--max-seconds", type=float, default=900, help="hard time limit")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--version", default="v2c", help=argparse.SUPPRESS)
    parser.add_argument("--concurrency", type=int, default=1, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker_main(args)
    elif netlab.inside_netns():
        inner_main(args)
    else:
        sys.exit(netlab.run_in_netns(args.veth, args.max_seconds))


if __name__ == "__main__":
    main()
