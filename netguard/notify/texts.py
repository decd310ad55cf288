"""The texts of ticket messages: templates in zh-CN and en, times in the local zone. Pure.

The kinds (``ticket_opened`` ...) are registered with the door alerts' in
:data:`netguard.iot.messages.PLACEHOLDERS`, so the shipped files live beside theirs in
``netguard/iot/templates`` and an operator overrides them the same way
(``display.templates_dir``). A message is rendered when it is queued: it is a snapshot of
the ticket and its children at that moment.
"""

from __future__ import annotations

import string
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from netguard.iot.messages import PLACEHOLDERS, builtin_templates, local_time
from netguard.localtime import zone
from netguard.notify.summaries import title_summary

TICKET_KINDS: tuple[str, ...] = tuple(k for k in PLACEHOLDERS if k.startswith("ticket_"))
"""The message kinds of ticket notifications."""

# How many children a message names before "... and N more".
CHILDREN_SHOWN = 10
_NOTHING = "\0"

_SEVERITY = {"zh-CN": {"critical": "紧急", "major": "重要", "minor": "次要",
                       "warning": "警告"},
             "en": {}}
# Fullwidth punctuation of Chinese text as escapes: "\u3001" is the enumeration comma,
# "\uff1a" the colon.
# The title's note of how many children a root has, and the line naming them.
_BEHIND = {"zh-CN": "\uff1b其后 {count} 个站点受影响", "en": "; {count} sites behind it"}
_CHILDREN = {"zh-CN": "- 受影响站点\uff1a{names}", "en": "- behind it: {names}"}
_NEW_CHILDREN = {
    "zh-CN": "- 新增受影响站点\uff1a{names}",
    "en": "- newly affected: {names}",
}
_SEP = {"zh-CN": "\u3001", "en": ", "}
_MORE = {"zh-CN": " 等\uff0c另有 {n} 个", "en": ", ... and {n} more"}
_NONE = {"zh-CN": "无", "en": "-"}


def _duration(seconds: float, language: str) -> str:
    minutes = max(0, int(seconds // 60))
    hours, minutes = divmod(minutes, 60)
    if language == "zh-CN":
        return f"{hours} 小时 {minutes} 分钟" if hours else f"{minutes} 分钟"
    return f"{hours} h {minutes} min" if hours else f"{minutes} min"


@dataclass(frozen=True, slots=True)
class TicketFacts:
    """What a ticket message shows.

    Attributes:
        children: Every child attached so far, oldest first.
        new_children: The children an update announces.
    """

    ref: str
    severity: str
    site: str | None
    target: str | None
    summary: str
    category: str
    opened_at: datetime
    children: tuple[str, ...] = ()
    new_children: tuple[str, ...] = ()
    route: str = ""


@dataclass(frozen=True, slots=True)
class TicketTexts:
    """Renders ticket messages in one language and zone.

    Args:
        language: ``zh-CN`` or ``en``.
        timezone: IANA zone the times are shown in.
        overrides: Operator templates by (kind, language).
    """

    language: str = "zh-CN"
    timezone: str = "Asia/Shanghai"
    overrides: Mapping[tuple[str, str], str] = field(default_factory=dict)

    def names(self, names: Sequence[str]) -> str:
        """``names`` joined, at most :data:`CHILDREN_SHOWN` of them."""
        shown = _SEP[self.language].join(names[:CHILDREN_SHOWN])
        rest = len(names) - CHILDREN_SHOWN
        return shown + (_MORE[self.language].format(n=rest) if rest > 0 else "")

    def render(self, kind: str, facts: TicketFacts, now: datetime) -> str:
        """The markdown of a ``kind`` message about ``facts`` at ``now``."""
        key = (kind, self.language)
        template = string.Template(self.overrides.get(key) or builtin_templates()[key])
        tz = zone(self.timezone)
        lang = self.language
        count = len(facts.children)
        children = (_CHILDREN[lang].format(names=self.names(facts.children))
                    if count else _NOTHING)
        if kind == "ticket_update":
            children = _NEW_CHILDREN[lang].format(names=self.names(facts.new_children))
        values = {
            "ref": facts.ref, "severity": _SEVERITY[lang].get(facts.severity, facts.severity),
            "site": facts.site or _NONE[lang], "target": facts.target or _NONE[lang],
            "summary": title_summary(facts.summary, facts.target, lang),
            "category": facts.category,
            "since": local_time(facts.opened_at, tz, lang), "at": local_time(now, tz, lang),
            "open_for": _duration((now - facts.opened_at).total_seconds(), lang),
            "behind": _BEHIND[lang].format(count=count) if count else "",
            "children": children, "child_count": str(count),
            "new_count": str(len(facts.new_children)), "route": facts.route,
        }
        text = template.safe_substitute(values)
        # A placeholder with nothing to say takes its line with it.
        return "\n".join(line for line in text.split("\n") if line != _NOTHING)


__all__ = ["CHILDREN_SHOWN", "TICKET_KINDS", "TicketFacts", "TicketTexts"]
