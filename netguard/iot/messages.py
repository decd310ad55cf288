"""The texts of door-alert messages: templates in zh-CN and en, times in the local zone.

Each message kind has a ``string.Template`` per language, with a fixed set of
placeholders (:data:`PLACEHOLDERS`); an operator may replace any of them with a file
``<kind>.<language>.md`` in ``display.templates_dir``, checked when the config loads.
The first line of a rendered message, without its markdown ``#``, is its title (the
DingTalk title, the console line).

Times are shown in ``display.timezone`` (``2026-03-05 18:15 (Asia/Shanghai)``), never as
UTC ISO, and so are the ISO times inside an alert's reason lines (the rules write those in
UTC, as they are stored); the English reason lines themselves are translated by
:mod:`netguard.iot.reasons`.
"""

from __future__ import annotations

import functools
import re
import string
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Protocol
from zoneinfo import ZoneInfo

from netguard.iot.reasons import translate
from netguard.localtime import zone


class AlertMessage(Protocol):
    """What a message is rendered from (``netguard.iot.notifiers.base.Notification``)."""

    @property
    def alert_id(self) -> int: ...
    @property
    def reason(self) -> str: ...
    @property
    def type(self) -> str: ...
    @property
    def severity(self) -> str: ...
    @property
    def community(self) -> str: ...
    @property
    def household(self) -> str: ...
    @property
    def sensor(self) -> str: ...
    @property
    def reasons(self) -> tuple[str, ...]: ...
    @property
    def count(self) -> int: ...
    @property
    def first_seen(self) -> str: ...
    @property
    def ack_url(self) -> str | None: ...
    @property
    def text(self) -> str | None: ...

LANGUAGES: tuple[str, ...] = ("zh-CN", "en")

_ALERT_FIELDS = frozenset({"severity", "type", "household", "sensor", "community", "count",
                           "first_seen", "reasons", "alert_id", "ack_command", "ack_link"})
_TICKET_FIELDS = frozenset({"ref", "severity", "site", "target", "summary", "category",
                            "since", "at", "open_for", "behind", "children", "child_count",
                            "new_count", "route"})
_AM_FIELDS = frozenset({"severity", "title", "count", "firing", "resolved", "since", "until",
                        "items", "reminder", "receiver", "group", "source_link"})
PLACEHOLDERS: Mapping[str, frozenset[str]] = {
    # One alert, by the notification's ``reason``.
    "raised": _ALERT_FIELDS,
    "renotify": _ALERT_FIELDS,
    "repeat": _ALERT_FIELDS,
    "recovery": _ALERT_FIELDS,
    # Several alerts in one message (a channel at its rate limit): the frame ...
    "batch": frozenset({"alerts", "items", "ack_command"}),
    # ... and one line per alert; ``kind`` is the message kind's short label.
    "batch_item": frozenset({"severity", "type", "household", "sensor", "community",
                             "count", "first_seen", "alert_id", "kind", "ack_link"}),
    # Several messages of mixed subjects (door alerts, tickets, Alertmanager) in one:
    # the frame; each message is one line, its title.
    "digest": frozenset({"count", "items"}),
    # Ticket notifications (netguard.notify.texts), one kind per message they send.
    **dict.fromkeys(("ticket_opened", "ticket_update", "ticket_severity", "ticket_overdue",
                     "ticket_reopened", "ticket_resolved", "ticket_repeat",
                     "ticket_escalated"), _TICKET_FIELDS),
    # A notification posted by Alertmanager (netguard.notify.alertmanager), by status.
    "am_firing": _AM_FIELDS,
    "am_resolved": _AM_FIELDS,
}
"""Each message kind and the placeholders its template may use (``$name``)."""

# The built-in templates: the same files an operator may copy and change.
BUILTIN_DIR = Path(__file__).resolve().parent / "templates"

# Severity and alert-type names, and the batch line's label of a follow-up message.
# Fullwidth punctuation is written as escapes: "\uff08" and "\uff09" are the brackets of
# Chinese text.
_WORDS: dict[str, dict[str, str]] = {
    "zh-CN": {"critical": "紧急", "major": "重要", "minor": "次要", "warning": "警告",
              "door_open": "隔离期间开门", "offline": "传感器离线",
              "battery_low": "电量低", "tamper": "防拆报警",
              "renotify": "\uff08提醒\uff09", "repeat": "\uff08再次开门\uff09",
              "recovery": "\uff08恢复在线\uff09"},
    "en": {"door_open": "door open", "battery_low": "battery low",
           "renotify": " (reminder)", "repeat": " (opened again)",
           "recovery": " (back online)"},
}
_LABELLED = frozenset({"renotify", "repeat", "recovery"})
_NOTHING = "\0"
_ZONE_WORDS = {"zh-CN": {"Asia/Shanghai": "北京时间"}}
_ACK_ANY = {"zh-CN": "netguard alerts ack <告警编号>", "en": "netguard alerts ack <alert id>"}
# The one-tap acknowledgement link's text (``ack_links``).
_ACK_LINK = {"zh-CN": "一键确认", "en": "acknowledge"}

