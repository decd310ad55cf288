"""Alertmanager's webhook payload: checking, dedupe keys, routing facts and messages.

Pure functions on data; the hostile payloads are the ones a misconfigured or malicious
sender could post (the endpoint answers them with 400 and the message tested here).
"""

from __future__ import annotations

import contextlib
import copy
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from netguard.faults import Severity
from netguard.iot.messages import MessageRenderer, builtin_templates
from netguard.notify.alertmanager import (
    MAX_ALERTS,
    TEXT_BUDGET_BYTES,
    AmPayloadError,
    dedupe_key,
    group_severity,
    parse_body,
    parse_payload,
    render,
    route_event,
    route_facts,
    sample_payload,
    severity_of,
)

T0 = datetime(2026, 3, 5, 10, 15, tzinfo=UTC)


def _sample(status: str = "firing", n: int = 1) -> dict[str, Any]:
    alerts = [{"target": f"pl-east-{i}", "site": "east", "kind": "fiber"} for i in range(n)]
    return sample_payload(status, now=T0, alerts=alerts)


def _refused(data: object) -> str:
    with pytest.raises(AmPayloadError) as info:
        parse_payload(data)
    return str(info.value)


def test_a_sample_payload_parses() -> None:
    data = _sample()
    data["alerts"][0]["startsAt"] = "2026-03-05T10:15:00.123456789Z"
    payload = parse_payload(data)
    assert payload.status == "firing"
    [alert] = payload.alerts
    assert alert.starts_at == datetime(2026, 3, 5, 10, 15, 0, 123456, tzinfo=UTC)
    assert alert.ends_at is None  # Go's zero time: not ended
    assert alert.labels["target"] == "pl-east-0"
    assert payload.title == "NetguardLinkDown"
    assert payload.truncated_alerts == 0


def test_offsets_are_read_and_stored_in_utc() -> None:
    data = _sample()
    data["alerts"][0]["startsAt"] = "2026-03-05T18:15:00+08:00"
    assert parse_payload(data).alerts[0].starts_at == T0


def test_unknown_fields_are_ignored() -> None:
    data = _sample()
    data["somethingNew"] = {"x": 1}
    data["alerts"][0]["silencedBy"] = []
    assert parse_payload(data).alerts


@pytest.mark.parametrize(("change", "problem"), [
    (lambda d: d.update(version="3"), "version: '3' is not the supported version '4'"),
    (lambda d: d.update(version=4), "version: '4' is not the supported version '4'"),
    (lambda d: d.pop("version"), "version: 'None' is not the supported"),
    (lambda d: d.update(status="pending"), "status: 'pending' is not firing or resolved"),
    (lambda d: d.update(alerts={}), "alerts: not a list"),
    (lambda d: d.update(alerts=[]), "alerts: empty"),
    (lambda d: d.update(alerts=["x"]), "alerts[0]: not an object"),
    (lambda d: d.update(receiver=5), "receiver: not a string"),
    (lambda d: d.update(groupKey=""), "groupKey: empty"),
    (lambda d: d.update(groupKey="k" * 4097), "groupKey: longer than 4096 characters"),
    (lambda d: d.update(receiver="r" * 257), "receiver: longer than 256 characters"),
    (lambda d: d.update(commonLabels=[1]), "commonLabels: not an object"),
    (lambda d: d.update(groupLabels={"a b": "x"}), "groupLabels: 'a b' is not a name"),
    (lambda d: d.update(groupLabels={"": "x"}), "groupLabels: '' is not a name"),
    (lambda d: d.update(externalURL="javascript:alert(1)"), "externalURL: not an http(s) URL"),
    (lambda d: d.update(externalURL="http://x/ y"), "externalURL: not an http(s) URL"),
    (lambda d: d.update(truncatedAlerts=-1), "truncatedAlerts: not a count"),
    (lambda d: d.update(truncatedAlerts=True), "truncatedAlerts: not a count"),
    (lambda d: d.update(truncatedAlerts="3"), "truncatedAlerts: not a count"),
])
def test_malformed_tops_are_refused_naming_the_field(change: Any, problem: str) -> None:
    data = _sample()
    change(data)
    assert problem in _refused(data)


