"""Alertmanager's webhook payload (version 4): checked, deduplicated, routed, rendered. Pure.

Alertmanager has no WeCom or DingTalk robot, so netguard takes its webhook
(``POST /alertmanager/webhook``, :mod:`netguard.daemon.amhook`) and sends the alerts
through its own routes and notifiers. Everything in the body comes from outside: every
field is checked here (type, length, count, characters) and a refusal names the field
(``alerts[3].labels: not an object``), so that the 400 answer says what to fix.

Deduplication (:func:`dedupe_key`): Alertmanager sends a notification again when the
answer was lost or late (its retries), and an HA pair sends each one twice. The key is the
SHA-256 of the group key, the group's status and, sorted, each alert's fingerprint, start
and status: the same key is the same news. An alert of the group that resolves (a firing
group with one alert fewer firing) changes the key, so it is news again.

Severity (:func:`severity_of`): the ``severity`` label, case-insensitive, read as
netguard's four levels; Prometheus-style words are mapped (:data:`SEVERITY_WORDS`):
``page``/``emergency``/``fatal`` are critical, ``error``/``high`` major,
``average``/``medium`` minor, ``info``/``notice``/``low`` warning. A missing or unknown
severity is ``warning``. A group takes its most urgent alert's severity.
"""

from __future__ import annotations

import hashlib
import json
import re
import string
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone

from netguard.faults import Severity
from netguard.iot.messages import MessageRenderer, builtin_templates, local_time
from netguard.localtime import zone
from netguard.notify.routing import RouteFacts

VERSION = "4"
STATUSES = ("firing", "resolved")

# Limits on what one post may carry. The body size (``max_body_bytes``) bounds the total;
# these bound each part, so that no single field can fill a message or a log line.
MAX_ALERTS = 1000
MAX_LABELS = 64
MAX_ANNOTATIONS = 32
MAX_NAME = 128
MAX_LABEL_VALUE = 1024
MAX_ANNOTATION_VALUE = 4096
MAX_RECEIVER = 256
MAX_GROUP_KEY = 4096
MAX_URL = 2048
MAX_TRUNCATED = 1_000_000_000

# Alerts listed in one message, and the bytes its text may take: the robots refuse more
# than 4096 bytes, and the notifier still appends the @-mentions.
MAX_LISTED = 10
TEXT_BUDGET_BYTES = 3000
_ITEM_MAX = 180

SEVERITY_WORDS: Mapping[str, Severity] = {
    **dict.fromkeys(("critical", "crit", "page", "pager", "emergency", "emerg", "alert",
                     "fatal", "disaster", "p1"), Severity.CRITICAL),
    **dict.fromkeys(("major", "error", "err", "high", "p2"), Severity.MAJOR),
    **dict.fromkeys(("minor", "average", "medium", "p3"), Severity.MINOR),
    **dict.fromkeys(("warning", "warn", "info", "information", "informational", "notice",
                     "low", "none", "p4", "p5"), Severity.WARNING),
}
"""``severity`` label values (lower case) and the netguard severity each means."""

# C0 controls other than tab, newline and carriage return, and DEL: never in a label or
# an annotation anyone wrote on purpose; they would garble a log line or a chat message.
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
# A name has no white space or control character at all.
_NAME_BAD = re.compile(r"[\x00-\x20\x7f]")
_FINGERPRINT = re.compile(r"[0-9a-fA-F]{1,64}\Z")
_URL = re.compile(r"https?://[^\x00-\x20\x7f<>\"()\[\]]+\Z")
# RFC 3339 as Go writes it (up to nanoseconds), e.g. 2026-03-05T10:15:00.123456789Z.
_TIME = re.compile(r"(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?"
                   r"(?:([Zz])|([+-])(\d{2}):(\d{2}))\Z")
# Go's zero time: an alert that has not ended yet.
_ZERO_TIME = datetime(1, 1, 1, tzinfo=UTC)
_YEARS = (1970, 9998)


class AmPayloadError(ValueError):
    """A webhook body that is not a valid version 4 payload; the message names the field."""


@dataclass(frozen=True, slots=True)
class AmAlert:
    """One alert of a notification.

    Attributes:
        ends_at: When it ended (resolved), or when Alertmanager would consider it
            resolved unless refreshed; None for Go's zero time.
    """

    status: str
    labels: Mapping[str, str]
    annotations: Mapping[str, str]
    starts_at: datetime
    ends_at: datetime | None
    fingerprint: str
    generator_url: str = ""


