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
    from zoneinfo import ZoneInfo

    from netguard.config import Settings
    from netguard.iot.admin import IotAdmin

T = TypeVar("T")
P = ParamSpec("P")

FromOption = Annotated[str | None, typer.Option(
    "--from", help="ISO 8601 date or time; without an offset it is read in "
                   "display.timezone (with Asia/Shanghai, 2026-11-29T08:00 is 08:00 Beijing "
                   "time).")]
ToOption = Annotated[str | None, typer.Option(
    "--to", help="ISO 8601 date or time; without an offset it is read in "
                 "display.timezone.")]


def display_zone(settings: Settings) -> ZoneInfo:
    """``display.timezone``: the zone times are read and shown in."""
    from netguard.localtime import zone

    return zone(settings.display.timezone)


def parse_time(value: str | None, what: str, tz: tzinfo) -> datetime | None:
    """An ISO 8601 date or time option as an aware UTC time (see
    :func:`netguard.localtime.parse_wall`: no offset means wall-clock time in ``tz``);
    None stays None; exit 2 naming the option if it is not one."""
    return None if value is None else parse_required(value, what, tz)


def parse_required(value: str, what: str, tz: tzinfo) -> datetime:
    """:func:`parse_time` for an option that must be given."""
    from netguard.clock import as_utc
    from netguard.localtime import TimeInputError, parse_wall

    try:
        # In UTC: SQLite compares stored times as text, so a bound +08:00 time would be
        # compared by its wall clock.
        return as_utc(parse_wall(value, tz, what))
    except TimeInputError as exc:
        raise fail(str(exc), EXIT_CONFIG) from None


def parse_span(start: str | None, end: str | None, tz: tzinfo
               ) -> tuple[datetime | None, datetime | None]:
    """``--from`` and ``--to`` as times (read in ``tz`` without an offset); exit 2 unless
    ``--from`` is before ``--to``."""
    begin, finish = parse_time(start, "--from", tz), parse_time(end, "--to", tz)
    if begin is not None and finish is not None and begin >= finish:
        # [from, to) would be empty: say so rather than export nothing with exit 0.
        raise fail(f"--from {begin.astimezone(tz).isoformat()} is not before --to "
                   f"{finish.astimezone(tz).isoformat()}", EXIT_CONFIG)
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
              read_only: bool = False, settings: Settings | None = None) -> T:
    """Load the config, open the store and run ``work`` with the admin service.

    Args:
        config: ``--config``.
        work: What to do (it also gets the settings, e.g. for the audit key).
        read_only: A read: never create a missing SQLite file, even with
            ``store.auto_upgrade`` (exit 5 naming it instead).
        settings: The settings when the command has loaded them already (to read times
            in ``display.timezone``); ``config`` is then not read again.
    """
    if settings is None:
        settings = load_config(config)
    if read_only:
        # Store refuses a missing SQLite file unless store.auto_upgrade lets a write create
        # it; a read never creates it, so check here even with auto_upgrade.
        from netguard.store.db import head_revision

        settings.store.require_sqlite_file(head_revision())

    async def main() -> T:
        from netguard.iot.admin import IotAdmin
        from netguard.store import Store

        assert settings is not None  # set above; mypy cannot see it inside the closure
        async with Store(settings.store) as store:
            return await work(IotAdmin(store), settings)

    return run_async(main())


def print_table(rows: list[dict[str, Any]], columns: list[str], *,
                tz: ZoneInfo | None = None, times: tuple[str, ...] = ()) -> None:
    """``rows`` as aligned columns under upper-case headers, or ``(none)``.

    The ``times`` columns (ISO 8601 strings or datetimes) are shown as wall-clock times in
    ``tz``, and their headers name the zone once: ``LAST_SEEN (Asia/Shanghai)``.
    """
    if not rows:
        typer.echo("(none)")
        return
    from netguard.localtime import wall_text

    def cell(row: dict[str, Any], column: str) -> str:
        value = row.get(column)
        if column in times and tz is not None:
            value = wall_text(value, tz)
        return "" if value is None else str(value)

    headers = [c.upper() + (f" ({tz.key})" if c in times and tz is not None else "")
               for c in columns]
    text = [[cell(r, c) for c in columns] for r in rows]
    # Display width, not len(): a Chinese character takes two columns.
    widths = [max(display_width(h), *(display_width(t[i]) for t in text))
              for i, h in enumerate(headers)]
    typer.echo("  ".join(pad(h, w) for h, w in zip(headers, widths, strict=True)))
    for t in text:
        typer.echo("  ".join(pad(v, w) for v, w in zip(t, widths, strict=True)))
