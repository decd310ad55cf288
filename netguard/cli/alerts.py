"""``netguard alerts ...``: list, show and acknowledge door-sensor alerts.

Thin: parse, call :class:`netguard.iot.admin.IotAdmin` (the path the daemon's
``IotService.acknowledge`` takes too), print. ``--json`` on every read.
"""

from __future__ import annotations

from typing import Annotated

import typer

from netguard.cli.common import (
    ConfigOption,
    JsonOption,
    handle_errors,
    load_config,
    operator_name,
    print_json,
)
from netguard.cli.iot_common import bad_input, display_zone, print_table, run_admin
from netguard.localtime import wall_text

alerts_app = typer.Typer(help="Door-sensor alerts.", no_args_is_help=True)

_TIMES = frozenset({"first_seen", "last_seen", "cleared_at", "closed_at", "acked_at",
                    "next_notify_at"})
_SHOWN = ("id", "type", "severity", "state", "community", "household", "sensor", "count",
          "first_seen", "last_seen", "cleared_at", "closed_at", "acked_at", "acked_by", "acked_via",
          "notify_count", "next_notify_at")


@alerts_app.command("list")
@handle_errors
@bad_input
def alerts_list(
    all_alerts: Annotated[bool, typer.Option("--all", help="Include closed alerts.")] = False,
    community: Annotated[str | None, typer.Option("--community")] = None,
    household: Annotated[str | None, typer.Option("--household")] = None,
    as_json: JsonOption = False,
    config: ConfigOption = None,
) -> None:
    """List open alerts (``--all`` for closed ones too)."""
    settings = load_config(config)
    rows = run_admin(config, lambda admin, _s: admin.alerts(
        include_closed=all_alerts, community=community, household_id=household),
        read_only=True, settings=settings)
    if as_json:
        print_json(rows)
        return
    print_table(rows, ["id", "type", "severity", "state", "household", "sensor", "count",
                       "last_seen", "acked_by"], tz=display_zone(settings),
                times=("last_seen",))


@alerts_app.command("show")
@handle_errors
@bad_input
def alerts_show(alert_id: int, as_json: JsonOption = False,
                config: ConfigOption = None) -> None:
    """Show one alert with its deliveries (times in display.timezone)."""
    settings = load_config(config)
    tz = display_zone(settings)
    data = run_admin(config, lambda admin, _s: admin.alert(alert_id), read_only=True,
                     settings=settings)
    if as_json:
        print_json(data)
        return
    typer.echo(f"{'times in':>15}: {tz.key}")
    for key in _SHOWN:
        value = wall_text(data[key], tz) if key in _TIMES else data[key]
        typer.echo(f"{key:>15}: {'' if value is None else value}")
    # The stored reason lines, as written (the audit trail), not translated.
    for reason in data["reasons"]:
        typer.echo(f"{'reason':>15}: {reason}")
    for d in data["deliveries"]:
        delivered = wall_text(d["delivered_at"], tz) or ""
        typer.echo(f"{'delivery':>15}: {d['notifier']} {d['reason']} {d['status']} "
                   f"attempts={d['attempts']} {delivered} {d['last_error'] or ''}".rstrip())


@alerts_app.command("ack")
@handle_errors
@bad_input
def alerts_ack(
    alert_id: int,
    by: Annotated[str | None, typer.Option("--by", help="Who acknowledges (recorded).")
                  ] = None,
    config: ConfigOption = None,
) -> None:
    """Acknowledge an alert; stops its reminders and records who did it."""
    actor = operator_name(by)
    run_admin(config, lambda admin, _s: admin.acknowledge(alert_id, actor))
    typer.echo(f"alert {alert_id} acknowledged by {actor}")
