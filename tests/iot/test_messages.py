"""Message texts: each kind in zh-CN and en checked against its expected text, local
times, and operator templates checked when the config loads."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from netguard.config import load_settings, settings_from_data
from netguard.errors import ConfigError
from netguard.iot.messages import (
    LANGUAGES,
    PLACEHOLDERS,
    MessageRenderer,
    TemplateError,
    builtin_templates,
    load_templates,
)
from netguard.iot.notifiers.base import Notification

RAISED = Notification(
    alert_id=7, reason="raised", type="door_open", severity="critical", community="lotus",
    household="B3-1201", sensor="door-1201",
    reasons=("door opened at 2026-03-05T10:15:00+00:00 during quarantine of household "
             "B3-1201",),
    count=1, first_seen="2026-03-05T10:15:00+00:00")
RENOTIFY = dataclasses.replace(RAISED, reason="renotify")
REPEAT = dataclasses.replace(
    RAISED, reason="repeat", count=3,
    reasons=("door opened again (3rd time in 12 min; first opening at "
             "2026-03-05T10:15:00+00:00)",))
RECOVERY = dataclasses.replace(
    RAISED, alert_id=9, reason="recovery", type="offline", severity="major",
    reasons=("sensor back online after 3 h 12 min (heartbeat)",))
BATCH = (RAISED, dataclasses.replace(RECOVERY, alert_id=8, reason="renotify"))

# The expected texts, one file per kind and language (read as UTF-8, final newline off).
EXPECTED_DIR = Path(__file__).resolve().parent / "expected_messages"
EXPECTED: dict[tuple[str, str], str] = {
    (k, lang): (EXPECTED_DIR / f"{k}.{lang}.md").read_text(encoding="utf-8").rstrip("\n")
    for k in ("raised", "renotify", "repeat", "recovery", "batch") for lang in LANGUAGES}
BY_KIND = {"raised": [RAISED], "renotify": [RENOTIFY], "repeat": [REPEAT],
           "recovery": [RECOVERY], "batch": list(BATCH)}


@pytest.mark.parametrize(("kind", "language"), sorted(EXPECTED))
def test_each_kind_renders_as_expected(kind: str, language: str) -> None:
    text = MessageRenderer(language).markdown(BY_KIND[kind])
    assert text == EXPECTED[(kind, language)]


def test_times_follow_the_configured_zone() -> None:
    text = MessageRenderer("en", "Europe/Berlin").markdown([RAISED])
    assert "since 2026-03-05 11:15 (Europe/Berlin)" in text
    zh = MessageRenderer("zh-CN", "Europe/Berlin").markdown([RAISED])
    assert "2026-03-05 11:15\uff08Europe/Berlin\uff09" in zh


def test_the_title_is_the_first_line_without_heading_marks() -> None:
    assert MessageRenderer("en").title([RAISED]) == (
        "[critical] door open: household B3-1201, sensor door-1201")
    blank_first = MessageRenderer("en", overrides={("raised", "en"): "\n## $household\n"})
    assert blank_first.title([RAISED]) == "B3-1201"


def test_no_reasons_leaves_no_blank_line() -> None:
    text = MessageRenderer("en").markdown([dataclasses.replace(RAISED, reasons=())])
    assert "\n\n" not in text
    assert text.count("\n") == 2


def test_every_kind_and_language_ships_a_template() -> None:
    assert set(builtin_templates()) == {(k, lang) for k in PLACEHOLDERS for lang in LANGUAGES}


def _config(tmp_path: Path, templates: dict[str, str]) -> Path:
    folder = tmp_path / "templates"
    folder.mkdir()
    for name, text in templates.items():
        (folder / name).write_text(text, encoding="utf-8")
    path = tmp_path / "netguard.yaml"
    path.write_text("display:\n  language: en\n  templates_dir: templates\n", encoding="utf-8")
    return path


def test_an_operator_template_replaces_the_built_in_one(tmp_path: Path) -> None:
    path = _config(tmp_path, {"raised.en.md": "## DOOR $household at $first_seen\n$reasons\n"})
    renderer = load_settings(path).display.renderer()
    assert renderer.markdown([RAISED]) == (
        "## DOOR B3-1201 at 2026-03-05 18:15 (Asia/Shanghai)\n- door opened at 2026-03-05 "
        "18:15 (Asia/Shanghai) during quarantine of household B3-1201")
    # Kinds without a file keep the built-in text.
    assert renderer.markdown([RECOVERY]) == EXPECTED[("recovery", "en")]


@pytest.mark.parametrize(("name", "text", "problem"), [
    ("raised.en.md", "door $household $ack_url", "unknown placeholder(s) $ack_url"),
    ("batch.zh-CN.md", "$alerts $household", "unknown placeholder(s) $household"),
    ("raised.en.md", "costs 5$", "a '$' that is not a placeholder"),
    ("recovery.en.md", "\n\n", "empty"),
    ("raised.fr.md", "$household", "not a template name"),
    ("opened.en.md", "$household", "not a template name"),
])
def test_a_bad_template_file_is_a_config_error_naming_it(tmp_path: Path, name: str,
                                                        text: str, problem: str) -> None:
    path = _config(tmp_path, {name: text})
    with pytest.raises(ConfigError) as caught:
        load_settings(path)
    [line] = caught.value.problems
    assert line.startswith("display.templates_dir: ")
    assert str(tmp_path / "templates" / name) in line
    assert problem in line


def test_a_missing_templates_dir_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read directory"):
        settings_from_data({"display": {"templates_dir": str(tmp_path / "nope")}})


def test_a_template_that_is_not_utf8_is_refused(tmp_path: Path) -> None:
    (tmp_path / "raised.zh-CN.md").write_bytes("门 $household".encode("gbk"))
    with pytest.raises(TemplateError, match="not UTF-8"):
        load_templates(tmp_path)
