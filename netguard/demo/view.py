"""The demo's live status view: targets by state, tickets, alerts, and where to look next.

:func:`render` turns a :class:`DemoSnapshot` (plain data) into a rich renderable, so the
view is tested without a terminal. On a terminal the runner shows it with ``rich.live``;
otherwise it prints :func:`status_line` now and then, which logs and tests can read.
"""

from __future__ import annotations

import json
import shutil
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Group, RenderableType
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

STATE_STYLES: Mapping[str, str] = {"up": "green", "degraded": "yellow", "down": "red",
                                   "unreachable": "magenta", "pending": "dim"}


@dataclass(frozen=True, slots=True)
class TargetLine:
    """One target as the view shows it."""

    target: str
    kind: str
    site: str
    state: str
    reason: str = ""
    suppressed_by: str | None = None


@dataclass(frozen=True, slots=True)
class DemoSnapshot:
    """Everything the live view shows, read once per refresh."""

    elapsed_seconds: float
    duration_seconds: float | None
    targets: tuple[TargetLine, ...]
    tickets_open: int = 0
    tickets_resolved: int = 0
    # Child faults grouped under tickets that are still open (not under resolved ones).
    tickets_children: int = 0
    alerts_open: int = 0
    alerts_received: int = 0
    door_events: int = 0
    steps: tuple[str, ...] = ()
    metrics_url: str | None = None
    config_path: str = ""
    executable: str = "netguard"
    sink_file: str = ""
    mqtt_url: str = ""
    alerts: tuple[str, ...] = ()
    ticket_news: tuple[str, ...] = ()
    notes: tuple[str, ...] = field(default=())

    def states(self) -> dict[str, int]:
        """Number of targets in each state."""
        counts: dict[str, int] = {}
        for line in self.targets:
            counts[line.state] = counts.get(line.state, 0) + 1
        return counts


def _first_line(text: str) -> str:
    return next((line.lstrip("#").strip() for line in text.split("\n") if line.strip()), "")


def alert_lines(body: Any) -> list[str]:
    """One line per message in a body netguard sent: a door alert of the webhook, a
    ticket or Alertmanager message (its title), or a WeCom robot message (its title);
    anything else: its start."""
    if isinstance(body, dict) and body.get("msgtype") == "markdown":
        content = (body.get("markdown") or {}).get("content", "")
        return [f"WeCom: {_first_line(str(content))[:160]}"]
    alerts = body.get("alerts") if isinstance(body, dict) else None
    if not isinstance(alerts, list):
        return [json.dumps(body, ensure_ascii=False)[:100]]
    lines = []
    for alert in alerts:
        if not isinstance(alert, dict):
            continue
        if alert.get("text"):
            lines.append(_first_line(str(alert["text"]))[:160])
            continue
        reason = alert.get("reason", "")
        again = "" if reason in ("", "raised") else f" ({reason})"
        lines.append(f"{alert.get('type', '?')}{again}: household {alert.get('household', '?')}"
                     f" in {alert.get('community', '?')}, sensor {alert.get('sensor', '?')} "
                     f"-> {', '.join(alert.get('recipients') or []) or 'staff'}")
    return lines


# The ticket history actions the demo narrates, and how.
_NEWS: Mapping[str, str] = {
    "opened": "opened",
    "reopened": "reopened",
    "child_attached": "grouped a child fault",
    "grouped": "grouped",
    "resolved": "resolved",
}


def ticket_news_line(ref: str, action: str, message: str, summary: str) -> str | None:
    """One line for a ticket history event worth narrating, else ``None``.

    Examples: ``DEMO-000003 opened: pl-east-uplink unreachable``,
    ``DEMO-000003 grouped a child fault: fib-east-clinic/... suppressed under this ticket``,
    ``DEMO-000004 grouped: grouped under DEMO-000003 ...``,
    ``DEMO-000001 resolved: fault stayed clear for 10s``.
    """
    verb = _NEWS.get(action)
    if verb is None:
        return None
    detail = summary if action in ("opened", "reopened") else message
    return f"{ref} {verb}: {detail}" if detail else f"{ref} {verb}"