@pytest.mark.parametrize(("field", "value", "problem"), [
    ("labels", "x", "alerts[3].labels: not an object"),
    ("labels", {"severity": 5}, "alerts[3].labels.severity: not a string"),
    ("labels", {"target": "t" * 1025}, "alerts[3].labels.target: longer than 1024"),
    ("labels", {"target": "a\x00b"}, "alerts[3].labels.target: contains a control character"),
    ("labels", {"target": "a\x1b[31mred"}, "alerts[3].labels.target: contains a control"),
    ("labels", {f"l{i}": "v" for i in range(65)}, "alerts[3].labels: more than 64 entries"),
    ("labels", {"x" * 129: "v"}, "alerts[3].labels: 'xxxx"),
    ("annotations", [], "alerts[3].annotations: not an object"),
    ("annotations", {"description": "d" * 4097},
     "alerts[3].annotations.description: longer than 4096"),
    ("status", "ok", "alerts[3].status: 'ok' is not firing or resolved"),
    ("fingerprint", "not-hex!", "alerts[3].fingerprint: not hexadecimal"),
    ("fingerprint", "", "alerts[3].fingerprint: empty"),
    ("fingerprint", None, "alerts[3].fingerprint: not a string"),
    ("generatorURL", "file:///etc/passwd", "alerts[3].generatorURL: not an http(s) URL"),
    ("startsAt", "yesterday", "alerts[3].startsAt: not an RFC 3339 time"),
    ("startsAt", 1700000000, "alerts[3].startsAt: not an RFC 3339 time"),
    ("startsAt", None, "alerts[3].startsAt: not an RFC 3339 time"),
    ("startsAt", "2026-02-30T00:00:00Z", "alerts[3].startsAt: not a valid time"),
    ("startsAt", "2026-03-05T25:00:00Z", "alerts[3].startsAt: not a valid time"),
    ("startsAt", "2026-03-05T10:00:00+25:00", "alerts[3].startsAt: not a valid time"),
    ("startsAt", "2026-03-05T10:00:00", "alerts[3].startsAt: not an RFC 3339 time"),
    ("startsAt", "0001-01-01T00:00:00Z", "alerts[3].startsAt: not set"),
    ("startsAt", "1969-12-31T23:59:59Z", "alerts[3].startsAt: year 1969 is outside"),
    ("startsAt", "0001-01-01T00:00:00-05:00", "alerts[3].startsAt: year 1 is outside"),
    ("endsAt", "9999-12-31T23:59:59Z", "alerts[3].endsAt: year 9999 is outside"),
    ("endsAt", "2026-03-05T10:15:00.1234567890Z", "alerts[3].endsAt: not an RFC 3339"),
])
def test_malformed_alerts_are_refused_naming_the_alert_and_field(field: str, value: object,
                                                                 problem: str) -> None:
    data = _sample(n=5)
    data["alerts"][3][field] = value
    assert problem in _refused(data)


def test_too_many_alerts_are_refused() -> None:
    data = _sample()
    data["alerts"] = [copy.deepcopy(data["alerts"][0]) for _ in range(MAX_ALERTS + 1)]
    assert "alerts: more than 1000 alerts (set max_alerts" in _refused(data)


@pytest.mark.parametrize(("body", "problem"), [
    (b"\xff\xfe{}", "body: not UTF-8"),
    (b"{not json", "body: not JSON"),
    (b"[1, 2]", "body: not a JSON object"),
    (b"null", "body: not a JSON object"),
    (b"[" * 100_000 + b"]" * 100_000, "body: "),
    (b'{"version": "4", "truncatedAlerts": 1' + b"0" * 5000 + b"}", "body: not JSON"),
])
def test_bodies_that_are_not_json_objects_are_refused(body: bytes, problem: str) -> None:
    with pytest.raises(AmPayloadError, match=problem):
        parse_body(body)


@settings(max_examples=200)
@given(st.binary(max_size=300))
def test_random_bytes_only_ever_give_a_payload_error(body: bytes) -> None:
    with contextlib.suppress(AmPayloadError):
        parse_body(body)


_JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=20),
                     lambda inner: st.lists(inner, max_size=4)
                     | st.dictionaries(st.text(max_size=10), inner, max_size=4),
                     max_leaves=20)


@settings(max_examples=200)
@given(st.sampled_from(["receiver", "status", "alerts", "groupLabels", "commonLabels",
                        "commonAnnotations", "externalURL", "groupKey", "truncatedAlerts"]),
       _JSON, st.sampled_from(["status", "labels", "annotations", "startsAt", "endsAt",
                               "fingerprint", "generatorURL"]), _JSON)
def test_any_json_in_any_field_only_ever_gives_a_payload_error(
        top: str, top_value: object, field: str, value: object) -> None:
    for where in ("top", "alert"):
        data = _sample(n=2)
        if where == "top":
            data[top] = top_value
        else:
            data["alerts"][1][field] = value
        with contextlib.suppress(AmPayloadError):
            parse_payload(json.loads(json.dumps(data)))


# --------------------------------------------------------------------------- dedupe


def test_the_dedupe_key_ignores_order_and_what_does_not_identify_the_news() -> None:
    data = _sample(n=3)
    key = dedupe_key(parse_payload(data))
    again = copy.deepcopy(data)
    again["alerts"].reverse()
    # An HA peer's copy: same group and alerts; annotations re-templated, other URL.
    again["alerts"][0]["annotations"] = {"summary": "re-rendered"}
    again["externalURL"] = "http://am-2:9093"
    assert dedupe_key(parse_payload(again)) == key
    assert len(key) == 64
    assert int(key, 16) >= 0


@pytest.mark.parametrize("change", [
    lambda d: d.update(status="resolved"),
    lambda d: d.update(groupKey=d["groupKey"] + "x"),
    lambda d: d["alerts"][1].update(startsAt="2026-03-05T10:16:00Z"),
    lambda d: d["alerts"][1].update(fingerprint="abcdef0123456789"),
    # One alert of a firing group resolved: news, although the group still fires.
    lambda d: d["alerts"][1].update(status="resolved", endsAt="2026-03-05T10:20:00Z"),
    lambda d: d["alerts"].pop(),
])
def test_the_dedupe_key_changes_with_the_news(change: Any) -> None:
    data = _sample(n=3)
    key = dedupe_key(parse_payload(data))
    change(data)
    assert dedupe_key(parse_payload(data)) != key


# ------------------------------------------------------------------------- routing


@pytest.mark.parametrize(("label", "severity"), [
    ("critical", Severity.CRITICAL), ("CRITICAL", Severity.CRITICAL),
    ("page", Severity.CRITICAL), (" emergency ", Severity.CRITICAL),
    ("fatal", Severity.CRITICAL), ("major", Severity.MAJOR), ("error", Severity.MAJOR),
    ("high", Severity.MAJOR), ("minor", Severity.MINOR), ("average", Severity.MINOR),
    ("warning", Severity.WARNING), ("warn", Severity.WARNING), ("info", Severity.WARNING),
    ("low", Severity.WARNING), ("something-else", Severity.WARNING), (None, Severity.WARNING),
])
def test_severity_labels_map_onto_netguard_severities(label: str | None,
                                                      severity: Severity) -> None:
    assert severity_of(label) is severity


def test_a_group_takes_its_most_urgent_severity_and_common_labels() -> None:
    data = _sample(n=2)
    data["alerts"][0]["labels"]["severity"] = "warning"
    data["alerts"][1]["labels"]["severity"] = "page"
    data["commonLabels"] = {"alertname": "NetguardLinkDown", "site": "east",
                            "tier": "core"}
    payload = parse_payload(data)
    assert group_severity(payload) is Severity.CRITICAL
    facts = route_facts(payload)
    assert facts.source == "alertmanager"
    assert facts.severity is Severity.CRITICAL
    assert facts.site == "east"
    assert facts.category == "NetguardLinkDown"  # no category label: the alert name
    assert facts.labels["tier"] == "core"
    data["commonLabels"]["category"] = "fiber"
    assert route_facts(parse_payload(data)).category == "fiber"
    assert route_event(payload) == "opened"
    assert route_event(parse_payload(_sample("resolved"))) == "resolved"