@dataclass(frozen=True, slots=True)
class AmPayload:
    """One webhook notification: a group of alerts and its status."""

    receiver: str
    status: str
    alerts: tuple[AmAlert, ...]
    group_key: str
    group_labels: Mapping[str, str] = field(default_factory=dict)
    common_labels: Mapping[str, str] = field(default_factory=dict)
    common_annotations: Mapping[str, str] = field(default_factory=dict)
    external_url: str = ""
    truncated_alerts: int = 0

    @property
    def firing(self) -> tuple[AmAlert, ...]:
        """The alerts still firing."""
        return tuple(a for a in self.alerts if a.status == "firing")

    @property
    def title(self) -> str:
        """The group's name: its common ``alertname``, else its group labels."""
        name = self.common_labels.get("alertname")
        if name:
            return name
        return ", ".join(f"{k}={v}" for k, v in sorted(self.group_labels.items())) \
            or "Alertmanager"


# ------------------------------------------------------------------------- parsing


def _string(value: object, where: str, limit: int, *, empty: bool = True) -> str:
    if not isinstance(value, str):
        raise AmPayloadError(f"{where}: not a string")
    if len(value) > limit:
        raise AmPayloadError(f"{where}: longer than {limit} characters")
    if not empty and not value:
        raise AmPayloadError(f"{where}: empty")
    if _CONTROL.search(value):
        raise AmPayloadError(f"{where}: contains a control character")
    return value


def _pairs(value: object, where: str, most: int, value_limit: int) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise AmPayloadError(f"{where}: not an object")
    if len(value) > most:
        raise AmPayloadError(f"{where}: more than {most} entries")
    out: dict[str, str] = {}
    for name, item in value.items():
        if not name or len(name) > MAX_NAME or _NAME_BAD.search(name):
            raise AmPayloadError(f"{where}: {name[:40]!r} is not a name (1 to {MAX_NAME} "
                               "characters, no white space or control characters)")
        out[name] = _string(item, f"{where}.{name[:40]}", value_limit)
    return out


def _url(value: object, where: str) -> str:
    text = _string(value if value is not None else "", where, MAX_URL)
    if text and not _URL.match(text):
        raise AmPayloadError(f"{where}: not an http(s) URL")
    return text


def parse_time(value: object, where: str, *, zero: bool = False) -> datetime | None:
    """An RFC 3339 time as Alertmanager writes it (nanoseconds are cut to microseconds).

    Args:
        zero: Go's zero time (``0001-01-01T00:00:00Z``) is allowed and gives None.

    Raises:
        AmPayloadError: Not a string, not RFC 3339, no such date, or outside 1970-9998.
    """
    if not isinstance(value, str) or len(value) > 40:
        raise AmPayloadError(f"{where}: not an RFC 3339 time")
    match = _TIME.match(value)
    if match is None:
        raise AmPayloadError(f"{where}: not an RFC 3339 time ({value[:40]!r})")
    year, month, day, hour, minute, second = (int(g) for g in match.groups()[:6])
    micro = int((match[7] or "0").ljust(6, "0")[:6])
    offset = timedelta(0) if match[8] else (1 if match[9] == "+" else -1) * timedelta(
        hours=int(match[10]), minutes=int(match[11]))
    try:
        when = datetime(year, month, day, hour, minute, second, micro,
                        tzinfo=timezone(offset))
    except ValueError as exc:
        raise AmPayloadError(f"{where}: not a valid time: {exc}") from None
    # Compared field by field: year 1 at a negative offset is outside datetime's range.
    if (year, month, day, hour, minute, second, micro) == (1, 1, 1, 0, 0, 0, 0) \
            and not offset:
        if zero:
            return None
        raise AmPayloadError(f"{where}: not set (Go's zero time)")
    if not _YEARS[0] <= year <= _YEARS[1]:
        raise AmPayloadError(f"{where}: year {year} is outside {_YEARS[0]}-{_YEARS[1]}")
    return when.astimezone(UTC)


def _status(value: object, where: str) -> str:
    if value not in STATUSES:
        shown = repr(value)[:40]
        raise AmPayloadError(f"{where}: {shown} is not firing or resolved")
    assert isinstance(value, str)
    return value


