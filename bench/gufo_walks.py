"""How to read many table columns with gufo-snmp, which has no multi-OID GETBULK.

Polls the private-line profile's columns of one simulated agent (snmpsim, 60
interfaces, v2c) with four strategies and prints, per poll: the poller's CPU, the
requests sent and the agent's CPU. The figures are in docs/decisions.md.

    .venv/bin/python bench/gufo_walks.py [--polls 50] [--interfaces 60]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from gufo.snmp.aio.client import SnmpSession
from gufo.snmp.policer import BasePolicer

from netguard.probes.profiles import default_library
from netguard.sim import SnmpSim, build_agent

TICK = os.sysconf("SC_CLK_TCK")


class Counter(BasePolicer):
    def __init__(self) -> None:
        self.sent = 0

    def get_timeout(self, ts: int) -> int | None:
        return None

    async def wait(self) -> None:
        self.sent += 1


def agent_cpu(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


async def per_column(s: SnmpSession, cols: list[str], reps: int | None,
                     hint: dict[str, int]) -> int:
    n = 0
    for col in cols:
        r = reps or min(25, hint.get(col, 24) + 1)
        rows = 0
        async for _ in s.getbulk(col, max_repetitions=r):
            rows += 1
        hint[col] = rows
        n += rows
    return n


async def known_instances(s: SnmpSession, cols: list[str], index: list[str],
                          chunk: int) -> int:
    oids = [f"{c}.{i}" for c in cols for i in index]
    n = 0
    for start in range(0, len(oids), chunk):
        n += len(await s.get_many(oids[start:start + chunk]))
    return n


async def subtrees(s: SnmpSession, roots: list[str], wanted: set[str]) -> int:
    n = 0
    for root in roots:
        async for oid, _ in s.getbulk(root, max_repetitions=25):
            if oid.rsplit(".", 1)[0] in wanted:
                n += 1
    return n


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--polls", type=int, default=50)
    parser.add_argument("--interfaces", type=int, default=60)
    args = parser.parse_args()
    library = default_library()
    profile = library.resolve("private-line")
    cols = [".".join(map(str, m.oid_tuple)) for m in profile.columns]
    agent = build_agent("wide", "private_line", interfaces=args.interfaces)
    with SnmpSim([agent], Path(tempfile.mkdtemp()) / "sim") as sim:
        pid = sim.pid
        assert pid is not None
        index = [str(i) for i in range(1, args.interfaces + 1)]
        roots = ["1.3.6.1.2.1.2.2.1", "1.3.6.1.2.1.31.1.1.1", *sorted(
            {c for c in cols if not c.startswith(("1.3.6.1.2.1.2.2.1.",
                                                  "1.3.6.1.2.1.31.1.1.1."))})]
        hint: dict[str, int] = {}
        strategies: dict[str, Callable[[SnmpSession], Awaitable[int]]] = {
            "getbulk per column, 25 rows": lambda s: per_column(s, cols, 25, hint),
            "getbulk per column, last size + 1": lambda s: per_column(s, cols, None, hint),
            "get_many of known instances (40/PDU)":
                lambda s: known_instances(s, cols, index, 40),
            "getbulk of whole table subtrees": lambda s: subtrees(s, roots, set(cols)),
        }
        print(f"{len(cols)} columns x {args.interfaces} rows, {args.polls} polls each")
        for name, run in strategies.items():
            counter = Counter()
            session = SnmpSession("127.0.0.1", sim.port, community="wide", timeout=5,
                                  policer=counter)
            values = await run(session)  # warm up (and learn sizes)
            counter.sent = 0
            cpu0, agent0 = time.process_time(), agent_cpu(pid)
            for _ in range(args.polls):
                values = await run(session)
            cpu = (time.process_time() - cpu0) / args.polls
            load = (agent_cpu(pid) - agent0) / args.polls
            print(f"{name:40s} values {values:5d}  poller {cpu * 1e3:6.2f} ms  "
                  f"requests {counter.sent / args.polls:6.1f}  agent {load * 1e3:7.1f} ms")


if __name__ == "__main__":
    asyncio.run(main())
