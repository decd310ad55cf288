"""What the door-sensor commands share: times, bad input, running the admin service, tables.

Every command calls :class:`netguard.iot.admin.IotAdmin` through :func:`run_admin`; none
builds a query.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, tzinfo
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, ParamSpec, TypeVar

import typer

from netguard.cli.common import EXIT_CONFIG, fail, load_config, run_async
from netguard.textwidth import display_width, pad

if TYPE_CHECKING:
    from netguard.config import Settings
    from netguard.iot.admin import IotAdmin

T = TypeVar("T")
P = ParamSpec("P")

FromOption = Annotated[str | None, typer.Option("--from", help="ISO 8601 time (UTC if no offset).")]
ToOption = Annotated[str | None, typer.Option("--to", help="ISO 8601 time (UTC if no offset).")]


def parse_time(value: str | None, what: str) -> datetime | None:
    """An ISO 8601 option as an aware time (UTC if it has no offset); exit 2 if it is not
    one."""
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise fail(f"{what}: not an ISO 8601 time: {value!r}", EXIT_CONFIG) from None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed


def parse_local(value: str, what: str, tz: tzinfo) -> datetime:
    """An ISO 8601 date or time as an aware time; a date is midnight and a time without
    offset is wall-clock time in ``tz`` (the district's zone). Exit 2 if it is neither."""
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise fail(f"{what}: not an ISO 8601 date or time: {value!r}", EXIT_CONFIG) from None
    return parsed.replace(tzinfo=tz) if parsed.tzinfo is None else parsed


def parse_span(start: str | None, end: str | None
               ) -> tuple[datetime | None, datetime | None]:
    """``--from`` and ``--to`` as times; exit 2 unless ``--from`` is before ``--to``."""
    begin, finish = parse_time(start, "--from"), parse_time(end, "--to")
    if begin is not None and finish is not None and begin >= finish:
        # [from, to) would be empty: say so rather than export nothing with exit 0.
        raise fail(f"--from {begin.isoformat()} is not before --to {finish.isoformat()}",
                   EXIT_CONFIG)
    return begin, finish


def now() -> datetime:
    """The wall time, for defaults the operator sees echoed."""
    return datetime.now(UTC)


def bad_input(func: Callable[P, T]) -> Callable[P, T]:
    """An invalid id, name or text (a ValueError from netguard.names or the registry) is a
    one-line ``error:`` with exit 2, like a bad option, instead of a traceback."""

    @functools.wraps(func)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> T:
        try:
            return func(*args, **kwargs)
        except ValueError as exc:
            raise fail(str(exc).splitlines()[0], EXIT_CONFIG) from None

    return wrapper


def run_admin(config: Path | None, work: Callable[[IotAdmin, Settings], Awaitable[T]], *,
              read_only: bool = False) -> T:
    """Load the config, open the store and run ``work`` with the admin service.

    Args:
        config: ``--config``.
        work: What to do (it also gets the settings, e.g. for the audit key).
        read_only: A read: never create a missing SQLite file, even with
            ``store.auto_upgrade`` (exit 5 naming it instead).
    """
    settings = load_config(config)
    if read_only:
        # Store refuses a missing SQLite file unless store.auto_upgrade lets a write create
        # it; a read never creates it, so check here even with auto_upgrade.
        from netguard.store.db import head_revision

        settings.store.require_sqlite_file(head_revision())

    async def main() -> T:
        from netguard.iot.admin import IotAdmin
        from netguard.store import Store

        async with Store(settings.store) as store:
            return await work(IotAdmin(store), settings)

    return run_async(main())


def print_table(rows: list[dict[str, Any]], columns: list[str]) -> None:
    """``rows`` as aligned columns under upper-case headers, or ``(none)``."""
    if not rows:
        typer.echo("(none)")
        return
    text = [[("" if r.get(c) is None else str(r.get(c))) for c in columns] for r in rows]
    # Display width, not len(): a Chinese character takes two columns.
    widths = [max(len(c), *(display_width(t[i]) for t in text))
              for i, c in enumerate(columns)]
    typer.echo("  ".join(pad(c.upper(), w) for c, w in zip(columns, widths, strict=True)))
    for t in text:
        typer.echo("  ".join(pad(v, w) for v, w in zip(t, widths, strict=True)))
