"""The door-sensor commands read and show times in display.timezone (Asia/Shanghai, the
default), through the real CLI against a real SQLite store; JSON stays UTC."""

from __future__ import annotations

import asyncio
import csv
import io
import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from netguard.clock import ManualClock
from netguard.config import load_settings
from netguard.iot.service import IotService
from netguard.store import Store
from tests.iot.conftest import ng

# 18:15 in Shanghai.
T = datetime(2026, 3, 5, 10, 15, tzinfo=UTC)


@pytest.fixture
def estate(config: Path) -> Path:
    """Household H1 quarantined from 2026-03-01 (a naive date, so Shanghai's midnight),
    its door sensor opened at T, and one message from an unknown sensor set aside."""
    code, out = ng(config, "households", "add", "H1", "--community", "lotus", "--from",
                   "2026-03-01")
    assert code == 0, out
    code, out = ng(config, "sensors", "add", "door-1", "--household", "H1")
    assert code == 0, out
    settings = load_settings(config)

    async def run() -> None:
        async with Store(settings.store) as store, IotService(
                settings.iot, store, clock=ManualClock(T)) as svc:
            await svc.ingest("netguard/sensors/door-1/event",
                             b'{"sensor":"door-1","seq":1,"event":"open"}')
            await svc.ingest("netguard/sensors/ghost/event",
                             b'{"sensor":"ghost","seq":1,"event":"open"}')

    asyncio.run(run())
    return config


def _json(config: Path, *args: str) -> object:
    code, out = ng(config, *args, "--json")
    assert code == 0, out
    return json.loads(out)


def _line_with(out: str, text: str) -> str:
    return next(line for line in out.splitlines() if text in line)


def test_a_naive_from_is_read_in_the_display_zone(estate: Path) -> None:
    shown = _json(estate, "households", "show", "H1")
    assert isinstance(shown, dict)
    assert shown["quarantines"][0]["start"] == "2026-02-28T16:00:00+00:00"
    code, out = ng(estate, "households", "show", "H1")
    assert code == 0, out
    assert "times in Asia/Shanghai:" in out.splitlines()
    assert "  quarantine 2026-03-01 00:00:00 - open" in out.splitlines()


def test_alert_and_sensor_tables_show_local_times(estate: Path) -> None:
    [alert] = _json(estate, "alerts", "list")  # type: ignore[misc]
    assert alert["last_seen"] == "2026-03-05T10:15:00+00:00"
    code, out = ng(estate, "alerts", "list")
    assert code == 0, out
    assert "LAST_SEEN (Asia/Shanghai)" in out.splitlines()[0]
    assert out.count("Asia/Shanghai") == 1
    assert "2026-03-05 18:15:00" in _line_with(out, "door_open")
    code, out = ng(estate, "alerts", "show", str(alert["id"]))
    assert code == 0, out
    assert _line_with(out, "times in").split(": ", 1)[1] == "Asia/Shanghai"
    assert _line_with(out, "first_seen").endswith(": 2026-03-05 18:15:00")
    # The reason is shown as stored (the audit trail): English, UTC.
    assert _line_with(out, "reason").endswith(
        "door opened at 2026-03-05T10:15:00+00:00 during quarantine of household H1")
    code, out = ng(estate, "sensors", "status")
    assert "LAST_SEEN (Asia/Shanghai)" in out.splitlines()[0]
    assert "2026-03-05 18:15:00" in _line_with(out, "door-1")


def test_audit_export_reads_naive_times_locally_and_writes_local_csv(estate: Path) -> None:
    def events(*args: str) -> list[dict[str, str]]:
        code, out = ng(estate, "audit", "export", "--household", "H1", "--format", "csv",
                       *args)
        assert code == 0, out
        return list(csv.DictReader(io.StringIO(out)))

    # 18:00 and 18:30 Shanghai bracket the opening at 18:15; read as UTC, both would be
    # after it.
    [row] = events("--from", "2026-03-05T18:00")
    assert events("--from", "2026-03-05T18:30") == []
    assert len(events("--from", "2026-03-05", "--to", "2026-03-06")) == 1
    assert row["received_at"] == "2026-03-05T18:15:00+08:00"
    assert datetime.fromisoformat(row["received_at"]) == T
    record = _json_export(estate)
    assert record["events"][0]["received_at"] == "2026-03-05T10:15:00+00:00"
    assert record["from"] == "2026-03-04T16:00:00+00:00"


def _json_export(config: Path) -> dict[str, object]:
    code, out = ng(config, "audit", "export", "--household", "H1", "--from", "2026-03-05")
    assert code == 0, out
    data = json.loads(out)
    assert isinstance(data, dict)
    return data


def test_deadletters_since_is_local_and_the_table_names_the_zone(estate: Path) -> None:
    assert len(_json(estate, "deadletters", "list", "--since",  # type: ignore[arg-type]
                     "2026-03-05T18:00")) == 1
    assert _json(estate, "deadletters", "list", "--since", "2026-03-05T18:30") == []
    code, out = ng(estate, "deadletters", "list")
    assert code == 0, out
    assert "RECEIVED_AT (Asia/Shanghai)" in out.splitlines()[0]
    assert "2026-03-05 18:15:00" in _line_with(out, "ghost")


def test_households_end_at_a_naive_time(estate: Path) -> None:
    code, out = ng(estate, "households", "end", "H1", "--at", "2026-03-06T09:00")
    assert code == 0, out
    assert "quarantine ended at 2026-03-06T09:00:00+08:00" in out
    shown = _json(estate, "households", "show", "H1")
    assert isinstance(shown, dict)
    assert shown["quarantines"][0]["end"] == "2026-03-06T01:00:00+00:00"


@pytest.mark.parametrize("args", [
    ["households", "end", "H1", "--at", "tomorrow"],
    ["households", "quarantine", "H1", "--from", "2026-02-30"],
    ["households", "add", "H2", "--community", "c", "--to", "2026-03-01T24:30"],
    ["deadletters", "list", "--since", "x" * 100],
    ["audit", "export", "--from", "", "--household", "H1"],
])
def test_a_bad_time_exits_2_naming_the_option(estate: Path, args: list[str]) -> None:
    code, out = ng(estate, *args)
    assert code == 2, out
    option = next(a for a in args if a.startswith("--") and a != "--community")
    assert out.startswith(f"error: {option}: "), out
    assert len(out.strip().splitlines()) == 1


def test_households_import_reads_naive_times_in_the_display_zone(config: Path,
                                                                  tmp_path: Path) -> None:
    rows = tmp_path / "h.csv"
    rows.write_text("id,community,label,start,end\n"
                    "A1,lotus,,2026-03-01,2026-03-15T12:00\n"
                    "A2,lotus,,2026-03-01T00:00+00:00,\n")
    code, out = ng(config, "households", "import", str(rows))
    assert code == 0, out
    starts = {h: _json(config, "households", "show", h) for h in ("A1", "A2")}
    assert starts["A1"]["quarantines"] == [  # type: ignore[index]
        {"start": "2026-02-28T16:00:00+00:00", "end": "2026-03-15T04:00:00+00:00"}]
    assert starts["A2"]["quarantines"][0]["start"] == (  # type: ignore[index]
        "2026-03-01T00:00:00+00:00")
    rows.write_text("id,community,label,start,end\nA3,lotus,,next monday,\n")
    code, out = ng(config, "households", "import", str(rows))
    assert code == 2, out
    assert "line 2: start is not an ISO 8601 date or time: 'next monday'" in out
