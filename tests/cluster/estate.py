"""Helpers of the process-level cluster tests: ``netguard run`` processes, their
``/metrics`` read back as poll records, and the ticket store read with plain SQL.

Used by tests/cluster/test_processes.py (issue 11's acceptance).
"""

from __future__ import annotations

import asyncio
import itertools
import re
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg  # type: ignore[import-untyped]
import yaml

from netguard.tickets.domain import ACTIVE_SQL as ACTIVE_PREDICATE
from tests.daemon.runproc import http_get, run_netguard
from tests.support.ports import free_tcp_port
from tests.support.procs import ServerProcess

_SAMPLE = re.compile(r'^(netguard_[a-z_]+)\{([^}]*)\} (\S+)$')
_LABEL = re.compile(r'(\w+)="([^"]*)"')


class Instance:
    """One ``netguard run`` process and its metrics endpoint."""

    def __init__(self, tmp_path: Path, name: str, data: dict[str, Any],
                 store_url: str | None = None) -> None:
        self.name = name
        self.port = free_tcp_port()
        config = tmp_path / f"{name}.yaml"
        store = data["store"] if store_url is None else {"url": store_url}
        data = {**data, "store": store, "metrics": {"listen": f"127.0.0.1:{self.port}"},
                "cluster": {**data["cluster"], "instance_id": name},
                "daemon": {**data["daemon"], "fault_journal": str(tmp_path / f"{name}.j")}}
        config.write_text(yaml.safe_dump(data))
        self.proc: ServerProcess = run_netguard(tmp_path, config, self.port, name)

    def start(self) -> Instance:
        self.proc.start(timeout=90)
        return self

    def metrics(self) -> str:
        status, body = http_get(f"http://127.0.0.1:{self.port}/metrics")
        return body.decode() if status == 200 else ""

    def polled(self) -> dict[str, float]:
        """Target -> last successful poll (Unix time), for the targets it exports."""
        return read_metrics(self.metrics()).polls

    def gauge(self, name: str) -> float | None:
        found = re.search(rf"^{name} (\S+)$", self.metrics(), re.MULTILINE)
        return float(found.group(1)) if found else None


@dataclass
class Reading:
    """What one instance's ``/metrics`` said."""

    exported: set[str] = field(default_factory=set)  # targets with a netguard_target_up
    polls: dict[str, float] = field(default_factory=dict)  # target -> last success
    durations: dict[str, float] = field(default_factory=dict)  # target -> last poll's
    utilisation: dict[tuple[str, str], float] = field(default_factory=dict)
    polls_total: float = 0.0
    gauges: dict[str, float] = field(default_factory=dict)


def read_metrics(text: str) -> Reading:
    """Parse the samples these tests need out of a Prometheus text exposition."""
    reading = Reading()
    for line in text.splitlines():
        if line.startswith("#"):
            continue
        found = _SAMPLE.match(line)
        if found is None:
            name, _, value = line.partition(" ")
            if name.startswith("netguard_cluster_"):
                reading.gauges[name] = float(value)
            continue
        metric, labels = found.group(1), dict(_LABEL.findall(found.group(2)))
        number = float(found.group(3))
        target = labels.get("target", "")
        if metric == "netguard_target_up":
            reading.exported.add(target)
        elif metric == "netguard_target_last_success_timestamp_seconds":
            reading.polls[target] = number
        elif metric == "netguard_target_poll_duration_seconds":
            reading.durations[target] = number
        elif metric == "netguard_interface_utilisation_ratio":
            reading.utilisation[(target, labels.get("interface", ""))] = number
        elif metric == "netguard_polls_total":
            reading.polls_total += number
    return reading


@dataclass
class Scrape:
    """One round over the live instances: when it started and ended, what each said."""

    started: float
    ended: float
    readings: dict[str, Reading]

    def doubles(self) -> set[str]:
        """Targets exported by more than one instance in this round."""
        seen: dict[str, int] = {}
        for reading in self.readings.values():
            for target in reading.exported:
                seen[target] = seen.get(target, 0) + 1
        return {t for t, n in seen.items() if n > 1}