_TEMPLATE_FILE = re.compile(r"(?P<kind>[a-z_]+)\.(?P<language>[A-Za-z-]+)\.md\Z")
_TEMPLATE_MAX_BYTES = 8192
# An ISO 8601 instant with an offset, as the rules write into reason lines.
_ISO_INSTANT = re.compile(
    r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:Z|[+-]\d{2}:\d{2})")


class TemplateError(ValueError):
    """A template file that cannot be used; the message names the file."""


def check_template(text: str, kind: str, source: str) -> string.Template:
    """``text`` as the template of ``kind``.

    Raises:
        TemplateError: A placeholder outside ``PLACEHOLDERS[kind]``, or a stray ``$``.
    """
    template = string.Template(text)
    if not template.is_valid():
        raise TemplateError(f"{source}: a '$' that is not a placeholder (write $$ for a "
                            "dollar sign)")
    unknown = sorted(set(template.get_identifiers()) - PLACEHOLDERS[kind])
    if unknown:
        raise TemplateError(f"{source}: unknown placeholder(s) "
                            f"{', '.join('$' + u for u in unknown)} (known for {kind}: "
                            f"{', '.join('$' + p for p in sorted(PLACEHOLDERS[kind]))})")
    return template


def load_templates(directory: Path) -> dict[tuple[str, str], str]:
    """The template files in ``directory``, by (kind, language).

    Raises:
        TemplateError: The directory cannot be read, or a file is misnamed, unreadable,
            not UTF-8, too large or uses an unknown placeholder; the message names it.
    """
    try:
        paths = sorted(p for p in directory.iterdir() if p.is_file())
    except OSError as exc:
        raise TemplateError(f"{directory}: cannot read directory: {exc.strerror or exc}"
                            ) from None
    out: dict[tuple[str, str], str] = {}
    for path in paths:
        match = _TEMPLATE_FILE.match(path.name)
        if match is None or match["kind"] not in PLACEHOLDERS \
                or match["language"] not in LANGUAGES:
            raise TemplateError(
                f"{path}: not a template name; use <kind>.<language>.md with kind one of "
                f"{', '.join(PLACEHOLDERS)} and language one of {', '.join(LANGUAGES)}")
        try:
            data = path.read_bytes()
            if len(data) > _TEMPLATE_MAX_BYTES:
                raise TemplateError(f"{path}: larger than {_TEMPLATE_MAX_BYTES} bytes")
            text = data.decode("utf-8").rstrip("\n")
        except OSError as exc:
            raise TemplateError(f"{path}: cannot read: {exc.strerror or exc}") from None
        except UnicodeDecodeError:
            raise TemplateError(f"{path}: not UTF-8") from None
        if not text.strip():
            raise TemplateError(f"{path}: empty (delete the file to keep the built-in text)")
        check_template(text, match["kind"], str(path))
        out[(match["kind"], match["language"])] = text
    return out


def local_time(value: datetime, tz: ZoneInfo, language: str) -> str:
    """``value`` as people in ``tz`` read it: ``2026-03-05 18:15 (Asia/Shanghai)``, or in
    zh-CN ``2026-03-05 18:15`` followed by ``北京时间`` in fullwidth brackets."""
    when = value.astimezone(tz).strftime("%Y-%m-%d %H:%M")
    if language == "zh-CN":
        return f"{when}\uff08{_ZONE_WORDS['zh-CN'].get(tz.key, tz.key)}\uff09"
    return f"{when} ({tz.key})"