def _alert(value: object, where: str) -> AmAlert:
    if not isinstance(value, dict):
        raise AmPayloadError(f"{where}: not an object")
    starts = parse_time(value.get("startsAt"), f"{where}.startsAt")
    assert starts is not None
    fingerprint = _string(value.get("fingerprint"), f"{where}.fingerprint", 64, empty=False)
    if not _FINGERPRINT.match(fingerprint):
        raise AmPayloadError(f"{where}.fingerprint: not hexadecimal")
    return AmAlert(
        status=_status(value.get("status"), f"{where}.status"),
        labels=_pairs(value.get("labels"), f"{where}.labels", MAX_LABELS, MAX_LABEL_VALUE),
        annotations=_pairs(value.get("annotations"), f"{where}.annotations",
                           MAX_ANNOTATIONS, MAX_ANNOTATION_VALUE),
        starts_at=starts,
        ends_at=parse_time(value.get("endsAt", "0001-01-01T00:00:00Z"), f"{where}.endsAt",
                           zero=True),
        fingerprint=fingerprint.lower(),
        generator_url=_url(value.get("generatorURL"), f"{where}.generatorURL"))


def parse_payload(data: object) -> AmPayload:
    """The payload in ``data`` (the decoded JSON body).

    Unknown fields are ignored (a newer Alertmanager may add some); every known one is
    checked.

    Raises:
        AmPayloadError: Not a version 4 payload, or a field out of its limits; the message
            names the field.
    """
    if not isinstance(data, dict):
        raise AmPayloadError("body: not a JSON object")
    version = data.get("version")
    if version != VERSION:
        raise AmPayloadError(f"version: {str(version)[:20]!r} is not the supported "
                           f"version {VERSION!r}")
    alerts = data.get("alerts")
    if not isinstance(alerts, list):
        raise AmPayloadError("alerts: not a list")
    if not alerts:
        raise AmPayloadError("alerts: empty")
    if len(alerts) > MAX_ALERTS:
        raise AmPayloadError(f"alerts: more than {MAX_ALERTS} alerts (set max_alerts in the "
                           "webhook_config)")
    truncated = data.get("truncatedAlerts", 0)
    if not isinstance(truncated, int) or isinstance(truncated, bool) \
            or not 0 <= truncated <= MAX_TRUNCATED:
        raise AmPayloadError(f"truncatedAlerts: not a count (0 to {MAX_TRUNCATED})")
    return AmPayload(
        receiver=_string(data.get("receiver"), "receiver", MAX_RECEIVER),
        status=_status(data.get("status"), "status"),
        alerts=tuple(_alert(a, f"alerts[{i}]") for i, a in enumerate(alerts)),
        group_key=_string(data.get("groupKey"), "groupKey", MAX_GROUP_KEY, empty=False),
        group_labels=_pairs(data.get("groupLabels"), "groupLabels", MAX_LABELS,
                            MAX_LABEL_VALUE),
        common_labels=_pairs(data.get("commonLabels"), "commonLabels", MAX_LABELS,
                             MAX_LABEL_VALUE),
        common_annotations=_pairs(data.get("commonAnnotations"), "commonAnnotations",
                                  MAX_ANNOTATIONS, MAX_ANNOTATION_VALUE),
        external_url=_url(data.get("externalURL"), "externalURL"),
        truncated_alerts=truncated)


def parse_body(body: bytes) -> AmPayload:
    """The payload in a raw request body (UTF-8 JSON).

    Raises:
        AmPayloadError: Not UTF-8, not JSON (or nested too deeply), or not a valid payload.
    """
    try:
        data = json.loads(body.decode("utf-8"))
    except UnicodeDecodeError:
        raise AmPayloadError("body: not UTF-8") from None
    except RecursionError:
        raise AmPayloadError("body: JSON nested too deeply") from None
    except ValueError as exc:
        raise AmPayloadError(f"body: not JSON: {str(exc)[:120]}") from None
    return parse_payload(data)


# ------------------------------------------------------------------- deduplication


