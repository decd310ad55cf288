"""Terminal display width, so that tables with Chinese text stay aligned.

A CJK character (East Asian Wide or Fullwidth) takes two terminal columns; combining
marks take none. ``str.ljust`` counts characters, which shifts every column after a
household label such as ``3号楼1201``.
"""

from __future__ import annotations

import unicodedata


def display_width(text: str) -> int:
    """The columns ``text`` takes in a terminal (East Asian Wide/Fullwidth count 2)."""
    width = 0
    for char in text:
        if unicodedata.combining(char):
            continue
        width += 2 if unicodedata.east_asian_width(char) in ("W", "F") else 1
    return width


def pad(text: str, width: int) -> str:
    """``text`` padded with spaces to ``width`` display columns (never cut)."""
    return text + " " * max(0, width - display_width(text))


__all__ = ["display_width", "pad"]
