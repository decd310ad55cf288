"""Ticket notifications on the command line: ``tickets notify-test ROUTE`` and the
"notifications" part of ``tickets show`` (what was sent for a ticket, and whether it
arrived).

Kept apart from :mod:`netguard.cli.tickets` so that the two grow independently; that
module registers :func:`register` and calls :func:`sent_for` and :func:`sent_text`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from netguard.cli.common import (
    EXIT_CONFIG,
    EXIT_FAILURE,
    ConfigOption,
    JsonOption,
    fail,
    handle_errors,
    load_config,
    print_json,
    run_async,
)
from netguard.textwidth import display_width, pad

if TYPE_CHECKING:
    from netguard.config import Settings
    from netguard.tickets.notifications import SentNotification

_COLUMNS = ("time", "route", "notifier", "reason", "state", "attempts", "error")


def sent_for(settings: Settings, ticket_id: int) -> list[SentNotification]:
    """The notifications queued for ticket ``ticket_id``, oldest first."""
    from netguard.store.db import Store
    from netguard.tickets.notifications import ticket_notifications

    async def run() -> list[SentNotification]:
        async with Store(settings.store) as store:
            return await ticket_notifications(store, ticket_id)

    return run_async(run())


def sent_text(sent: list[SentNotification], settings: Settings) -> str:
    """The ``notifications (N):`` block of ``tickets show``: one aligned line per message
    and notifier, times in ``display.timezone``."""
    from netguard.localtime import zone

    if not sent:
        return "notifications: (none)"
    tz = zone(settings.display.timezone)
    rows = [(n.created_at.astimezone(tz).strftime("%Y-%m-%d %H:%M:%S %z"), n.route,
             n.notifier, n.reason, n.state, str(n.attempts), n.last_error or "")
            for n in sent]
    widths = [max(len(c), *(display_width(r[i]) for r in rows))
              for i, c in enumerate(_COLUMNS)]
    lines = [f"notifications ({len(sent)}):",
             "  " + "  ".join(pad(c.upper(), w) for c, w in zip(_COLUMNS, widths, strict=True))
             .rstrip()]
    lines += ["  " + "  ".join(pad(v, w) for v, w in zip(r, widths, strict=True)).rstrip()
              for r in rows]
    return "\n".join(lines)


RouteArgument = Annotated[str, typer.Argument(
    help="A notifications.routes name.", show_default=False)]


@handle_errors
def notify_test(route: RouteArgument, config: ConfigOption = None,
                json_: JsonOption = False) -> None:
    """Send a sample message (marked as a test) through each notifier of ROUTE now.

    Prints OK or the failure reason per notifier. Exit 0 when every notifier delivered,
    1 when any failed, 2 for an unknown route.
    """
    from netguard.clock import SystemClock
    from netguard.tickets.notify_test import send_test

    settings = load_config(config)
    chosen = settings.notifications.route(route)
    if chosen is None:
        known = ", ".join(r.name for r in settings.notifications.routes) or "none configured"
        raise fail(f"unknown route {route[:70]!r} (known: {known})", EXIT_CONFIG)
    outcomes = run_async(send_test(settings, chosen, SystemClock().now()))
    if json_:
        print_json({"route": chosen.name,
                    "notifiers": [{"notifier": o.notifier, "ok": o.ok, "error": o.error}
                                  for o in outcomes]})
    else:
        width = max(display_width(o.notifier) for o in outcomes)
        for o in outcomes:
            typer.echo(f"{pad(o.notifier, width)}  {'OK' if o.ok else f'FAILED: {o.error}'}")
    if not all(o.ok for o in outcomes):
        raise typer.Exit(EXIT_FAILURE)


def register(app: typer.Typer) -> None:
    """Add ``notify-test`` to the ``tickets`` command group."""
    app.command("notify-test")(notify_test)


__all__ = ["register", "sent_for", "sent_text"]
