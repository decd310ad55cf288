"""``netguard tickets ...``: list, show, export, and the operator actions.

Listings go through the fast read-only :mod:`netguard.tickets.reader`; every write goes
through :class:`~netguard.tickets.service.TicketService`, which records who did it.
Heavy imports happen inside the commands so that ``list`` starts fast.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, ParamSpec, TypeVar

import typer

from netguard.cli import ticket_notify
from netguard.cli.common import (
    EXCEL_BOM,
    EXIT_CONFIG,
    ConfigOption,
    ExcelOption,
    JsonOption,
    fail,
    handle_errors,
    load_config,
    operator_name,
    print_json,
    run_async,
)

if TYPE_CHECKING:
    from collections.abc import AsyncIterator
    from datetime import datetime, tzinfo
    from typing import TextIO
    from zoneinfo import ZoneInfo

    from netguard.config import Settings
    from netguard.tickets.domain import Ticket, TicketFilter
    from netguard.tickets.service import TicketService

P = ParamSpec("P")
T = TypeVar("T")

app = typer.Typer(help="Fault tickets: list, show, export, and operator actions.",
                  no_args_is_help=True)

StateOption = Annotated[list[str] | None, typer.Option(
    "--state", help="open, acknowledged, resolved, closed or all (repeatable or "
                    "comma-separated). Default for list: everything but closed.")]
CategoryOption = Annotated[list[str] | None, typer.Option(
    "--category", help="fiber, wireless, private_line, cabin_5g, pon or a manual category.")]
SeverityOption = Annotated[list[str] | None, typer.Option(
    "--severity", help="critical, major, minor or warning.")]
SiteOption = Annotated[list[str] | None, typer.Option("--site", help="Site id.")]
TargetOption = Annotated[list[str] | None, typer.Option("--target", help="Target id.")]
AssigneeOption = Annotated[list[str] | None, typer.Option("--assignee", help="Assignee.")]
SinceOption = Annotated[str | None, typer.Option(
    "--since", help="Opened since: a duration (30m, 6h, 2d) or an ISO 8601 date or time; "
                    "without an offset it is read in display.timezone (2026-11-29T08:00 "
                    "is 08:00 Beijing time with Asia/Shanghai).")]
OverdueOption = Annotated[bool, typer.Option("--overdue", help="Only tickets past their SLA.")]
ByOption = Annotated[str | None, typer.Option(
    "--by", help="Who acts (default: $NETGUARD_OPERATOR, else the login name).")]
MessageOption = Annotated[str, typer.Option("--message", "-m", help="Why (goes in the history).")]
RequiredMessage = Annotated[str, typer.Option("--message", "-m",
                                              help="Why (goes in the history).")]
IdArgument = Annotated[str, typer.Argument(
    help="Ticket id, e.g. NG-000123 (the prefix is tickets.id_prefix).")]


def _usage_errors(func: Callable[P, T]) -> Callable[P, T]:
    """Bad option values (ValueError from parsing or the service) exit 2 with a message."""

    @functools.wraps(func)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> T:
        try:
            return func(*args, **kwargs)
        except ValueError as exc:
            raise fail(str(exc), EXIT_CONFIG) from None

    return wrapper


def _split(values: list[str] | None) -> tuple[str, ...]:
    out: list[str] = []
    for value in values or ():
        out.extend(v.strip() for v in value.split(",") if v.strip())
    return tuple(out)


def _filter(*, state: list[str] | None, category: list[str] | None,
            severity: list[str] | None, site: list[str] | None, target: list[str] | None,
            assignee: list[str] | None, since: str | None, overdue: bool, limit: int | None,
            now: datetime, tz: tzinfo, all_states_by_default: bool = False) -> TicketFilter:
    from netguard.tickets.domain import TicketFilter, TicketState
    from netguard.tickets.render import parse_since

    names = _split(state)
    states: tuple[TicketState, ...] | None
    if "all" in names or (not names and all_states_by_default):
        states = tuple(TicketState)
    elif names:
        try:
            states = tuple(TicketState(n) for n in names)
        except ValueError:
            bad = next(n for n in names if n not in {s.value for s in TicketState})
            raise ValueError(f"--state {bad!r}: expected one of "
                             f"{', '.join(s.value for s in TicketState)} or all") from None
    else:
        states = None
    return TicketFilter(states=states, categories=_split(category),
                        severities=_split(severity), sites=_split(site),
                        targets=_split(target), assignees=_split(assignee),
                        since=parse_since(since, now, tz) if since else None,
                        overdue=overdue, limit=limit)


def _zone(settings: Settings) -> ZoneInfo:
    """``display.timezone``: where times are read and shown."""
    from netguard.localtime import zone

    return zone(settings.display.timezone)


def _now() -> datetime:
    from netguard.clock import SystemClock

    return SystemClock().now()


@app.command("list")
@handle_errors
@_usage_errors
def list_tickets(
    *,
    config: ConfigOption = None,
    state: StateOption = None,
    category: CategoryOption = None,
    severity: SeverityOption = None,
    site: SiteOption = None,
    target: TargetOption = None,
    assignee: AssigneeOption = None,
    since: SinceOption = None,
    overdue: OverdueOption = False,
    limit: Annotated[int | None, typer.Option(
        "--limit", min=1, help="Page size (default: tickets.page_size, 50).")] = None,
    all_: Annotated[bool, typer.Option("--all", help="Every matching ticket, no page limit.")
                    ] = False,
    json_: JsonOption = False,
) -> None:
    """List tickets, most urgent first (severity, then age). Default: not closed.

    Times are shown in display.timezone; --json gives them in UTC.
    """
    settings = load_config(config)
    now = _now()
    page = None if all_ else (limit or settings.tickets.page_size)
    # One row more than the page tells whether there is more to show.
    flt = _filter(state=state, category=category, severity=severity, site=site,
                  target=target, assignee=assignee, since=since, overdue=overdue,
                  limit=None if page is None else page + (0 if json_ else 1), now=now,
                  tz=_zone(settings))
    run_async(_list(settings, flt, page, now, json_))


async def _list(settings: Settings, flt: TicketFilter, page: int | None, now: datetime,
                as_json: bool) -> None:
    from netguard.tickets import render
    from netguard.tickets.reader import open_reader

    async with open_reader(settings.store, prefix=settings.tickets.id_prefix,
                           now=now) as reader:
        if as_json:
            await render.write_json(reader.records(flt), sys.stdout)
            return
        tickets: list[Ticket] = [t async for t in reader.tickets(flt)]
    more = page is not None and len(tickets) > page
    shown = tickets[:page] if page is not None else tickets
    if not shown:
        typer.echo("no tickets match")
        return
    typer.echo(render.table(shown, now, _zone(settings)))
    if more:
        typer.echo(f"(first {page} shown, most urgent first; --limit N or --all for more)")


@app.command("export")
@handle_errors
@_usage_errors
def export_tickets(
    *,
    format_: Annotated[str, typer.Option("--format", help="csv or json.")] = "csv",
    output: Annotated[Path | None, typer.Option(
        "--output", "-o", help="Write to this file instead of stdout.")] = None,
    config: ConfigOption = None,
    state: StateOption = None,
    category: CategoryOption = None,
    severity: SeverityOption = None,
    site: SiteOption = None,
    target: TargetOption = None,
    assignee: AssigneeOption = None,
    since: SinceOption = None,
    overdue: OverdueOption = False,
    excel: ExcelOption = False,
) -> None:
    """Export matching tickets (default: every state) as CSV or JSON, streamed.

    CSV times are ISO 8601 in display.timezone with their offset; JSON times are UTC.
    """
    if format_ not in ("csv", "json"):
        raise ValueError(f"--format {format_!r}: expected csv or json")
    if excel and format_ != "csv":
        raise ValueError("--excel is for --format csv")
    settings = load_config(config)
    now = _now()
    flt = _filter(state=state, category=category, severity=severity, site=site,
                  target=target, assignee=assignee, since=since, overdue=overdue,
                  limit=None, now=now, tz=_zone(settings), all_states_by_default=True)
    run_async(_export(settings, flt, now, format_, output, excel=excel))


async def _export(settings: Settings, flt: TicketFilter, now: datetime, format_: str,
                  output: Path | None, *, excel: bool = False) -> None:
    from netguard.csvsafe import escaping  # cells that would run as spreadsheet formulas
    from netguard.tickets import render
    from netguard.tickets.reader import open_reader

    tz = _zone(settings)

    async def write_csv(records: AsyncIterator[list[Any]], out: TextIO) -> int:
        return await render.write_csv(records, out, tz)

    write = escaping(write_csv) if format_ == "csv" else render.write_json
    async with open_reader(settings.store, prefix=settings.tickets.id_prefix,
                           now=now) as reader:
        if output is None:
            if excel:
                sys.stdout.write(EXCEL_BOM)
            await write(reader.records(flt), sys.stdout)
            return
        # utf-8-sig writes the BOM that spreadsheet tools need to read UTF-8.
        with output.open("w", encoding="utf-8-sig" if excel else "utf-8",
                         newline="") as out:
            count = await write(reader.records(flt), out)
        typer.echo(f"exported {count} tickets to {output}", err=True)


def _with_service(settings: Settings, work: Callable[[TicketService], Any]) -> Any:
    async def run() -> Any:
        from netguard.store.db import Store
        from netguard.tickets.service import TicketService

        async with Store(settings.store) as store:
            return await work(TicketService(store, settings.tickets))

    return run_async(run())


@app.command("show")
@handle_errors
@_usage_errors
def show(ticket_id: IdArgument, config: ConfigOption = None, json_: JsonOption = False) -> None:
    """Show one ticket with its children and full history (times in display.timezone;
    --json gives them in UTC)."""
    from netguard.tickets import render

    settings = load_config(config)
    ref = _checked_ref(ticket_id, settings)
    item = _with_service(settings, lambda svc: svc.detail(ref))
    sent = ticket_notify.sent_for(settings, item.ticket.id)
    if json_:
        print_json({**item.to_dict(), "notifications": [n.to_dict() for n in sent]})
    else:
        typer.echo(render.detail(item, _now(), _zone(settings)))
        typer.echo(ticket_notify.sent_text(sent, settings))


def _checked_ref(text: str, settings: Settings) -> str:
    """The canonical id for what the operator typed, checked before anything is touched.

    Raises:
        ValueError: Not a ticket id, or another installation's prefix (exit 2: a typo
            must never act on the ticket that happens to have the same number).
    """
    from netguard.tickets.domain import format_ref, parse_ref

    prefix = settings.tickets.id_prefix
    return format_ref(parse_ref(text, prefix), prefix)


def _act(ticket_id: str, what: str, call: Callable[[TicketService, str, str], Any], *,
         config: Path | None, by: str | None, as_json: bool) -> None:
    """Run one operator action on ``ticket_id`` through the service and report the ticket.

    ``call`` gets the service, the checked ticket id and the actor.
    """
    settings = load_config(config)
    ref = _checked_ref(ticket_id, settings)
    actor = operator_name(by)
    ticket: Ticket = _with_service(settings, lambda svc: call(svc, ref, actor))
    _report(ticket, what, actor, as_json)


def _report(ticket: Ticket, what: str, actor: str, as_json: bool) -> None:
    if as_json:
        print_json(ticket.to_dict())
    else:
        typer.echo(f"{ticket.ref} {what} by {actor} (now {ticket.state.value})")


@app.command("open")
@handle_errors
@_usage_errors
def open_ticket(
    *,
    category: Annotated[str, typer.Option("--category", help="Link kind or a manual category.")],
    summary: Annotated[str, typer.Option("--summary", help="One line for the queue.")],
    severity: Annotated[str, typer.Option(
        "--severity", help="critical, major, minor or warning.")] = "minor",
    target: Annotated[str | None, typer.Option("--target", help="Target id.")] = None,
    site: Annotated[str | None, typer.Option("--site", help="Site id.")] = None,
    message: MessageOption = "",
    by: ByOption = None,
    config: ConfigOption = None,
    json_: JsonOption = False,
) -> None:
    """Open a manual ticket (needs --target or --site)."""
    from netguard.tickets.domain import as_severity

    level = as_severity(severity)
    settings = load_config(config)
    actor = operator_name(by)
    ticket: Ticket = _with_service(settings, lambda svc: svc.open(
        category=category, summary=summary, severity=level, target=target, site=site,
        actor=actor, message=message))
    _report(ticket, "opened", actor, json_)


@app.command("ack")
@handle_errors
@_usage_errors
def ack(ticket_id: IdArgument, message: MessageOption = "", by: ByOption = None,
        config: ConfigOption = None, json_: JsonOption = False) -> None:
    """Acknowledge an open ticket."""
    _act(ticket_id, "acknowledged",
         lambda svc, ref, actor: svc.acknowledge(ref, actor=actor, message=message),
         config=config, by=by, as_json=json_)


@app.command("assign")
@handle_errors
@_usage_errors
def assign(ticket_id: IdArgument, *,
           to: Annotated[str, typer.Option("--to", help="Who will handle it.")],
           message: MessageOption = "", by: ByOption = None, config: ConfigOption = None,
           json_: JsonOption = False) -> None:
    """Assign an open or acknowledged ticket."""
    _act(ticket_id, f"assigned to {to}",
         lambda svc, ref, actor: svc.assign(ref, to, actor=actor, message=message),
         config=config, by=by, as_json=json_)


@app.command("comment")
@handle_errors
@_usage_errors
def comment(ticket_id: IdArgument, message: RequiredMessage, by: ByOption = None,
            config: ConfigOption = None, json_: JsonOption = False) -> None:
    """Add a comment to a ticket's history."""
    _act(ticket_id, "commented",
         lambda svc, ref, actor: svc.comment(ref, message, actor=actor),
         config=config, by=by, as_json=json_)


