"""Acceptance 1: `netguard demo` end to end, as a user runs it, stopped with Ctrl-C (SIGINT).

One run (about a minute) checks that:
- the scripted faults became tickets, including the upstream root with its children,
  and that some resolved again;
- the door opening and the silent sensor reached the webhook sink as alerts;
- the tickets reached the network duty group's (WeCom-format) robot, the uplink with the
  sites behind it in one grouped message; a Prometheus alert posted to the Alertmanager
  webhook reached it too; the door alert's acknowledgement link was tapped and the alert
  is acknowledged via chat-link;
- /metrics, scraped during the run, showed the targets, tickets and alerts;
- after SIGINT, the demo exits 0 and none of the processes it started is left.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.demo.procs import descendants, kill_all, running
from tests.support.ports import free_tcp_port
from tests.support.wait import wait_until

pytestmark = [pytest.mark.integration, pytest.mark.slow,
              pytest.mark.xdist_group("heavy")]  # CPU-heavy: one at a time (docs/testing.md)

NETGUARD = Path(sys.executable).parent / "netguard"
# Bounds the run if the SIGINT below never comes; the test normally stops it earlier.
SAFETY_DURATION = 150


def tickets(db: Path) -> list[dict[str, object]]:
    if not db.exists():
        return []
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5) as conn:
        conn.row_factory = sqlite3.Row
        try:
            return [dict(r) for r in conn.execute(
                "SELECT id, target, fault_key, state, category FROM ticket")]
        except sqlite3.OperationalError:
            return []


def children_of(db: Path, upstream: str) -> set[str]:
    if not db.exists():
        return set()
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5) as conn:
        try:
            rows = conn.execute("SELECT target FROM ticket_child WHERE upstream_target = ?",
                                (upstream,)).fetchall()
        except sqlite3.OperationalError:
            return set()
    return {r[0] for r in rows}


def wecom_texts(directory: Path) -> list[str]:
    """The markdown of every message the sink received in the WeCom robot's format."""
    out = []
    for line in sink_text(directory).splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue
        body = record.get("body")
        if record.get("path") == "/wecom" and isinstance(body, dict):
            out.append(str((body.get("markdown") or {}).get("content", "")))
    return out


def grouped(texts: list[str]) -> bool:
    """The uplink's message names both sites behind it (grouped, or in one update)."""
    about = [t for t in texts if "pl-east-uplink" in t]
    return all(any(child in t for t in about) for child in ("fib-east-clinic", "cab-east-school"))


def sink_text(directory: Path) -> str:
    path = directory / "alerts.jsonl"
    return path.read_text(encoding="utf-8") if path.exists() else ""


@dataclass
class Scrapes:
    """The highest value seen per (metric name, sorted labels) over all scrapes."""

    peak: dict[tuple[str, tuple[tuple[str, str], ...]], float] = field(default_factory=dict)
    count: int = 0

    def take(self, url: str) -> None:
        try:
            with urllib.request.urlopen(url, timeout=5) as resp:
                text = resp.read().decode()
        except OSError:
            return
        self.count += 1
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                key = (sample.name, tuple(sorted(sample.labels.items())))
                self.peak[key] = max(self.peak.get(key, float("-inf")), sample.value)

    def highest(self, name: str, **labels: str) -> float:
        values = [v for (n, lbls), v in self.peak.items()
                  if n == name and all((k, val) in lbls for k, val in labels.items())]
        return max(values, default=float("-inf"))

    def lowest_peak(self, name: str, **labels: str) -> float:
        """The smallest per-series peak (e.g. a target whose `up` never reached 1)."""
        values = [v for (n, lbls), v in self.peak.items()
                  if n == name and all((k, val) in lbls for k, val in labels.items())]
        return min(values, default=float("inf"))


@pytest.fixture
def demo(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[bytes], Path, int, Path, set[int]]]:
    directory = tmp_path / "demo"
    port = free_tcp_port()
    log = tmp_path / "demo.out"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [str(NETGUARD), "demo", "--duration", str(SAFETY_DURATION), "--dir", str(directory),
             "--metrics-port", str(port)],
            stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    started: set[int] = set()
    try:
        yield proc, directory, port, log, started
    finally:
        # A failed test must not leave simulators behind: they run in their own sessions.
        started.update(descendants(proc.pid))
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)
        kill_all(started)