def ticket_counts(snapshot: DemoSnapshot) -> str:
    """The ticket counts in words that cannot be misread."""
    return (f"{snapshot.tickets_open} open, {snapshot.tickets_resolved} resolved, "
            f"{snapshot.tickets_children} child faults grouped under the open ones")


def next_commands(config_path: str, executable: str = "netguard") -> list[str]:
    """The commands to try in another terminal while the demo runs."""
    return [
        f"{executable} tickets list --config {config_path}",
        f"{executable} alerts list --config {config_path}",
    ]


def netguard_executable() -> str:
    """``netguard`` when that name finds this installation, else its full path.

    ``scripts/demo.sh`` runs netguard from a virtualenv that another terminal has not
    activated, so the printed commands must name it in full there.
    """
    here = Path(sys.executable).parent / "netguard"
    found = shutil.which("netguard")
    if found is not None and here.exists() and Path(found).resolve() == here.resolve():
        return "netguard"
    return str(here) if here.exists() else "netguard"


def status_line(snapshot: DemoSnapshot) -> str:
    """A one-line summary for non-terminal output."""
    states = ", ".join(f"{n} {s}" for s, n in sorted(snapshot.states().items()))
    return (f"[{snapshot.elapsed_seconds:5.1f}s] targets: {states or 'none'} | tickets: "
            f"{ticket_counts(snapshot)} | alerts: {snapshot.alerts_open} open, "
            f"{snapshot.alerts_received} received by the webhook sink")


def _targets_table(targets: Sequence[TargetLine]) -> Table:
    table = Table(title="Targets", expand=True, show_lines=False)
    table.add_column("target")
    table.add_column("kind")
    table.add_column("site")
    table.add_column("state")
    table.add_column("why", overflow="fold")
    for line in targets:
        style = STATE_STYLES.get(line.state, "")
        why = line.reason
        if line.suppressed_by:
            why = f"(upstream {line.suppressed_by}) {why}".strip()
        table.add_row(line.target, line.kind, line.site, Text(line.state, style=style), why)
    return table


def render(snapshot: DemoSnapshot) -> RenderableType:
    """The whole view as one rich renderable."""
    clock = f"{snapshot.elapsed_seconds:.0f}s"
    if snapshot.duration_seconds is not None:
        clock += f" of {snapshot.duration_seconds:.0f}s"
    states = snapshot.states()
    summary = Text()
    summary.append(f"netguard demo  {clock}   ", style="bold")
    for state in ("up", "degraded", "down", "unreachable", "pending"):
        if states.get(state):
            summary.append(f"{states[state]} {state}  ", style=STATE_STYLES[state])
    counters = Table.grid(padding=(0, 2))
    counters.add_row("tickets open", str(snapshot.tickets_open),
                     "child faults grouped under open tickets", str(snapshot.tickets_children),
                     "resolved", str(snapshot.tickets_resolved))
    counters.add_row("alerts open", str(snapshot.alerts_open),
                     "alerts received by the sink", str(snapshot.alerts_received),
                     "door events", str(snapshot.door_events))
    timeline = Text("\n".join(snapshot.steps[-6:]) or "waiting for the first scripted fault")
    alerts = Text("\n".join(snapshot.alerts[-4:]) or "none yet", style="bold red"
                  if snapshot.alerts else "dim")
    news = Text("\n".join(snapshot.ticket_news[-6:]) or "none yet",
                style="" if snapshot.ticket_news else "dim")
    where = Table.grid(padding=(0, 1))
    where.add_row("metrics", snapshot.metrics_url or "disabled")
    where.add_row("MQTT broker", snapshot.mqtt_url)
    where.add_row("alerts file", snapshot.sink_file)
    where.add_row("config", snapshot.config_path)
    for note in snapshot.notes:
        where.add_row("note", note)
    try_next = Text("\n".join(next_commands(snapshot.config_path, snapshot.executable)),
                    style="cyan")
    return Group(
        summary,
        _targets_table(snapshot.targets),
        Panel(counters, title="Tickets and alerts"),
        Panel(timeline, title="Scripted faults"),
        Panel(news, title="Tickets: opened, grouped, resolved"),
        Panel(alerts, title="Alerts community staff received (webhook sink)"),
        Panel(where, title="Where to look"),
        Panel(try_next, title="Try in another terminal (Ctrl-C here stops the demo)"),
    )