# ------------------------------------------------------------------------ messages

ZH = MessageRenderer(language="zh-CN", timezone="Asia/Shanghai")
EN = MessageRenderer(language="en", timezone="Asia/Shanghai")


EXPECTED_DIR = Path(__file__).resolve().parent / "expected_messages"


@pytest.mark.parametrize("language", ["zh-CN", "en"])
@pytest.mark.parametrize("status", ["firing", "resolved"])
def test_messages_match_their_snapshots(status: str, language: str) -> None:
    """Both kinds in both languages, times in Asia/Shanghai (files: expected_messages/)."""
    data = _sample(status, n=2)
    data["alerts"][1]["annotations"]["description"] = "No answer from the agent."
    text = render(parse_payload(data), MessageRenderer(language=language))
    expected = (EXPECTED_DIR / f"am_{status}.{language}.md").read_text(encoding="utf-8")
    assert text == expected.rstrip("\n")


def test_a_resolved_group_and_a_reminder_in_english() -> None:
    resolved = render(parse_payload(_sample("resolved")), EN)
    assert resolved.splitlines()[:2] == [
        "### [resolved] NetguardLinkDown",
        "- Alertmanager: 1 alerts resolved, the last at 2026-03-05 18:20 (Asia/Shanghai)"]
    assert "resolved 2026-03-05 18:20 (Asia/Shanghai)" in resolved
    reminder = render(parse_payload(_sample()), EN, reminder=True)
    assert reminder.startswith("### [critical] NetguardLinkDown (reminder)\n")
    assert render(parse_payload(_sample()), ZH, reminder=True).startswith(
        "### 【紧急】NetguardLinkDown\uff08提醒\uff09\n")


def test_descriptions_and_instances_are_listed() -> None:
    data = _sample()
    alert = data["alerts"][0]
    alert["labels"] = {"alertname": "NetguardCabinOnBattery", "instance": "ng:9108"}
    alert["annotations"] = {"summary": "Cabin on battery", "description": "Mains lost."}
    text = render(parse_payload(data), EN)
    assert "- Cabin on battery: Mains lost. (ng:9108), since 2026-03-05 18:15" in text


def test_long_groups_are_capped_and_say_how_many_more() -> None:
    data = _sample(n=25)
    data["truncatedAlerts"] = 7
    text = render(parse_payload(data), ZH)
    assert text.count("\uff09\uff0c开始于 2026") == 10
    assert "- ……另有 22 条告警" in text
    assert "- Alertmanager\uff1a32 条告警" in text  # with the 7 Alertmanager left out
    assert "- ... and 22 more" in render(parse_payload(data), EN)


def test_huge_annotations_stay_within_the_robots_limit() -> None:
    data = _sample(n=40)
    for alert in data["alerts"]:
        alert["annotations"] = {"summary": "长" * 1000, "description": "描" * 4000}
    text = render(parse_payload(data), ZH)
    assert len(text.encode()) < TEXT_BUDGET_BYTES + 1000
    assert "……另有" in text


def test_labels_cannot_mention_people_or_break_lines() -> None:
    data = _sample()
    data["alerts"][0]["annotations"] = {"summary": "down <@all> <font color=red>x</font>\n"
                                                   "### fake heading"}
    text = render(parse_payload(data), EN)
    assert "<@" not in text
    assert "<font" not in text
    assert "\n### fake" not in text
    assert "\uff1c@all\uff1e" in text


def test_an_operator_template_replaces_the_built_in_one() -> None:
    renderer = MessageRenderer(language="en", overrides={
        ("am_firing", "en"): "ALERT $title x$count ($severity)\n$items"})
    text = render(parse_payload(_sample(n=2)), renderer)
    assert text.startswith("ALERT NetguardLinkDown x2 (critical)\n- fiber link")


def test_the_built_in_templates_exist_in_both_languages() -> None:
    for kind in ("am_firing", "am_resolved"):
        for language in ("zh-CN", "en"):
            assert builtin_templates()[(kind, language)]
