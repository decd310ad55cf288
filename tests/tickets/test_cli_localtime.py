"""``netguard tickets`` reads and shows times in display.timezone (Asia/Shanghai here),
through the real CLI against a real SQLite store; JSON stays UTC."""

from __future__ import annotations

import asyncio
import csv
import io
import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from netguard.cli import app
from netguard.clock import ManualClock
from netguard.faults import FaultKey, FaultOpened
from netguard.store import Store
from netguard.store.config import StoreConfig
from netguard.store.db import upgrade
from netguard.tickets.config import TicketsConfig
from netguard.tickets.service import TicketService

# 23:30 on the 28th and 00:30 on the 29th in Shanghai (UTC+8): a naive "2026-11-29" must
# mean Shanghai's midnight, between them; read as UTC it would select neither.
LATE = datetime(2026, 11, 28, 15, 30, tzinfo=UTC)
EARLY = datetime(2026, 11, 28, 16, 30, tzinfo=UTC)


def _fault(target: str, at: datetime) -> FaultOpened:
    return FaultOpened(key=FaultKey(target, "if:1", "oper_down"), category="fiber", site=None,
                       severity="major", summary=f"{target} down", reasons=("if:1 down",),
                       at=at)


@pytest.fixture
def config(tmp_path: Path) -> Path:
    """A config on a SQLite store holding two tickets, opened at LATE and EARLY."""
    store = StoreConfig(path=tmp_path / "t.db")

    async def setup() -> None:
        await upgrade(store)
        clock = ManualClock(LATE)
        async with Store(store) as s:
            service = TicketService(s, TicketsConfig(), clock=clock)
            await service.handle(_fault("olt-late", LATE))
            clock.advance((EARLY - LATE).total_seconds())
            await service.handle(_fault("olt-early", EARLY))

    asyncio.run(setup())
    path = tmp_path / "netguard.yaml"
    path.write_text(yaml.safe_dump({"store": {"path": str(store.path)},
                                    "display": {"timezone": "Asia/Shanghai"}}))
    return path


def ng(config: Path, *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, [*args, "--config", str(config)])
    return result.exit_code, result.output


def _targets(config: Path, *args: str) -> set[str]:
    code, out = ng(config, "tickets", "list", "--json", *args)
    assert code == 0, out
    return {t["target"] for t in json.loads(out)}


def test_a_naive_since_is_read_in_the_display_zone(config: Path) -> None:
    assert _targets(config, "--since", "2026-11-29") == {"olt-early"}
    assert _targets(config, "--since", "2026-11-29T00:00") == {"olt-early"}
    assert _targets(config, "--since", "2026-11-28T23:00") == {"olt-early", "olt-late"}
    # An offset is that instant, whatever the zone.
    assert _targets(config, "--since", "2026-11-28T16:00:00Z") == {"olt-early"}
    assert _targets(config, "--since", "2026-11-29T00:00+08:00") == {"olt-early"}


@pytest.mark.parametrize("value", ["yesterday", "2026-13-01", "2026-11-29T25:00", " ",
                                   "9" * 200])
def test_a_bad_since_exits_2_naming_the_option(config: Path, value: str) -> None:
    code, out = ng(config, "tickets", "list", "--since", value)
    assert code == 2, out
    assert "--since" in out
    assert "Traceback" not in out


def test_the_list_table_shows_local_opening_times_with_the_zone_named_once(
        config: Path) -> None:
    code, out = ng(config, "tickets", "list")
    assert code == 0, out
    lines = out.splitlines()
    header = next(line for line in lines if line.startswith("ID"))
    assert "OPENED (Asia/Shanghai)" in header
    assert out.count("Asia/Shanghai") == 1
    assert "2026-11-29 00:30" in next(line for line in lines if "olt-early" in line)
    assert "2026-11-28 23:30" in next(line for line in lines if "olt-late" in line)


def test_show_gives_local_times_and_json_gives_utc(config: Path) -> None:
    code, out = ng(config, "tickets", "list", "--json", "--target", "olt-early")
    ref = json.loads(out)[0]["id"]
    assert json.loads(out)[0]["opened_at"] == "2026-11-28T16:30:00+00:00"
    code, out = ng(config, "tickets", "show", ref)
    assert code == 0, out
    assert "  times:       Asia/Shanghai" in out.splitlines()
    assert any(line.startswith("  opened:      2026-11-29 00:30:00 (") for line in
               out.splitlines()), out
    assert "UTC" not in out
    history = out.split("history:\n", 1)[1]
    assert history.strip().startswith("2026-11-29 00:30:00"), history
    code, out = ng(config, "tickets", "show", ref, "--json")
    assert json.loads(out)["opened_at"] == "2026-11-28T16:30:00+00:00"
    assert json.loads(out)["events"][0]["at"].endswith("+00:00")


def test_csv_export_is_local_with_offsets_and_json_export_utc(config: Path) -> None:
    code, out = ng(config, "tickets", "export", "--since", "2026-11-29")
    assert code == 0, out
    rows = list(csv.DictReader(io.StringIO(out)))
    assert [r["target"] for r in rows] == ["olt-early"]
    assert rows[0]["opened_at"] == "2026-11-29T00:30:00+08:00"
    assert rows[0]["first_seen"] == "2026-11-29T00:30:00+08:00"
    assert rows[0]["sla_due"].endswith("+08:00")
    assert datetime.fromisoformat(rows[0]["opened_at"]) == EARLY
    code, out = ng(config, "tickets", "export", "--format", "json", "--since", "2026-11-29")
    assert code == 0, out
    assert json.loads(out)[0]["opened_at"] == "2026-11-28T16:30:00+00:00"