class Watcher:
    """Scrapes the live instances and keeps every successful poll it saw.

    A poll shows as a new last-success timestamp; scraping more often than the poll
    interval sees every successful poll of every instance (except the last ones of an
    instance that was then killed), and which instance made it.
    """

    def __init__(self) -> None:
        self.scrapes: list[Scrape] = []
        self.polls: set[tuple[str, str, float]] = set()  # (target, instance, at)
        # (target, instance, at) -> when that poll started: its success time less its
        # duration, both read in the first scrape that saw it.
        self.started: dict[tuple[str, str, float], float] = {}

    def scrape(self, instances: Iterable[Instance]) -> Scrape:
        started = time.time()
        readings = {i.name: read_metrics(i.metrics()) for i in instances}
        scrape = Scrape(started, time.time(), readings)
        for name, reading in readings.items():
            for target, at in reading.polls.items():
                if (target, name, at) not in self.polls:
                    self.polls.add((target, name, at))
                    self.started[(target, name, at)] = at - reading.durations.get(target, 0.0)
        self.scrapes.append(scrape)
        return scrape

    def handover_pairs(self) -> list[tuple[str, str, str, float]]:
        """Every pair of successive polls of a target (by their start) made by two
        instances: (target, earlier instance, later instance, seconds between starts),
        closest first."""
        by_target: dict[str, list[tuple[float, str]]] = {}
        for key, start in self.started.items():
            by_target.setdefault(key[0], []).append((start, key[1]))
        pairs = []
        for target, polls in by_target.items():
            polls.sort()
            pairs.extend((target, a, b, t2 - t1)
                         for (t1, a), (t2, b) in itertools.pairwise(polls)
                         if a != b)
        return sorted(pairs, key=lambda p: p[3])

    def since(self, at: float) -> list[Scrape]:
        return [s for s in self.scrapes if s.started >= at]

    def polls_since(self, at: float) -> dict[str, list[tuple[float, str]]]:
        """Target -> its polls (time, instance) after ``at``, in time order."""
        out: dict[str, list[tuple[float, str]]] = {}
        for target, name, when in self.polls:
            if when > at:
                out.setdefault(target, []).append((when, name))
        return {t: sorted(p) for t, p in out.items()}

    def handover_gaps(self, targets: Iterable[str], new: str | None, at: float
                      ) -> list[float]:
        """For each target, the time from the previous owner's last poll seen before
        its first poll after ``at`` by another instance (``new``, or any) to that poll."""
        gaps = []
        for target in targets:
            polls = sorted((when, name) for t, name, when in self.polls if t == target)
            for i, (when, name) in enumerate(polls):
                if when <= at or (new is not None and name != new):
                    continue
                before = [w for w, n in polls[:i] if n != name]
                if before:
                    gaps.append(when - before[-1])
                break
        return sorted(gaps)

    def max_utilisation(self, targets: Iterable[str], since: float) -> dict[str, float]:
        """Target -> the highest utilisation any instance exported for it after ``since``."""
        wanted = set(targets)
        out: dict[str, float] = {}
        for scrape in self.since(since):
            for reading in scrape.readings.values():
                for (target, _iface), value in reading.utilisation.items():
                    if target in wanted:
                        out[target] = max(out.get(target, 0.0), value)
        return out


@dataclass(frozen=True)
class TicketRow:
    id: int
    fault_key: str | None
    target: str | None
    state: str
    overdue: bool
    active: bool


def sql(url: str, query: str, *args: object) -> list[Any]:
    """Run one statement on the test database; its rows."""
    async def run() -> list[Any]:
        conn = await asyncpg.connect(url)
        try:
            return list(await conn.fetch(query, *args))
        finally:
            await conn.close()
    return asyncio.run(run())


def tickets(url: str) -> list[TicketRow]:
    """Every ticket in the store, open or not."""
    rows = sql(url, f"SELECT id, fault_key, target, state, overdue, ({ACTIVE_PREDICATE}) "
               "AS active FROM ticket ORDER BY id")
    return [TicketRow(r["id"], r["fault_key"], r["target"], r["state"], r["overdue"],
                      r["active"]) for r in rows]


def ticket_actions(url: str) -> dict[int, list[str]]:
    """Ticket id -> its events' actions, in order."""
    out: dict[int, list[str]] = {}
    for r in sql(url, "SELECT ticket_id, action FROM ticket_event ORDER BY id"):
        out.setdefault(r["ticket_id"], []).append(r["action"])
    return out


def duplicate_open_tickets(url: str) -> list[Any]:
    """Fault keys with more than one active ticket (what the unique index forbids)."""
    return sql(url, f"SELECT fault_key, count(*) FROM ticket WHERE {ACTIVE_PREDICATE} "
               "AND fault_key IS NOT NULL GROUP BY fault_key HAVING count(*) > 1")


def active_unique_index(url: str) -> str:
    """The definition of the database constraint that keeps one active ticket per fault."""
    rows = sql(url, "SELECT indexdef FROM pg_indexes WHERE indexname = "
               "'uq_ticket_active_fault_key'")
    return str(rows[0]["indexdef"]) if rows else ""
