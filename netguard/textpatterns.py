"""Translation of stored English lines by pattern: the mechanism, without the wordings. Pure.

A stored line (a fault reason, a ticket summary) stays English: it is the audit trail. A
message in another language renders each line through a table of whole-line patterns;
the first that matches wins, and a line no pattern matches is shown as stored, so that a
message is never dropped for its wording.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable

Render = Callable[[re.Match[str]], str]
Pattern = tuple[re.Pattern[str], Render]


def compile_table(rules: Iterable[tuple[str, Render]]) -> tuple[Pattern, ...]:
    """``rules`` (regex source, renderer) compiled to match whole lines."""
    return tuple((re.compile(source + r"\Z"), render) for source, render in rules)


def match_line(table: Iterable[Pattern], line: str) -> str | None:
    """``line`` rendered by the first pattern of ``table`` that matches it, or ``None``."""
    for pattern, render in table:
        match = pattern.match(line)
        if match is not None:
            return render(match)
    return None


__all__ = ["Pattern", "Render", "compile_table", "match_line"]
