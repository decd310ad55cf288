"""``netguard tickets`` and ``netguard db`` as subprocesses, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import os
import subprocess
import sys
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml

from netguard.clock import ManualClock
from netguard.faults import FaultCleared, FaultKey, FaultOpened
from netguard.store import Store
from netguard.store.config import StoreConfig
from netguard.store.db import upgrade
from netguard.tickets.config import TicketsConfig
from netguard.tickets.domain import ALLOWED_ACTIONS, TICKET_FIELDS, TicketAction, TicketState
from netguard.tickets.service import TicketService

NETGUARD = str(Path(sys.executable).parent / "netguard")

Run = Callable[..., subprocess.CompletedProcess[str]]


def _config_file(tmp_path: Path, store: StoreConfig, **store_extra: object) -> Path:
    data: dict[str, object] = {"store": {**store_extra}}
    if store.url is not None:
        data["store"]["url"] = store.url.get_secret_value()  # type: ignore[index]
    else:
        data["store"]["path"] = str(store.path)  # type: ignore[index]
    data["tickets"] = {"sites": [{"id": "hotel-1", "criticality": "quarantine_hotel"}]}
    path = tmp_path / "netguard.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def _runner(config: Path, tmp_path: Path) -> Run:
    def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        full_env = {k: v for k, v in os.environ.items() if k != "NETGUARD_OPERATOR"}
        full_env.update(env or {})
        return subprocess.run([NETGUARD, *args, "--config", str(config)], cwd=tmp_path,
                              capture_output=True, text=True, env=full_env, timeout=60,
                              check=False)

    return run


@pytest.fixture
def ng(store_config: StoreConfig, tmp_path: Path) -> Run:
    """Run ``netguard`` against a migrated store; returns the completed process."""
    asyncio.run(upgrade(store_config))
    return _runner(_config_file(tmp_path, store_config), tmp_path)


ACTION_ARGS: dict[TicketAction, list[str]] = {
    TicketAction.ACKNOWLEDGE: ["ack"],
    TicketAction.ASSIGN: ["assign", "--to", "dana"],
    TicketAction.COMMENT: ["comment", "-m", "a note"],
    TicketAction.RESOLVE: ["resolve", "-m", "fixed"],
    TicketAction.CLOSE: ["close"],
    TicketAction.REOPEN: ["reopen", "-m", "again"],
}
RESULT = {TicketAction.ACKNOWLEDGE: "acknowledged", TicketAction.RESOLVE: "resolved",
          TicketAction.CLOSE: "closed", TicketAction.REOPEN: "open"}


def _act(ng: Run, action: TicketAction, ref: str, *extra: str
         ) -> subprocess.CompletedProcess[str]:
    verb, *rest = ACTION_ARGS[action]
    return ng("tickets", verb, ref, *rest, "--by", "op", *extra)


def test_cli_every_transition(ng: Run, store_config: StoreConfig) -> None:
    combos = [(state, action) for state in TicketState for action in TicketAction]

    async def setup() -> list[str]:
        async with Store(store_config) as store:
            service = TicketService(store, TicketsConfig())
            refs = []
            for n, (state, _) in enumerate(combos):
                t = await service.open(category="fiber", summary=f"ticket {n}",
                                       severity="minor", target=f"t-{n}", actor="setup")
                if state is not TicketState.OPEN and state is not TicketState.ACKNOWLEDGED:
                    await service.resolve(t.ref, actor="setup", message="done")
                if state is TicketState.ACKNOWLEDGED:
                    await service.acknowledge(t.ref, actor="setup")
                if state is TicketState.CLOSED:
                    await service.close(t.ref, actor="setup")
                refs.append(t.ref)
            return refs

    refs = asyncio.run(setup())
    expected: dict[str, tuple[str, int]] = {}
    for ref, (state, action) in zip(refs, combos, strict=True):
        result = _act(ng, action, ref, "--json")
        if action in ALLOWED_ACTIONS[state]:
            assert result.returncode == 0, (state, action, result.stderr)
            ticket = json.loads(result.stdout)
            assert ticket["state"] == RESULT.get(action, state.value), (state, action)
            expected[ref] = (ticket["state"], 1)
        else:
            assert result.returncode == 4, (state, action, result.stdout)
            allowed = ", ".join(a.value for a in ALLOWED_ACTIONS[state])
            assert result.stderr.strip() == (
                f"error: cannot {action.value} {ref}: it is {state.value}; "
                f"allowed actions: {allowed}")
            expected[ref] = (state.value, 0)

    async def verify() -> None:
        async with Store(store_config) as store:
            service = TicketService(store, TicketsConfig())
            for ref, (state, new_events) in expected.items():
                detail = await service.detail(ref)
                assert detail.ticket.state.value == state, ref
                by_op = [e for e in detail.events if e.actor == "op"]
                assert len(by_op) == new_events, ref

    asyncio.run(verify())


def test_cli_unknown_ids_exit_3(ng: Run) -> None:
    # Exit 3 is for a well-formed id of this installation that does not exist.
    for args in (["show", "NG-000404"], ["ack", "NG-000404"], ["close", "404"],
                 ["comment", "NG-000009", "-m", "x"]):
        result = ng("tickets", *args)
        assert result.returncode == 3, (args, result.stderr)
        assert result.stderr.startswith("error: unknown ticket"), result.stderr


def test_cli_wrong_prefix_or_non_id_is_a_usage_error_and_touches_nothing(
        ng: Run, store_config: StoreConfig) -> None:
    opened = ng("tickets", "open", "--category", "pon", "--site", "hotel-1", "--summary",
                "hotel broadband down", "--by", "alice")
    assert opened.returncode == 0, opened.stderr
    before = json.loads(ng("tickets", "show", "NG-000001", "--json").stdout)

    wrong = ng("tickets", "comment", "XYZ-000001", "-m", "meant for another team")
    assert wrong.returncode == 2, wrong.stderr
    assert wrong.stderr.strip() == (
        "error: 'XYZ-000001' is not a ticket of this installation: its ticket ids start "
        "with NG- (tickets.id_prefix), e.g. NG-000001")
    for args in (["ack", "XYZ-000001"], ["resolve", "ops-1", "-m", "x"],
                 ["show", "XYZ-000001"]):
        result = ng("tickets", *args)
        assert result.returncode == 2, (args, result.stderr)
        assert "start with NG-" in result.stderr, (args, result.stderr)
    for args in (["ack", "bogus"], ["show", "NG-"], ["close", "NG-0"], ["comment", "1.5",
                                                                         "-m", "x"]):
        result = ng("tickets", *args)
        assert result.returncode == 2, (args, result.stderr)
        assert "not a ticket id" in result.stderr, (args, result.stderr)
        assert "expected e.g. NG-000123" in result.stderr

    after = json.loads(ng("tickets", "show", "NG-000001", "--json").stdout)
    assert after == before  # no comment, no acknowledgement, nothing
    # The configured prefix in any case, or no prefix, still reaches the ticket.
    assert ng("tickets", "ack", "ng-1").returncode == 0
    assert ng("tickets", "comment", "1", "-m", "ok").returncode == 0


def test_cli_wrong_prefix_under_a_custom_prefix(store_config: StoreConfig,
                                                tmp_path: Path) -> None:
    asyncio.run(upgrade(store_config))
    config = _config_file(tmp_path, store_config)
    data = yaml.safe_load(config.read_text())
    data["tickets"]["id_prefix"] = "DEMO"
    config.write_text(yaml.safe_dump(data))
    ng = _runner(config, tmp_path)
    opened = ng("tickets", "open", "--category", "pon", "--site", "hotel-1", "--summary",
                "x", "--json")
    assert json.loads(opened.stdout)["id"] == "DEMO-000001"
    wrong = ng("tickets", "comment", "NG-000001", "-m", "x")
    assert wrong.returncode == 2
    assert "start with DEMO- (tickets.id_prefix), e.g. DEMO-000001" in wrong.stderr
    assert ng("tickets", "comment", "DEMO-000001", "-m", "x").returncode == 0


def test_cli_show_lists_history_in_time_order_and_resolved_reads_resolved(
        store_config: StoreConfig, tmp_path: Path) -> None:
    asyncio.run(upgrade(store_config))
    ng = _runner(_config_file(tmp_path, store_config), tmp_path)
    start = datetime(2026, 11, 29, 8, 0, tzinfo=UTC)
    clock = ManualClock(start + timedelta(minutes=10))
    key = FaultKey("olt-1", "if:3", "oper_down")

    def fault(minutes: int) -> FaultOpened:
        return FaultOpened(key=key, category="fiber", site=None, severity="major",
                           summary="olt-1 down", reasons=("if:3 down",),
                           at=start + timedelta(minutes=minutes))

    async def setup() -> str:
        async with Store(store_config) as store:
            service = TicketService(store, TicketsConfig(resolve_hold_seconds=60),
                                    clock=clock)
            await service.handle(fault(0))
            ref = (await service.list())[0].ref
            # An operator comments at 08:10; a repeat observed at 08:05 arrives later
            # (a backlog drained after the store came back).
            await service.comment(ref, "looking", actor="op")
            await service.handle(fault(5))
            await service.handle(FaultCleared(key=key, at=start + timedelta(minutes=11),
                                              reasons=("recovered",)))
            clock.advance(300)
            await service.sweep()
            return ref

    ref = asyncio.run(setup())
    shown = json.loads(ng("tickets", "show", ref, "--json").stdout)
    assert shown["state"] == "resolved"
    times = [e["at"] for e in shown["events"]]
    assert times == sorted(times), shown["events"]
    assert [e["action"] for e in shown["events"]][:3] == ["opened", "repeat", "commented"]
    text = ng("tickets", "show", ref).stdout
    history = text.split("history:\n", 1)[1].split("\nnotifications", 1)[0].splitlines()
    assert [line.split("  ")[3] for line in history][:3] == ["opened", "repeat", "commented"]
    assert "resolving after the hold" not in text
    assert f"{ref}  MAJOR  resolved" in text.splitlines()[0]
    # Times in display.timezone (Asia/Shanghai by default): 08:11 UTC is 16:11 there.
    assert "  cleared:     2026-11-29 16:11:00" in text.splitlines()


def test_cli_bad_input_exits_2(ng: Run) -> None:
    cases = [
        (["list", "--state", "bogus"], "--state 'bogus'"),
        (["list", "--since", "yesterday"], "--since 'yesterday'"),
        (["list", "--severity", "urgent"], "unknown severity 'urgent'"),
        (["export", "--format", "xml"], "--format 'xml'"),
        (["export", "--format", "json", "--excel"], "--excel is for --format csv"),
        (["open", "--category", "pon", "--summary", "x"], "needs a target or a site"),
        (["open", "--category", "pon", "--summary", "x", "--site", "s", "--severity", "hi"],
         "unknown severity 'hi'"),
    ]
    for args, message in cases:
        result = ng("tickets", *args)
        assert result.returncode == 2, (args, result.stderr)
        assert message in result.stderr, (args, result.stderr)
    missing = ng("tickets", "resolve", "NG-000001")  # -m is required
    assert missing.returncode == 2


def test_cli_actor_and_history(ng: Run) -> None:
    by = ng("tickets", "open", "--category", "pon", "--site", "hotel-1", "--summary",
            "hotel broadband down", "--severity", "critical", "--by", "alice")
    assert by.returncode == 0, by.stderr
    assert by.stdout.strip() == "NG-000001 opened by alice (now open)"
    env = ng("tickets", "ack", "NG-000001", "-m", "on my way",
             env={"NETGUARD_OPERATOR": "bob"})
    assert env.stdout.strip() == "NG-000001 acknowledged by bob (now acknowledged)"
    login = ng("tickets", "comment", "NG-000001", "-m", "fiber spliced")
    assert login.returncode == 0, login.stderr
    shown = json.loads(ng("tickets", "show", "NG-000001", "--json").stdout)
    actors = [(e["actor"], e["action"], e["old_state"], e["new_state"], e["message"])
              for e in shown["events"]]
    assert actors[:2] == [
        ("alice", "opened", None, "open", "hotel broadband down"),
        ("bob", "acknowledged", "open", "acknowledged", "on my way"),
    ]
    assert actors[2][1:] == ("commented", "acknowledged", "acknowledged", "fiber spliced")
    assert actors[2][0] not in ("", "alice", "bob")  # the login name
    assert all(e["at"].endswith("+00:00") for e in shown["events"])
    text = ng("tickets", "show", "NG-000001")
    assert text.returncode == 0
    assert "history:" in text.stdout
    assert "bob  acknowledged  open -> acknowledged  on my way" in text.stdout


def test_cli_list_export_and_filters(ng: Run) -> None:
    specs = [("fiber", "t-1", "minor"), ("pon", "t-2", "critical"),
             ("wireless", "t-3", "major"), ("fiber", "t-4", "warning")]
    for category, target, severity in specs:
        assert ng("tickets", "open", "--category", category, "--target", target,
                  "--summary", f"{target} down", "--severity", severity).returncode == 0
    assert ng("tickets", "resolve", "NG-000004", "-m", "ok").returncode == 0
    assert ng("tickets", "close", "NG-000004").returncode == 0
    assert ng("tickets", "assign", "NG-000001", "--to", "erin").returncode == 0

    table = ng("tickets", "list")
    assert table.returncode == 0, table.stderr
    lines = table.stdout.splitlines()
    assert lines[0].split()[:3] == ["ID", "SEVERITY", "STATE"]
    assert [line.split()[0] for line in lines[1:]] == ["NG-000002", "NG-000003", "NG-000001"]

    def ids(*args: str) -> list[str]:
        result = ng("tickets", "list", "--json", *args)
        assert result.returncode == 0, result.stderr
        rows = json.loads(result.stdout)
        assert all(tuple(row) == TICKET_FIELDS for row in rows)
        return [row["id"] for row in rows]

    assert ids() == ["NG-000002", "NG-000003", "NG-000001"]
    assert ids("--state", "all") == ["NG-000002", "NG-000003", "NG-000001", "NG-000004"]
    assert ids("--state", "closed") == ["NG-000004"]
    assert ids("--category", "fiber", "--state", "open,closed") == ["NG-000001", "NG-000004"]
    assert ids("--severity", "critical", "--severity", "major") == ["NG-000002", "NG-000003"]
    assert ids("--target", "t-3") == ["NG-000003"]
    assert ids("--assignee", "erin") == ["NG-000001"]
    assert ids("--since", "1h") == ["NG-000002", "NG-000003", "NG-000001"]
    assert ids("--since", "2000-01-01T00:00") == ["NG-000002", "NG-000003", "NG-000001"]
    assert ids("--since", "2999-01-01T00:00+08:00") == []
    assert ids("--overdue") == []
    assert ids("--limit", "2") == ["NG-000002", "NG-000003"]

    paged = ng("tickets", "list", "--limit", "2")
    assert "first 2 shown" in paged.stdout
    assert "first" not in ng("tickets", "list", "--all").stdout

    exported = ng("tickets", "export", "--format", "csv")
    assert exported.returncode == 0, exported.stderr
    rows = list(csv.reader(io.StringIO(exported.stdout)))
    assert tuple(rows[0]) == TICKET_FIELDS
    assert [r[0] for r in rows[1:]] == ["NG-000002", "NG-000003", "NG-000001", "NG-000004"]
    as_json = json.loads(ng("tickets", "export", "--format", "json", "--category",
                            "fiber").stdout)
    assert [r["id"] for r in as_json] == ["NG-000001", "NG-000004"]
    assert as_json[0]["assignee"] == "erin"


def test_cli_empty_list(ng: Run, tmp_path: Path) -> None:
    result = ng("tickets", "list")
    assert (result.returncode, result.stdout.strip()) == (0, "no tickets match")
    assert json.loads(ng("tickets", "list", "--json").stdout) == []
    exported = ng("tickets", "export", "--format", "csv")
    assert exported.stdout.splitlines() == [",".join(TICKET_FIELDS)]
    # --excel: UTF-8 with a byte order mark, on stdout and in a file.
    excel = ng("tickets", "export", "--excel")
    assert excel.stdout.startswith("\ufeff")
    assert excel.stdout[1:].splitlines() == [",".join(TICKET_FIELDS)]
    assert ng("tickets", "export", "--excel", "-o", "t.csv").returncode == 0
    data = (tmp_path / "t.csv").read_bytes()
    assert data.startswith(b"\xef\xbb\xbf" + ",".join(TICKET_FIELDS).encode())


def test_cli_refuses_outdated_schema(store_config: StoreConfig, tmp_path: Path) -> None:
    ng = _runner(_config_file(tmp_path, store_config), tmp_path)
    for args in (["tickets", "list"], ["tickets", "export"], ["tickets", "ack", "NG-000001"],
                 ["tickets", "show", "NG-000001"]):
        result = ng(*args)
        assert result.returncode == 5, (args, result.stderr)
        advice = ("run `netguard db upgrade`" if store_config.url is not None
                  else f"no database at {store_config.path} (run netguard db upgrade)")
        assert advice in result.stderr
    current = json.loads(ng("db", "current", "--json").stdout)
    assert current["current"] is None
    assert current["up_to_date"] is False
    asyncio.run(upgrade(store_config, "0001_tickets"))
    old = ng("tickets", "list")
    assert old.returncode == 5
    assert "schema is at 0001_tickets" in old.stderr
    up = ng("db", "upgrade")
    assert up.returncode == 0, up.stderr
    assert up.stdout.startswith("database schema: 0001_tickets -> ")
    assert json.loads(ng("db", "current", "--json").stdout)["up_to_date"] is True
    assert ng("tickets", "list").returncode == 0


def test_cli_auto_upgrade(store_config: StoreConfig, tmp_path: Path) -> None:
    ng = _runner(_config_file(tmp_path, store_config, auto_upgrade=True), tmp_path)
    result = ng("tickets", "list")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "no tickets match"
    assert json.loads(ng("db", "current", "--json").stdout)["up_to_date"] is True


def test_cli_db_downgrade_needs_yes(ng: Run) -> None:
    refused = ng("db", "downgrade", "base")
    assert refused.returncode == 2
    assert "--yes" in refused.stderr
    done = ng("db", "downgrade", "base", "--yes")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().endswith("-> (empty)")
    assert ng("tickets", "list").returncode == 5


@pytest.mark.parametrize("command", [("tickets", "list"), ("tickets", "export"),
                                     ("tickets", "show", "NG-000001"),
                                     ("tickets", "ack", "NG-000001")])
def test_read_commands_name_a_missing_database_and_never_create_it(
        tmp_path: Path, command: tuple[str, ...]) -> None:
    missing = tmp_path / "nowhere.db"
    run = _runner(_config_file(tmp_path, StoreConfig(path=missing)), tmp_path)
    result = run(*command)
    assert result.returncode == 5, result.stderr
    assert f"no database at {missing} (run netguard db upgrade)" in result.stderr
    assert not missing.exists()


def test_db_current_reports_a_missing_database_without_creating_it(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere.db"
    run = _runner(_config_file(tmp_path, StoreConfig(path=missing)), tmp_path)
    result = run("db", "current")
    assert result.returncode == 0, result.stderr
    assert f"current: (no database at {missing})" in result.stdout
    assert json.loads(run("db", "current", "--json").stdout)["current"] is None
    assert not missing.exists()


def test_open_with_a_site_too_long_exits_2_naming_it(ng: Run) -> None:
    result = ng("tickets", "open", "--category", "pon", "--site", "s" * 129,
                "--summary", "x", "--by", "op")
    assert result.returncode == 2, result.stderr
    assert "site is 129 characters; at most 128" in result.stderr
    assert "database failed" not in result.stderr