@app.command("resolve")
@handle_errors
@_usage_errors
def resolve(ticket_id: IdArgument, message: RequiredMessage, by: ByOption = None,
            config: ConfigOption = None, json_: JsonOption = False) -> None:
    """Resolve an open or acknowledged ticket."""
    _act(ticket_id, "resolved",
         lambda svc, ref, actor: svc.resolve(ref, actor=actor, message=message),
         config=config, by=by, as_json=json_)


@app.command("close")
@handle_errors
@_usage_errors
def close(ticket_id: IdArgument, message: MessageOption = "", by: ByOption = None,
          config: ConfigOption = None, json_: JsonOption = False) -> None:
    """Close a resolved ticket (it will never reopen automatically)."""
    _act(ticket_id, "closed",
         lambda svc, ref, actor: svc.close(ref, actor=actor, message=message),
         config=config, by=by, as_json=json_)


@app.command("reopen")
@handle_errors
@_usage_errors
def reopen(ticket_id: IdArgument, message: RequiredMessage, by: ByOption = None,
           config: ConfigOption = None, json_: JsonOption = False) -> None:
    """Reopen a resolved or closed ticket."""
    _act(ticket_id, "reopened",
         lambda svc, ref, actor: svc.reopen(ref, actor=actor, message=message),
         config=config, by=by, as_json=json_)


ticket_notify.register(app)