def test_demo_end_to_end(
        demo: tuple[subprocess.Popen[bytes], Path, int, Path, set[int]]) -> None:
    proc, directory, port, log, started = demo
    db = directory / "netguard.db"
    scrapes = Scrapes()

    def progress() -> bool:
        if proc.poll() is not None:
            raise AssertionError(f"demo exited early:\n{log.read_text(errors='replace')}")
        started.update(descendants(proc.pid))
        scrapes.take(f"http://127.0.0.1:{port}/metrics")
        rows = tickets(db)
        resolved = {r["target"] for r in rows if r["state"] in ("resolved", "closed")}
        sink = sink_text(directory)
        texts = wecom_texts(directory)
        output = log.read_text(errors="replace")
        return (
            {"fib-east-clinic", "cab-east-school"} <= children_of(db, "pl-east-uplink")
            and "fib-field-hospital" in resolved
            and "door-riverside-02" in sink
            and "door-old-town-01" in sink
            and grouped(texts)
            and any("NetguardPonOnuDrop" in t for t in texts)
            and "via chat-link" in output
        )

    try:
        wait_until(progress, timeout=110, interval=1.0, what="the scripted faults' effects")
    except AssertionError:
        raise AssertionError(
            f"{log.read_text(errors='replace')[-4000:]}\ntickets: {tickets(db)}\n"
            f"sink: {sink_text(directory)[-3000:]}") from None

    # --- tickets: the upstream outage is one root ticket with its children ------------
    rows = tickets(db)
    by_target: dict[object, list[dict[str, object]]] = {}
    for row in rows:
        by_target.setdefault(row["target"], []).append(row)
    assert "pl-east-uplink" in by_target, rows
    assert "fib-east-clinic" not in by_target, "a child must not get a ticket of its own"
    for target in ("cab-stadium", "pon-riverside", "wl-lake-camp", "fib-field-hospital"):
        assert target in by_target, f"no ticket for {target}: {rows}"

    # --- alerts reached the webhook sink ------------------------------------------------
    records = [json.loads(line) for line in sink_text(directory).splitlines()]
    assert records, "the webhook sink received nothing"
    bodies = [json.dumps(r["body"]) for r in records]
    assert any("door-riverside-02" in b for b in bodies)
    assert any("door-old-town-01" in b for b in bodies)

    # --- the network side reached its chat robot; the door alert was acknowledged -------
    texts = wecom_texts(directory)
    assert grouped(texts), texts
    assert any("其后 2 个站点受影响" in t for t in texts) or len(
        [t for t in texts if "pl-east-uplink" in t]) >= 2, texts  # grouped, or late: updated
    assert all("<@netops-duty>" in t for t in texts), "the duty group is @-mentioned"
    assert sum("NetguardPonOnuDrop" in t for t in texts) == 1, texts
    output = log.read_text(errors="replace")
    assert "posted to /alertmanager/webhook: accepted" in output, output[-3000:]
    acked = [line for line in output.splitlines() if "via chat-link" in line]
    assert acked, output[-3000:]
    assert "acknowledged by" in acked[0], output[-3000:]

    # --- /metrics showed targets, faults, tickets and alerts -----------------------------
    assert scrapes.count >= 5
    assert scrapes.highest("netguard_target_up", target="fib-hq-core") == 1
    assert scrapes.highest("netguard_ups_on_battery", target="cab-stadium") == 1
    assert scrapes.highest("netguard_tickets_open") >= 1
    assert scrapes.highest("netguard_alerts_open") >= 1
    assert scrapes.highest("netguard_door_events_total") >= 10

    # --- Ctrl-C stops everything ---------------------------------------------------------
    started.update(descendants(proc.pid))
    assert started, "the demo should run snmpsim as a child process"
    proc.send_signal(signal.SIGINT)
    assert proc.wait(30) == 0, log.read_text(errors="replace")[-3000:]
    wait_until(lambda: not [p for p in started if running(p)], timeout=10,
               what="the demo's child processes to exit")
    output = log.read_text(errors="replace")
    assert "demo stopped" in output
    # The view narrated the tickets as they happened (not only in the counts).
    news = [line.split("ticket: ", 1)[1] for line in output.splitlines()
            if line.startswith("ticket: ")]
    assert any(" opened: " in line for line in news), output[-3000:]
    assert any(" grouped a child fault: " in line for line in news), output[-3000:]
    assert any(" resolved: " in line for line in news), output[-3000:]
    assert "child faults grouped under the open ones" in output
    # The command the demo prints works as printed, from another terminal.
    printed = [line.split("look at", 1)[1].split() for line in output.splitlines()
               if "look at" in line]
    assert printed, output
    command = printed[-1]
    assert command[1:] == ["tickets", "list", "--config", str(directory / "netguard.yaml")]
    env = {k: v for k, v in os.environ.items() if k != "NETGUARD_CONFIG"}
    result = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False,
                            env=env, cwd="/")
    assert result.returncode == 0, result.stderr
    assert "pl-east-uplink" in result.stdout
