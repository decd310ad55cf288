"""Door-alert reason lines in the message language.

The rules (:mod:`netguard.iot.rules`) and the follow-ups (:mod:`netguard.iot.followups`)
write each reason as one English line, and that text is stored as it is: it is the audit
trail (``alerts show``, ``audit export``), and changing how it is written would change
old records. A message is rendered from those lines, so a zh-CN message translates each
one here, by its pattern. A line that matches no pattern (an older wording, an operator's
text) is shown unchanged: a message is never dropped for its wording.

Every pattern matches the whole line; the ISO times inside stay ISO so that the renderer
turns them into local time afterwards (which ends in a fullwidth bracket, so no space
follows a time).
"""

from __future__ import annotations

import re
from collections.abc import Callable

# One duration as rules.format_duration writes it: "45 s", "12 min", "3 h 5 min", "2 d".
_DURATION_PART = re.compile(r"(\d+) (s|min|h|d)\b")
_ZH_UNITS = {"s": "秒", "min": "分钟", "h": "小时", "d": "天"}
_ISO = r"\d{4}-\d{2}-\d{2}T[0-9:.]+(?:Z|[+-]\d{2}:\d{2})"
_DUR = r"\d+ (?:s|min|h|d)(?: \d+ (?:s|min|h))?"
_ORD = r"(?P<n>\d+)(?:st|nd|rd|th)"
# Chinese text uses fullwidth brackets, semicolons and commas; written as escapes so that
# they are not mistaken for ASCII ones when the file is edited.
_LB, _RB, _SEMI, _COMMA = "\uff08", "\uff09", "\uff1b", "\uff0c"


def _zh_duration(text: str) -> str:
    # "3 h 12 min" -> "3小时12分钟": Chinese writes a duration without spaces.
    return _DURATION_PART.sub(lambda m: f"{m.group(1)}{_ZH_UNITS[m.group(2)]}",
                              text).replace(" ", "")


def _back_online(m: re.Match[str]) -> str:
    after = f"离线{_zh_duration(m['after'])}后" if m["after"] else ""
    how = f"{after}{_COMMA if after else ''}消息类型 {m['kind']}"
    return f"传感器恢复在线{_LB}{how}{_RB}"


def _again(m: re.Match[str]) -> str:
    text = (f"再次开门{_LB}{_zh_duration(m['span'])}内第 {m['n']} 次{_SEMI}"
            f"首次开门于 {m['first']}{_RB}")
    if m["folded"]:
        text += f"{_SEMI}自上条消息以来开门 {m['folded']} 次"
    return text


_Pattern = tuple[re.Pattern[str], Callable[[re.Match[str]], str]]

_ZH: tuple[_Pattern, ...] = tuple((re.compile(p + r"\Z"), f) for p, f in (
    (rf"door opened at (?P<at>{_ISO}) during quarantine of household (?P<h>.+)",
     lambda m: f"住户 {m['h']} 隔离期间于 {m['at']}开门"),
    (rf"door opened again \({_ORD} time in (?P<span>{_DUR}); first opening at "
     rf"(?P<first>{_ISO})\)(?:; (?P<folded>\d+) openings since the last message)?",
     _again),
    (rf"door opened again at (?P<at>{_ISO}) \({_ORD} opening\)",
     lambda m: f"{m['at']}再次开门{_LB}第 {m['n']} 次{_RB}"),
    (r"door closed", lambda m: "门已关闭"),
    (r"availability topic reports offline", lambda m: f"设备上报离线{_LB}可用性主题{_RB}"),
    (rf"sensor back online(?: after (?P<after>{_DUR}))? \((?P<kind>[a-z_]+)\)",
     _back_online),
    (r"no message for (?P<n>\d+) s \(timeout (?P<t>[0-9.e+]+) s\)",
     lambda m: f"{m['n']} 秒未收到消息{_LB}超时 {m['t']} 秒{_RB}"),
    (r"battery (?P<b>[0-9.e+-]+)% below (?P<lim>[0-9.e+-]+)%",
     lambda m: f"电量 {m['b']}%{_COMMA}低于 {m['lim']}%"),
    (r"battery (?P<b>[0-9.e+-]+)% \(replaced\)",
     lambda m: f"电量 {m['b']}%{_LB}已更换电池{_RB}"),
    (r"tamper switch triggered", lambda m: "防拆开关被触发"),
    (r"tamper switch restored", lambda m: "防拆开关已复位"),
    (r"\((?P<n>\d+) earlier lines not kept\)",
     lambda m: f"{_LB}另有 {m['n']} 条较早的记录未保留{_RB}"),
))

_TABLES: dict[str, tuple[_Pattern, ...]] = {"zh-CN": _ZH}


def translate(line: str, language: str) -> str:
    """``line`` (a stored reason, in English) in ``language``; unchanged when the
    language is English or no pattern matches."""
    for pattern, render in _TABLES.get(language, ()):
        match = pattern.match(line)
        if match is not None:
            return render(match)
    return line


__all__ = ["translate"]
