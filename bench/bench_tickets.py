"""Ticket CLI speed against a store of many tickets (issue 3, acceptance 6).

Seeds a store with N tickets (default 100,000; a realistic mix of states, severities,
categories and ages, written in bulk), then times real subprocess runs of:

* ``netguard tickets list`` (first page of 50, most urgent first; goal < 0.5 s wall,
  interpreter start-up included), and
* ``netguard tickets export --format csv`` of all N tickets (goal < 5 s).

It also times ``FaultOpened`` handling in-process (new faults and repeat reports).

Usage::

    .venv/bin/python bench/bench_tickets.py [--tickets 100000] [--runs 7]
        [--db sqlite|postgresql] [--keep DIR]

PostgreSQL uses a throwaway database on ``NETGUARD_TEST_PG`` (default
postgresql://postgres@127.0.0.1:5432/postgres).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import random
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import sqlalchemy as sa
from pydantic import SecretStr

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from netguard.clock import ManualClock  # noqa: E402
from netguard.faults import FaultCleared, FaultEvent, FaultKey, FaultOpened  # noqa: E402
from netguard.store import Store  # noqa: E402
from netguard.store.config import StoreConfig  # noqa: E402
from netguard.store.db import create_engine, upgrade  # noqa: E402
from netguard.tickets.config import TicketsConfig  # noqa: E402
from netguard.tickets.domain import SEVERITIES  # noqa: E402
from netguard.tickets.service import TICKET, TicketService  # noqa: E402

NETGUARD = str(Path(sys.executable).parent / "netguard")
CATEGORIES = ("fiber", "wireless", "private_line", "cabin_5g", "pon")
# Most tickets of a long emergency are closed; the open queue is a few thousand.
STATES = (("closed", 0.80), ("resolved", 0.12), ("acknowledged", 0.03), ("open", 0.05))


def _state(rng: random.Random) -> str:
    x = rng.random()
    for state, share in STATES:
        if x < share:
            return state
        x -= share
    return "open"


async def seed(config: StoreConfig, count: int) -> float:
    await upgrade(config)
    rng = random.Random(3)
    now = datetime.now(UTC)
    engine = create_engine(config)
    started = time.perf_counter()
    batch: list[dict[str, object]] = []
    async with engine.begin() as conn:
        for i in range(count):
            severity = rng.choice(SEVERITIES)
            opened = now - timedelta(seconds=rng.uniform(0, 60 * 86400))
            state = _state(rng)
            target = f"{rng.choice(CATEGORIES)}-{rng.randrange(2000):04d}"
            batch.append({
                "fault_key": f"{target}|if:{i}|oper_down", "source": "fault",
                "category": target.rsplit("-", 1)[0], "target": target,
                "site": f"site-{rng.randrange(50)}", "severity": severity,
                "severity_rank": SEVERITIES.index(severity), "state": state,
                "summary": f"{target}: if:{i} oper down", "reasons": ["oper status down"],
                "first_seen": opened, "last_seen": opened + timedelta(minutes=5),
                "opened_at": opened, "updated_at": opened + timedelta(minutes=10),
                "resolved_at": opened + timedelta(hours=1)
                if state in ("resolved", "closed") else None,
                "closed_at": opened + timedelta(hours=2) if state == "closed" else None,
                "occurrences": rng.randrange(1, 20), "flaps": rng.randrange(0, 3),
                "reopens": 0, "sla_due": opened + timedelta(hours=4), "overdue": False,
                "assignee": rng.choice([None, "alice", "bob", "carol"]),
            })
            if len(batch) == 5000:
                await conn.execute(sa.insert(TICKET), batch)
                batch = []
        if batch:
            await conn.execute(sa.insert(TICKET), batch)
    if engine.dialect.name == "postgresql":
        async with engine.connect() as conn:
            await conn.execute(sa.text("ANALYZE ticket"))
            await conn.commit()
    await engine.dispose()
    return time.perf_counter() - started


def timed(argv: list[str], config_path: Path, runs: int) -> list[float]:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        result = subprocess.run([NETGUARD, *argv, "--config", str(config_path)],
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                check=False)
        times.append(time.perf_counter() - started)
        if result.returncode != 0:
            raise SystemExit(f"{argv} failed: {result.stderr.decode()}")
    return times


async def handle_rate(config: StoreConfig, n: int) -> list[tuple[str, float, float, float]]:
    """``(kind, events/s, CPU ms per event, SQL statements per event)`` of ``handle()``.

    CPU time and statement counts hold up on a loaded machine; the rate does not.
    """
    async with Store(config) as store:
        service = TicketService(store, TicketsConfig(), clock=ManualClock())
        statements = [0]

        def count(*_: object) -> None:
            statements[0] += 1

        sa.event.listen(store.engine.sync_engine, "before_cursor_execute", count)
        now = datetime.now(UTC)

        def key(i: int) -> FaultKey:
            return FaultKey(f"bench-{i}", "if:1", "oper_down")

        def opened(i: int, upstream: str | None = None) -> FaultOpened:
            return FaultOpened(key=key(i), category="fiber", site=None, severity="major",
                               summary="bench", reasons=("bench",), at=now,
                               suppressed_by=upstream)

        kinds: list[tuple[str, Callable[[int], FaultEvent]]] = [
            ("new fault", opened), ("repeat report", opened),
            ("clear", lambda i: FaultCleared(key(i), at=now)),
            ("suppressed child", lambda i: opened(n + i, "bench-up"))]
        results = []
        for kind, make in kinds:
            started, cpu, statements[0] = time.perf_counter(), time.process_time(), 0
            for i in range(n):
                await service.handle(make(i))
            results.append((kind, n / (time.perf_counter() - started),
                            1000 * (time.process_time() - cpu) / n, statements[0] / n))
    return results


def summary(name: str, times: list[float], goal: float) -> str:
    med = statistics.median(times)
    verdict = "meets" if med < goal else "MISSES"
    return (f"| {name} | {min(times):.3f} | {med:.3f} | {max(times):.3f} | < {goal:g} s "
            f"({verdict}) |")


def pg_database() -> tuple[str, object]:
    from tests.support.servers import pg_database as make

    ctx = make()
    return ctx.__enter__(), ctx


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tickets", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--db", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument("--handle", type=int, default=500,
                        help="faults for the in-process handle() rate")
    parser.add_argument("--keep", type=Path, help="keep the SQLite store in this directory")
    args = parser.parse_args()

    workdir = args.keep or Path(tempfile.mkdtemp(prefix="ng-bench-"))
    workdir.mkdir(parents=True, exist_ok=True)
    ctx = None
    if args.db == "postgresql":
        url, ctx = pg_database()
        config = StoreConfig(url=SecretStr(url))
        config_text = f"store:\n  url: {url}\n"
    else:
        db = workdir / "netguard.db"
        if db.exists():
            db.unlink()
        config = StoreConfig(path=db)
        config_text = f"store:\n  path: {db}\n"
    config_path = workdir / "netguard.yaml"
    config_path.write_text(config_text)
    try:
        seed_s = asyncio.run(seed(config, args.tickets))
        load = os.getloadavg()
        print(f"machine: {platform.machine()} {os.cpu_count()} CPU, {platform.system()} "
              f"{platform.release()}, Python {platform.python_version()}, "
              f"sqlite {__import__('sqlite3').sqlite_version}, db {args.db}")
        print(f"seeded {args.tickets} tickets in {seed_s:.1f} s; "
              f"load average {load[0]:.2f} {load[1]:.2f}")
        print("| command | min s | median s | max s | goal |")
        print("|---|---|---|---|---|")
        timed(["tickets", "list"], config_path, 1)  # warm the page cache
        print(summary("`tickets list` (first page of 50)",
                      timed(["tickets", "list"], config_path, args.runs), 0.5))
        print(summary("`tickets list --json`",
                      timed(["tickets", "list", "--json"], config_path, args.runs), 0.5))
        print(summary(f"`tickets export --format csv` ({args.tickets} rows)",
                      timed(["tickets", "export", "--format", "csv"], config_path,
                            max(3, args.runs // 2)), 5.0))
        bare = []
        for _ in range(3):
            started = time.perf_counter()
            subprocess.run([sys.executable, "-c", "pass"], check=True)
            bare.append(time.perf_counter() - started)
        print(f"| reference: bare `python -c pass` | {min(bare):.3f} | "
              f"{statistics.median(bare):.3f} | {max(bare):.3f} | |")
        print(f"handle(), one task, {args.db}: | event | events/s | CPU ms/event | "
              "statements/event |")
        for kind, rate, cpu_ms, stmts in asyncio.run(handle_rate(config, args.handle)):
            print(f"| {kind} | {rate:.0f} | {cpu_ms:.2f} | {stmts:.1f} |")
        print(f"load average {os.getloadavg()[0]:.2f}")
    finally:
        if ctx is not None:
            ctx.__exit__(None, None, None)  # type: ignore[attr-defined]


if __name__ == "__main__":
    main()
