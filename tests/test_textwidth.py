"""Tables stay aligned with Chinese text: widths are display columns, not characters."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from netguard.cli.iot_common import print_table
from netguard.faults import Severity
from netguard.textwidth import display_width, pad
from netguard.tickets import render
from netguard.tickets.domain import Ticket, TicketState


@pytest.mark.parametrize(("text", "width"), [
    ("", 0), ("B3-1201", 7), ("王芳", 4), ("３号楼", 6), ("e\u0301", 1), ("门A", 3),
])
def test_display_width(text: str, width: int) -> None:
    assert display_width(text) == width


def test_pad_fills_display_columns_and_never_cuts() -> None:
    assert pad("王芳", 6) == "王芳  "
    assert pad("王芳", 2) == "王芳"


def test_print_table_aligns_chinese_labels(capsys: pytest.CaptureFixture[str]) -> None:
    print_table([{"id": "h1", "label": "3号楼1201", "community": "莲花"},
                 {"id": "h2", "label": "Flat 2", "community": "lotus"}],
                ["id", "label", "community"])
    lines = capsys.readouterr().out.splitlines()
    # Every column starts at the same display column on every line.
    starts = [display_width(line[:line.index(cell)])
              for line, cell in zip(lines, ["COMMUNITY", "莲花", "lotus"], strict=True)]
    assert starts == [starts[0]] * 3, lines


def _ticket(ref: str, site: str, assignee: str) -> Ticket:
    at = datetime(2026, 3, 5, 10, tzinfo=UTC)
    return Ticket(id=1, ref=ref, fault_key=None, source="manual", category="fiber",
                  target=None, site=site, severity=Severity.MAJOR,
                  state=TicketState.OPEN, summary="光缆中断", reasons=(), first_seen=at,
                  last_seen=at, opened_at=at, cleared_at=None, acknowledged_at=None,
                  resolved_at=None, closed_at=None, updated_at=at, occurrences=1, flaps=0,
                  reopens=0, assignee=assignee, sla_due=at, overdue=False)


def test_ticket_table_aligns_chinese_sites() -> None:
    now = datetime(2026, 3, 5, 12, tzinfo=UTC)
    text = render.table([_ticket("NG-1", "莲花小区", "王芳"),
                         _ticket("NG-2", "lotus", "li.wei")], now)
    lines = text.splitlines()
    starts = [display_width(line[:line.index(cell)])
              for line, cell in zip(lines, ["AGE", "2h", "2h"], strict=True)]
    assert starts == [starts[0]] * 3, lines
    summaries = [display_width(line[:line.index(cell)])
                 for line, cell in zip(lines, ["SUMMARY", "光缆", "光缆"], strict=True)]
    assert summaries == [summaries[0]] * 3, lines
