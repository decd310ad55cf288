"""Ticket message texts: every kind in zh-CN and en, checked against snapshot files."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from netguard.iot.messages import LANGUAGES, check_template
from netguard.notify.texts import TICKET_KINDS, TicketFacts, TicketTexts

EXPECTED_DIR = Path(__file__).resolve().parent / "expected"
OPENED = datetime(2026, 3, 5, 2, 0, tzinfo=UTC)  # 10:00 in Shanghai
NOW = OPENED + timedelta(minutes=95)
FACTS = TicketFacts(ref="NG-000123", severity="critical", site="东区机房", target="pl-east",
                    summary="专线中断", category="uplink", opened_at=OPENED,
                    children=("a", "b"), new_children=("b",), route="noc")


@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize("kind", TICKET_KINDS)
def test_each_kind_renders_as_the_snapshot(kind: str, language: str) -> None:
    text = TicketTexts(language).render(kind, FACTS, NOW)
    path = EXPECTED_DIR / f"{kind}.{language}.md"
    if os.environ.get("NETGUARD_UPDATE_SNAPSHOTS"):
        path.write_text(text + "\n", encoding="utf-8")
    assert text == path.read_text(encoding="utf-8").rstrip("\n")


def test_no_children_leaves_no_line() -> None:
    text = TicketTexts("zh-CN").render("ticket_opened",
                                       TicketFacts("NG-000001", "minor", None, "sw1", "down",
                                                   "device", OPENED), NOW)
    assert "受影响" not in text
    assert "\n\n" not in text
    assert text.startswith("### 【次要】NG-000001 sw1\uff1adown\n- 站点\uff1a无")


def test_an_operator_template_replaces_the_builtin() -> None:
    custom = "## $ref $severity ($child_count)"
    check_template(custom, "ticket_opened", "test")
    texts = TicketTexts("en", overrides={("ticket_opened", "en"): custom})
    assert texts.render("ticket_opened", FACTS, NOW) == "## NG-000123 critical (2)"


def test_times_follow_the_zone() -> None:
    text = TicketTexts("en", "Europe/Berlin").render("ticket_resolved", FACTS, NOW)
    assert "since: 2026-03-05 03:00 (Europe/Berlin)" in text
    assert "lasted: 1 h 35 min" in text
