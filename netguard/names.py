"""The one pattern for operator-given names (communities, households, sensors, routes).

Community, household, sensor (and bus address), notifier and route names end up in MQTT
topics (``netguard/alerts/<community>``), in spreadsheets, in log lines and in dedup keys,
so they are checked once, here, wherever they enter: the CLI, the households CSV import
and the YAML config.

The pattern (documented in docs/iot.md)::

    1-64 characters: letters or digits of any script (e.g. 阳光社区), ``_``, ``.``, ``:``
    and ``-``, starting with a letter, a digit or ``_``.

So no MQTT wildcard (``#``, ``+``), no topic separator ``/``, no ``$``, no whitespace and
no control characters. The pattern is anchored with ``\\A ... \\Z``: ``$`` would accept a
trailing newline.
"""

from __future__ import annotations

import re

NAME_MAX = 64
# \w is Unicode-aware: letters and digits of any script plus "_"; never a control
# character, a space, "/", "#", "+" or "$".
NAME_PATTERN = r"\A\w[\w.:-]{0,63}\Z"
_NAME = re.compile(NAME_PATTERN)
NAME_RULE = ("1-64 letters, digits, '_', '.', ':' or '-', starting with a letter, digit or "
             "'_' (no '/', '#', '+', spaces or control characters)")


class InvalidNameError(ValueError):
    """A name does not follow :data:`NAME_PATTERN`.

    Attributes:
        what: What the name is for (``community``, ``household id``, ...).
        value: The refused value.
    """

    def __init__(self, what: str, value: object) -> None:
        self.what = what
        self.value = value
        shown = value[:80] + "..." if isinstance(value, str) and len(value) > 80 else value
        super().__init__(f"invalid {what} {shown!r}: use {NAME_RULE}")


def is_name(value: object) -> bool:
    """True when ``value`` is a string following :data:`NAME_PATTERN`."""
    return isinstance(value, str) and _NAME.match(value) is not None


def check_name(value: object, what: str = "name") -> str:
    """Return ``value`` if it follows :data:`NAME_PATTERN`.

    Raises:
        InvalidNameError: It does not (a ``ValueError``).
    """
    if not is_name(value):
        raise InvalidNameError(what, value)
    assert isinstance(value, str)
    return value
