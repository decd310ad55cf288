"""``netguard alerts ...``: list, show and acknowledge door-sensor alerts.

Thin: parse, call :class:`netguard.iot.admin.IotAdmin` (the path the daemon's
``IotService.acknowledge`` takes too), print. ``--json`` on every read.
"""

from __future__ import annotations

from typing import Annotated

import typer

from netguard.cli.common import ConfigOption, JsonOption, handle_errors, operator_name, print_json
from netguard.cli.iot_common import bad_input, print_table, run_admin

alerts_app = typer.Typer(help="Door-sensor alerts.", no_args_is_help=True)

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
    rows = run_admin(config, lambda admin, _s: admin.alerts(
        include_closed=all_alerts, community=community, household_id=household),
        read_only=True)
    if as_json:
        print_json(rows)
        return
    print_table(rows, ["id", "type", "severity", "state", "household", "sensor", "count",
                       "last_seen", "acked_by"])


@alerts_app.command("show")
@handle_errors
@bad_input
def alerts_show(alert_id: int, as_json: JsonOption = False,
                config: ConfigOption = None) -> None:
    """Show one alert with its deliveries."""
    data = run_admin(config, lambda admin, _s: admin.alert(alert_id), read_only=True)
    if as_json:
        print_json(data)
        return
    for key in _SHOWN:
        typer.echo(f"{key:>15}: {'' if data[key] is None else data[key]}")
    for reason in data["reasons"]:
        typer.echo(f"{'reason':>15}: {reason}")
    for d in data["deliveries"]:
        typer.echo(f"{'delivery':>15}: {d['notifier']} {d['reason']} {d['status']} "
                   f"attempts={d['attempts']} {d['last_error'] or ''}")


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