def dedupe_key(payload: AmPayload) -> str:
    """SHA-256 (hex) of the group key, the status and the alerts' fingerprints, starts
    and statuses (sorted): equal for a retry or an HA peer's copy of one notification."""
    alerts = sorted((a.fingerprint, a.starts_at.isoformat(), a.status)
                    for a in payload.alerts)
    text = json.dumps([payload.group_key, payload.status, alerts], ensure_ascii=False,
                      separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


# ------------------------------------------------------------------------- routing


def severity_of(value: str | None) -> Severity:
    """The netguard severity of a ``severity`` label value (see :data:`SEVERITY_WORDS`);
    ``warning`` when missing or unknown."""
    if value is None:
        return Severity.WARNING
    return SEVERITY_WORDS.get(value.strip().lower(), Severity.WARNING)


def group_severity(payload: AmPayload) -> Severity:
    """The most urgent severity among the group's alerts."""
    return min((severity_of(a.labels.get("severity")) for a in payload.alerts),
               key=lambda s: s.rank, default=Severity.WARNING)


def route_facts(payload: AmPayload) -> RouteFacts:
    """What the routes match on: severity, ``site`` and ``category`` (else ``alertname``)
    of the labels every alert shares, and those labels."""
    common = payload.common_labels
    return RouteFacts(source="alertmanager", severity=group_severity(payload),
                      site=common.get("site"),
                      category=common.get("category") or common.get("alertname"),
                      labels=dict(common))


def route_event(payload: AmPayload) -> str:
    """The ticket event kind a route's ``events`` must list to take this notification:
    ``opened`` for firing, ``resolved`` for resolved."""
    return "opened" if payload.status == "firing" else "resolved"


# ------------------------------------------------------------------------ rendering

_WORDS = {
    "zh-CN": {"critical": "紧急", "major": "重要", "minor": "次要", "warning": "警告",
              "reminder": "\uff08提醒\uff09", "since": "开始于", "resolved": "已恢复",
              "more": "……另有 {n} 条告警", "link": "在 Alertmanager 中查看",
              "open": "\uff08", "close": "\uff09", "sep": "\uff1a", "join": "\uff0c"},
    "en": {"critical": "critical", "major": "major", "minor": "minor",
           "warning": "warning", "reminder": " (reminder)", "since": "since",
           "resolved": "resolved", "more": "... and {n} more",
           "link": "view in Alertmanager", "open": " (", "close": ")", "sep": ": ",
           "join": ", "},
}
_NOTHING = "\0"


def _clean(text: str, limit: int) -> str:
    """One line of at most ``limit`` characters that cannot mention or format: ``<`` and
    ``>`` (WeCom's ``<@userid>``, ``<font>``) become their fullwidth forms."""
    flat = " ".join(text.split()).replace("<", "\uff1c").replace(">", "\uff1e")
    return flat if len(flat) <= limit else flat[:limit - 1] + "\u2026"


def _item(alert: AmAlert, words: Mapping[str, str], when: str) -> str:
    labels, notes = alert.labels, alert.annotations
    text = notes.get("summary") or labels.get("alertname") or alert.fingerprint
    if notes.get("description") and notes.get("description") != text:
        text = f"{text}{words['sep']}{notes['description']}"
    where = labels.get("target") or labels.get("instance")
    place = f"{words['open']}{_clean(where, 64)}{words['close']}" if where else ""
    return f"- {_clean(text, _ITEM_MAX)}{place}{words['join']}{when}"


def _items(payload: AmPayload, renderer: MessageRenderer) -> str:
    words = _WORDS[renderer.language]
    tz = zone(renderer.timezone)
    # Firing first (what needs doing), then the resolved ones of a mixed group.
    ordered = sorted(payload.alerts, key=lambda a: (a.status != "firing", a.starts_at))
    lines: list[str] = []
    used = 0
    for alert in ordered:
        if len(lines) >= MAX_LISTED:
            break
        if alert.status == "firing":
            when = f"{words['since']} {local_time(alert.starts_at, tz, renderer.language)}"
        else:
            ended = alert.ends_at or alert.starts_at
            when = f"{words['resolved']} {local_time(ended, tz, renderer.language)}"
        line = _item(alert, words, when)
        size = len(line.encode("utf-8")) + 1
        if used + size > TEXT_BUDGET_BYTES:
            break
        lines.append(line)
        used += size
    more = len(payload.alerts) - len(lines) + payload.truncated_alerts
    if more:
        lines.append("- " + words["more"].format(n=more))
    return "\n".join(lines)


def render(payload: AmPayload, renderer: MessageRenderer, *, reminder: bool = False) -> str:
    """The chat message of ``payload`` in the renderer's language and zone, from the
    ``am_firing`` or ``am_resolved`` template (an operator's file first)."""
    kind = "am_firing" if payload.status == "firing" else "am_resolved"
    key = (kind, renderer.language)
    template = string.Template(renderer.overrides.get(key) or builtin_templates()[key])
    words = _WORDS[renderer.language]
    tz = zone(renderer.timezone)
    severity = group_severity(payload)
    starts = min(a.starts_at for a in payload.alerts)
    ends = max((a.ends_at or a.starts_at) for a in payload.alerts)
    firing = payload.firing
    values = {
        "severity": words[severity.value],
        "title": _clean(payload.title, 120),
        # Alerts Alertmanager left out (max_alerts) are counted in, as of the status.
        "count": str((len(firing) if payload.status == "firing" else len(payload.alerts))
                     + payload.truncated_alerts),
        "firing": str(len(firing)),
        "resolved": str(len(payload.alerts) - len(firing)),
        "since": local_time(starts, tz, renderer.language),
        "until": local_time(ends, tz, renderer.language),
        "items": _items(payload, renderer) or _NOTHING,
        "reminder": words["reminder"] if reminder else "",
        "receiver": _clean(payload.receiver, 64),
        "group": _clean(", ".join(f"{k}={v}" for k, v in sorted(
            payload.group_labels.items())), 200) or "-",
        "source_link": f"- [{words['link']}]({payload.external_url})"
        if payload.external_url else _NOTHING,
    }
    text = template.safe_substitute(values)
    return "\n".join(line for line in text.split("\n") if line != _NOTHING)


def first_seen(payload: AmPayload) -> str:
    """ISO 8601 start of the group's earliest alert."""
    return min(a.starts_at for a in payload.alerts).isoformat()


def summary(payload: AmPayload) -> dict[str, object]:
    """A short, log-safe description (no annotation text)."""
    return {"receiver": payload.receiver[:64], "status": payload.status,
            "alerts": len(payload.alerts), "alertname": payload.title[:64],
            "truncated": payload.truncated_alerts}


def sample_payload(status: str = "firing", *, now: datetime | None = None,
                   alerts: Sequence[Mapping[str, str]] | None = None) -> dict[str, object]:
    """A valid version 4 payload as Alertmanager posts it (for the demo and tests).

    Args:
        status: ``firing`` or ``resolved``.
        now: The alerts' start (default: now).
        alerts: Extra labels per alert; one fiber-link alert by default.
    """
    start = (now or datetime.now(UTC)).astimezone(UTC)
    end = start + timedelta(minutes=5) if status == "resolved" else _ZERO_TIME
    specs = alerts or [{"target": "pl-east-1", "site": "east", "kind": "fiber"}]
    items: list[dict[str, object]] = []
    label_sets: list[dict[str, str]] = []
    for i, extra in enumerate(specs):
        labels = {"alertname": "NetguardLinkDown", "severity": "critical", **extra}
        label_sets.append(labels)
        items.append({
            "status": status, "labels": labels,
            "annotations": {"summary": f"{labels.get('kind', 'fiber')} link "
                            f"{labels.get('target', i)} is down"},
            "startsAt": start.isoformat().replace("+00:00", "Z"),
            "endsAt": end.isoformat().replace("+00:00", "Z"),
            "generatorURL": "http://127.0.0.1:9090/graph",
            "fingerprint": hashlib.sha256(json.dumps(labels, sort_keys=True).encode()
                                          ).hexdigest()[:16]})
    common = {k: v for k, v in label_sets[0].items()
              if all(labels.get(k) == v for labels in label_sets)}
    return {"version": VERSION, "receiver": "netguard", "status": status,
            "alerts": items, "groupLabels": {"alertname": "NetguardLinkDown"},
            "commonLabels": common, "commonAnnotations": {},
            "externalURL": "http://127.0.0.1:9093",
            "groupKey": '{}/{severity="critical"}:{alertname="NetguardLinkDown"}',
            "truncatedAlerts": 0}


__all__ = [
    "MAX_ALERTS",
    "SEVERITY_WORDS",
    "VERSION",
    "AmAlert",
    "AmPayload",
    "AmPayloadError",
    "dedupe_key",
    "first_seen",
    "group_severity",
    "parse_body",
    "parse_payload",
    "parse_time",
    "render",
    "route_event",
    "route_facts",
    "sample_payload",
    "severity_of",
    "summary",
]
