"""The households/sensors/alerts/audit commands against a real SQLite store."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import sqlite3
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from netguard.config import load_settings
from netguard.iot.service import IotService
from netguard.store import Store
from netguard.store.config import StoreConfig
from netguard.store.db import upgrade
from tests.iot.conftest import ng


def _ingest(config: Path, messages: list[tuple[str, bytes]]) -> None:
    settings = load_settings(config)

    async def run() -> None:
        async with Store(settings.store) as store, IotService(settings.iot, store) as svc:
            for topic, payload in messages:
                await svc.ingest(topic, payload)

    asyncio.run(run())


def test_registry_alerts_and_audit_round_trip(config: Path, tmp_path: Path) -> None:
    start = (datetime.now(UTC) - timedelta(days=1)).isoformat()
    households = tmp_path / "households.csv"
    households.write_text(
        "id,community,label,start,end,sensor,format,address\n"
        f"B3-1201,lotus,Building 3 flat 1201,{start},,door-1201,native,\n"
        "B3-1202,lotus,Building 3 flat 1202,,,z-1202,zigbee2mqtt,door_1202\n")
    code, out = ng(config, "households", "import", str(households))
    assert code == 0, out
    assert "imported 2" in out

    code, out = ng(config, "households", "list", "--json")
    listed = {h["id"]: h for h in json.loads(out)}
    assert listed["B3-1201"]["quarantined"] is True
    assert listed["B3-1202"]["quarantined"] is False
    assert listed["B3-1202"]["sensors"] == ["z-1202"]

    code, out = ng(config, "households", "add", "B3-1203", "--community", "lotus",
                   "--from", start)
    assert code == 0, out
    code, out = ng(config, "sensors", "add", "shelly-1203", "--household", "B3-1203",
                   "--format", "shelly", "--address", "shellydw2-1203")
    assert code == 0, out
    code, out = ng(config, "sensors", "list", "--json")
    assert {s["id"] for s in json.loads(out)} == {"door-1201", "z-1202", "shelly-1203"}

    _ingest(config, [
        ("netguard/sensors/door-1201/event",
         b'{"sensor":"door-1201","seq":1,"event":"open","battery":80}'),
        ("netguard/sensors/door-1201/event", b'{"sensor":"door-1201","seq":2,"event":"close"}'),
        ("zigbee2mqtt/door_1202", b'{"contact":false,"battery":90}'),
        ("shellies/shellydw2-1203/sensor/battery", b"12"),
    ])

    code, out = ng(config, "sensors", "status", "--json")
    status = {s["id"]: s for s in json.loads(out)}
    assert status["door-1201"]["contact"] == "closed"
    assert status["door-1201"]["battery"] == 80
    assert status["door-1201"]["last_seen"] is not None
    assert status["shelly-1203"]["battery"] == 12

    code, out = ng(config, "alerts", "list", "--json")
    open_alerts = {(a["household"], a["type"]): a for a in json.loads(out)}
    # B3-1202 is not quarantined: its open door raised nothing.
    assert set(open_alerts) == {("B3-1201", "door_open"), ("B3-1203", "battery_low")}
    door = open_alerts[("B3-1201", "door_open")]
    code, out = ng(config, "alerts", "ack", str(door["id"]), "--by", "wang.fang")
    assert code == 0, out
    code, out = ng(config, "alerts", "show", str(door["id"]), "--json")
    shown = json.loads(out)
    assert shown["acked_by"] == "wang.fang"
    assert shown["state"] == "closed"
    code, out = ng(config, "alerts", "ack", str(door["id"]), "--by", "again")
    assert code == 4
    code, out = ng(config, "alerts", "show", "9999")
    assert code == 3

    # The export matches the stored events, in JSON and CSV.
    db = str(load_settings(config).store.path)
    with sqlite3.connect(db) as conn:
        stored = conn.execute("SELECT chain_seq, hash, kind FROM iot_event "
                              "WHERE household_id = 'B3-1201' ORDER BY chain_seq").fetchall()
    code, out = ng(config, "audit", "export", "--household", "B3-1201", "--format", "json")
    assert code == 0, out
    exported = json.loads(out)
    assert [(e["chain_seq"], e["hash"], e["kind"]) for e in exported["events"]] == stored
    assert exported["events"][0]["payload"].startswith('{"sensor":"door-1201"')
    assert [a["acked_by"] for a in exported["alerts"]] == ["wang.fang"]
    code, out = ng(config, "audit", "export", "--household", "B3-1201", "--format", "csv")
    rows = list(csv.DictReader(io.StringIO(out)))
    assert [(int(r["chain_seq"]), r["hash"], r["kind"]) for r in rows] == stored
    # --excel: the same rows behind a UTF-8 byte order mark, for spreadsheet tools.
    excel_file = tmp_path / "record.csv"
    code, out = ng(config, "audit", "export", "--household", "B3-1201", "--format", "csv",
                   "--excel", "-o", str(excel_file))
    assert code == 0, out
    assert excel_file.read_bytes().startswith(b"\xef\xbb\xbf")
    rows = list(csv.DictReader(io.StringIO(excel_file.read_text(encoding="utf-8-sig"))))
    assert [(int(r["chain_seq"]), r["hash"], r["kind"]) for r in rows] == stored
    code, out = ng(config, "audit", "export", "--household", "B3-1201", "--excel")
    assert code == 2
    assert "--excel is for --format csv" in out
    code, out = ng(config, "audit", "export", "--household", "B3-1201", "--format", "csv",
                   "--from", (datetime.now(UTC) + timedelta(hours=1)).isoformat())
    assert list(csv.DictReader(io.StringIO(out))) == []

    code, out = ng(config, "audit", "verify")
    assert code == 0, out
    assert "ok: 4 events" in out
    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE iot_event SET contact = 'open' WHERE chain_seq = 2")
    code, out = ng(config, "audit", "verify", "--json")
    assert code == 1
    [problem] = json.loads(out)["problems"]
    assert problem["chain_seq"] == 2

    code, out = ng(config, "households", "end", "B3-1201")
    assert code == 0, out
    code, out = ng(config, "households", "show", "B3-1201", "--json")
    assert json.loads(out)["quarantined"] is False
    code, out = ng(config, "households", "end", "nope")
    assert code == 3


def test_import_is_all_or_nothing(config: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("id,community,label,start,end\nA1,c,,,\nA2,c,,not-a-time,\n")
    code, out = ng(config, "households", "import", str(bad))
    assert code == 2, out
    assert "line 3" in out
    assert "nothing imported" in out
    code, out = ng(config, "households", "list", "--json")
    assert json.loads(out) == []


@pytest.mark.parametrize(("content", "expected"), [
    ("household,community\nA1,c\n", "missing column(s): id"),
    ("id,community,lable\nA1,c,x\n", "unknown column(s): lable"),
    ("id\nA1\n", "missing column(s): community"),
    ("", "missing column(s): id, community"),
])
def test_import_with_a_bad_header_exits_2_naming_the_columns(
        config: Path, tmp_path: Path, content: str, expected: str) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text(content)
    code, out = ng(config, "households", "import", str(bad))
    assert code == 2, out
    assert expected in out
    assert "Traceback" not in out


def test_import_names_the_line_of_a_bad_row(config: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad.csv"
    # A quoted label over two lines is refused (labels are one line), naming line 3
    # where that row ends; a surplus field is named by its line too.
    bad.write_text('id,community,label\nA1,"c","two, still\none line"\nA2,c,x,surplus\n')
    code, out = ng(config, "households", "import", str(bad))
    assert code == 2, out
    assert "line 3" in out  # a label is one line: no control characters
    assert "control character" in out
    bad.write_text('id,community,label\nA1,c,"two, but one line"\nA2,c,x,surplus\n')
    code, out = ng(config, "households", "import", str(bad))
    assert code == 2, out
    assert "line 3" in out
    assert "more fields than the header" in out
    code, out = ng(config, "households", "list", "--json")
    assert json.loads(out) == []
    # A duplicate of a stored household is a bad row too, and nothing else is imported.
    good = tmp_path / "good.csv"
    good.write_text("id,community\nA1,c\n")
    assert ng(config, "households", "import", str(good))[0] == 0
    dup = tmp_path / "dup.csv"
    dup.write_text("id,community\nA3,c\nA1,c\n")
    code, out = ng(config, "households", "import", str(dup))
    assert code == 2, out
    assert "line 3" in out
    assert "already exists" in out
    code, out = ng(config, "households", "list", "--json")
    assert [h["id"] for h in json.loads(out)] == ["A1"]


@pytest.mark.parametrize("args", [
    ["alerts", "list"], ["alerts", "show", "1"], ["households", "list"],
    ["households", "show", "A1"], ["sensors", "list"], ["sensors", "status"],
    ["audit", "verify"], ["audit", "export", "--household", "A1"],
    ["households", "add", "A1", "--community", "c"],
])
def test_a_mistyped_database_path_is_reported_not_created(tmp_path: Path,
                                                          args: list[str]) -> None:
    db = tmp_path / "typo.db"
    path = tmp_path / "netguard.yaml"
    path.write_text(f"store:\n  path: {db}\n")
    code, out = ng(path, *args)
    assert code == 5, out
    assert f"no database at {db} (run netguard db upgrade)" in out
    assert not db.exists()


def test_with_auto_upgrade_only_a_write_creates_the_database(tmp_path: Path) -> None:
    db = tmp_path / "new.db"
    path = tmp_path / "netguard.yaml"
    path.write_text(f"store:\n  path: {db}\n  auto_upgrade: true\n")
    code, out = ng(path, "households", "list")
    assert code == 5, out
    assert not db.exists()
    code, out = ng(path, "households", "add", "A1", "--community", "c")
    assert code == 0, out
    code, out = ng(path, "households", "list", "--json")
    assert [h["id"] for h in json.loads(out)] == ["A1"]


@pytest.mark.parametrize(("args", "expected"), [
    # Times are echoed in display.timezone (Asia/Shanghai by default) ...
    (["--from", "2026-03-02T00:00+00:00", "--to", "2026-03-01T00:00+00:00"],
     "--from 2026-03-02T08:00:00+08:00 is not before --to 2026-03-01T08:00:00+08:00"),
    # ... and a time without an offset is read there.
    (["--from", "2026-03-01T08:00+08:00", "--to", "2026-03-01T00:00"],
     "--from 2026-03-01T08:00:00+08:00 is not before --to 2026-03-01T00:00:00+08:00"),
    (["--from", "yesterday"], "--from: not an ISO 8601 date or time: 'yesterday' (e.g. "
     "2026-11-29 or 2026-11-29T08:00, read in Asia/Shanghai, or with an offset like "
     "+08:00)"),
    (["--to", "2026-13-01"], "--to: not an ISO 8601 date or time: '2026-13-01' (e.g. "
     "2026-11-29 or 2026-11-29T08:00, read in Asia/Shanghai, or with an offset like "
     "+08:00)"),
    (["--format", "xml"], "--format must be csv or json"),
])
def test_audit_export_refuses_bad_ranges_in_one_line(config: Path, args: list[str],
                                                     expected: str) -> None:
    assert ng(config, "households", "add", "A1", "--community", "c")[0] == 0
    code, out = ng(config, "audit", "export", "--household", "A1", *args)
    assert code == 2, out
    assert out.strip().splitlines() == [f"error: {expected}"]


@pytest.mark.parametrize(("args", "expected"), [
    (["sensors", "status", "--household", "NOPE"], "unknown household 'NOPE'"),
    (["sensors", "list", "--household", "NOPE"], "unknown household 'NOPE'"),
    (["alerts", "list", "--household", "NOPE"], "unknown household 'NOPE'"),
    (["households", "show", "NOPE"], "unknown household 'NOPE'"),
    (["alerts", "show", "99999"], "unknown alert '99999'"),
    (["alerts", "ack", "99999", "--by", "op"], "unknown alert '99999'"),
    (["audit", "export", "--household", "NOPE"], "unknown household 'NOPE'"),
])
def test_unknown_ids_exit_3(config: Path, args: list[str], expected: str) -> None:
    assert ng(config, "households", "add", "A1", "--community", "c")[0] == 0
    code, out = ng(config, *args)
    assert code == 3, out
    assert out.strip().splitlines() == [f"error: {expected}"]
    # A known household with no sensors is not an error.
    code, out = ng(config, "sensors", "status", "--household", "A1")
    assert (code, out.strip()) == (0, "(none)")


def _anchored_config(tmp_path: Path, key: str | None) -> tuple[Path, Path]:
    db = tmp_path / "anchored.db"
    asyncio.run(upgrade(StoreConfig(path=db)))
    anchors = tmp_path / "anchors.jsonl"
    path = tmp_path / "anchored.yaml"
    text = f"store:\n  path: {db}\niot:\n  audit_anchor:\n    file: {anchors}\n"
    if key is not None:
        (tmp_path / "audit.key").write_text(key + "\n")
        text += f"  audit_key_file: {tmp_path / 'audit.key'}\n"
    path.write_text(text)
    return path, anchors


def test_audit_verify_against_anchors_and_accept_head(tmp_path: Path) -> None:
    config, anchors = _anchored_config(tmp_path, "cli-audit-key")
    _ingest(config, [("zigbee2mqtt/nobody", b"{}"), ("zigbee2mqtt/nobody", b"[]")])
    code, out = ng(config, "audit", "verify", "--anchor", str(anchors))
    assert code == 0, out
    assert "ok: 2 events in 1 chain verifies, and match" in out

    with sqlite3.connect(tmp_path / "anchored.db") as conn:
        conn.execute("DELETE FROM iot_event WHERE chain_seq = 2")
    code, out = ng(config, "audit", "verify")
    assert code == 0, out  # the chain alone cannot tell
    code, out = ng(config, "audit", "verify", "--anchor", str(anchors))
    assert code == 1
    assert "BAD: chain 'netguard' ends at seq 1, but was anchored at seq 2" in out

    code, out = ng(config, "audit", "accept-head", "--reason", "restored backup", "--by", "li")
    assert code == 0, out
    assert "accepted netguard at seq 1" in out
    code, out = ng(config, "audit", "verify", "--anchor", str(anchors), "--json")
    assert code == 0, out
    data = json.loads(out)
    assert data["ok"] is True
    assert "li: restored backup" in data["notes"][0]


def test_audit_verify_without_the_key_says_the_store_is_keyed(tmp_path: Path) -> None:
    config, _anchors = _anchored_config(tmp_path, "cli-audit-key")
    _ingest(config, [("zigbee2mqtt/nobody", b"{}")])
    keyless = tmp_path / "keyless.yaml"
    keyless.write_text(f"store:\n  path: {tmp_path / 'anchored.db'}\n")
    code, out = ng(keyless, "audit", "verify")
    assert code == 1
    assert out.strip() == ("BAD: this store is keyed; give audit_key "
                           "(iot.audit_key or iot.audit_key_file)")


def test_audit_verify_counts_chains_in_words(config: Path) -> None:
    code, out = ng(config, "audit", "verify")
    assert code == 0, out
    assert "ok: 0 events in 0 chains verify" in out


def test_audit_export_into_a_closed_pipe_exits_quietly(tmp_path: Path) -> None:
    config, _anchors = _anchored_config(tmp_path, None)
    _ingest(config, [])
    code, out = ng(config, "households", "add", "H1", "--community", "c1")
    assert code == 0, out
    _ingest(config, [("zigbee2mqtt/nobody", b"{}")])
    # A reader that has what it wants and leaves before netguard writes (`| head -c0`).
    proc = subprocess.Popen(
        [sys.executable, "-c", "from netguard.cli import app; app()", "audit", "export",
         "--household", "H1", "--config", str(config)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout is not None
    proc.stdout.close()
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    assert err == b""


def test_households_allow_daily_reads_dates_in_the_districts_zone(config: Path) -> None:
    assert ng(config, "households", "add", "A1", "--community", "c")[0] == 0
    code, out = ng(config, "households", "allow", "A1", "--daily", "22:00-06:00",
                   "--from", "2026-03-01", "--until", "2026-03-15", "--reason", "night shift")
    assert code == 0, out
    assert "daily 22:00-06:00 (Asia/Shanghai), 2026-03-01T00:00:00+08:00" in out
    code, out = ng(config, "households", "allow", "A1", "--daily", "18:00-18:30",
                   "--days", "mon-fri", "--from", "2026-03-01", "--to", "2026-03-15")
    assert code == 0, out
    code, out = ng(config, "households", "show", "A1", "--json")
    windows = json.loads(out)["allowed_windows"]
    assert [(w["repeat"], w["timezone"], w["start"]) for w in windows] == [
        ("daily 22:00-06:00", "Asia/Shanghai", "2026-02-28T16:00:00+00:00"),
        ("mon,tue,wed,thu,fri 18:00-18:30", "Asia/Shanghai", "2026-02-28T16:00:00+00:00")]


@pytest.mark.parametrize(("args", "expected"), [
    (["--daily", "18:00"], "expected 'DAYS HH:MM-HH:MM'"),
    (["--daily", "18:00-18:30", "--days", "someday"], "unknown day 'someday'"),
    (["--days", "mon"], "--days needs --daily"),
    (["--daily", "18:00-18:30", "--from", "yesterday"], "not an ISO 8601 date or time"),
])
def test_households_allow_refuses_bad_recurring_windows(config: Path, args: list[str],
                                                        expected: str) -> None:
    assert ng(config, "households", "add", "A1", "--community", "c")[0] == 0
    base = {"--from": "2026-03-01", "--until": "2026-03-15"}
    for i, a in enumerate(args):
        if a in base:
            base[a] = args[i + 1]
    rest = [a for i, a in enumerate(args) if a not in base and (i == 0 or args[i - 1]
                                                                  not in base)]
    code, out = ng(config, "households", "allow", "A1", *rest,
                   *[x for kv in base.items() for x in kv])
    assert code == 2, out
    assert expected in out
    code, out = ng(config, "households", "show", "A1", "--json")
    assert json.loads(out)["allowed_windows"] == []