@dataclass(frozen=True, slots=True)
class MessageRenderer:
    """Renders notifications as markdown in one language and zone.

    Args:
        language: ``zh-CN`` or ``en``.
        timezone: IANA zone the times are shown in.
        overrides: Operator templates by (kind, language) (see :func:`load_templates`).
    """

    language: str = "zh-CN"
    timezone: str = "Asia/Shanghai"
    overrides: Mapping[tuple[str, str], str] = field(default_factory=dict)

    def _template(self, kind: str) -> string.Template:
        key = (kind, self.language)
        return string.Template(self.overrides.get(key) or builtin_templates()[key])

    def _word(self, word: str) -> str:
        return _WORDS[self.language].get(word, word)

    def _time(self, iso: str) -> str:
        try:
            value = datetime.fromisoformat(iso)
        except ValueError:
            return iso  # not ours to refuse: show what was stored
        if value.tzinfo is None:
            return iso
        return local_time(value, zone(self.timezone), self.language)

    def _fields(self, n: AlertMessage) -> dict[str, str]:
        return {"severity": self._word(n.severity), "type": self._word(n.type),
                "household": n.household, "sensor": n.sensor, "community": n.community,
                "count": str(n.count), "first_seen": self._time(n.first_seen),
                "alert_id": str(n.alert_id), "ack_command": f"netguard alerts ack {n.alert_id}",
                # A line of its own, or nothing (the line is then dropped).
                "ack_link": f"- [{_ACK_LINK[self.language]}]({n.ack_url})" if n.ack_url
                else _NOTHING}

    def _reason_line(self, text: str) -> str:
        # Stored in English (the audit trail); shown in the message's language.
        text = translate(text, self.language)
        return "- " + _ISO_INSTANT.sub(lambda m: self._time(m.group(0).replace("Z", "+00:00")),
                                       text)

    def _link_line(self, n: AlertMessage) -> str | None:
        return f"- [{_ACK_LINK[self.language]}]({n.ack_url})" if n.ack_url else None

    def _digest(self, batch: Sequence[AlertMessage]) -> str:
        items = []
        for n in batch:
            link = f" [{_ACK_LINK[self.language]}]({n.ack_url})" if n.ack_url else ""
            if n.text is None:
                items.append(self._template("batch_item").safe_substitute(
                    {**self._fields(n), "kind": "", "ack_link": link}))
                continue
            head = next((line.lstrip("#").strip() for line in n.text.split("\n")
                         if line.strip()), "netguard")
            items.append(f"- {head}{link}")
        return self._template("digest").safe_substitute(count=str(len(batch)),
                                                        items="\n".join(items))

    def markdown(self, batch: Sequence[AlertMessage]) -> str:
        """One message for ``batch``: one alert with its reasons, or one line per alert
        (so that 20 alerts fit the robots' 4096-byte limit). A ticket or Alertmanager
        message is its stored ``text``; mixed with others, its first line."""
        if any(n.text is not None for n in batch):
            if len(batch) > 1:
                return self._digest(batch)
            text = batch[0].text or ""
            link = self._link_line(batch[0])
            return text if link is None else f"{text}\n{link}"
        if len(batch) == 1:
            n = batch[0]
            kind = n.reason if n.reason in PLACEHOLDERS else "raised"
            values = self._fields(n)
            # An empty reasons list leaves no blank line behind.
            values["reasons"] = ("\n".join(self._reason_line(r) for r in n.reasons)
                                 or _NOTHING)
            text = self._template(kind).safe_substitute(values)
            return "\n".join(line for line in text.split("\n") if line != _NOTHING)
        items = []
        for n in batch:
            values = self._fields(n)
            values["kind"] = _WORDS[self.language].get(n.reason, "") \
                if n.reason in _LABELLED else ""
            values["ack_link"] = f" [{_ACK_LINK[self.language]}]({n.ack_url})" \
                if n.ack_url else ""
            items.append(self._template("batch_item").safe_substitute(values))
        return self._template("batch").safe_substitute(
            alerts=str(len(batch)), items="\n".join(items),
            ack_command=_ACK_ANY[self.language])

    def title(self, batch: Sequence[AlertMessage]) -> str:
        """The message's first non-blank line without its markdown heading marks."""
        lines = (line.lstrip("#").strip() for line in self.markdown(batch).split("\n"))
        return next((line for line in lines if line), "netguard")


@functools.cache
def builtin_templates() -> Mapping[tuple[str, str], str]:
    """The shipped templates (``netguard/iot/templates``), one per kind and language.

    Raises:
        TemplateError: A shipped file is broken or missing (a packaging fault).
    """
    found = load_templates(BUILTIN_DIR)
    missing = sorted(f"{k}.{lang}.md" for k in PLACEHOLDERS for lang in LANGUAGES
                     if (k, lang) not in found)
    if missing:
        raise TemplateError(f"{BUILTIN_DIR}: missing {', '.join(missing)}")
    return found


__all__ = [
    "LANGUAGES",
    "PLACEHOLDERS",
    "AlertMessage",
    "MessageRenderer",
    "TemplateError",
    "builtin_templates",
    "check_template",
    "load_templates",
    "local_time",
]
