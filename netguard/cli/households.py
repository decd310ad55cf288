"""``netguard households|sensors ...``: the door-sensor registry.

Thin: parse, call :class:`netguard.iot.admin.IotAdmin`, print. ``--json`` on every read.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from netguard.cli.common import (
    EXIT_CONFIG,
    ConfigOption,
    JsonOption,
    fail,
    handle_errors,
    load_config,
    print_json,
)
from netguard.cli.iot_common import (
    FromOption,
    ToOption,
    bad_input,
    now,
    parse_local,
    parse_time,
    print_table,
    run_admin,
)
from netguard.localtime import zone

households_app = typer.Typer(help="Households under home quarantine.", no_args_is_help=True)
sensors_app = typer.Typer(help="Door sensors bound to households.", no_args_is_help=True)


# ---------------------------------------------------------------- households


@households_app.command("add")
@handle_errors
@bad_input
def households_add(  # noqa: PLR0917  (typer: one parameter per option)
    household_id: Annotated[str, typer.Argument(help="Household id, e.g. B3-1201.")],
    community: Annotated[str, typer.Option("--community", help="Community it belongs to.")],
    label: Annotated[str, typer.Option("--label", help="Short label; keep personal data out.")
                     ] = "",
    start: FromOption = None,
    end: ToOption = None,
    config: ConfigOption = None,
) -> None:
    """Register a household, optionally with a quarantine period (--from/--to)."""
    begin, finish = parse_time(start, "--from"), parse_time(end, "--to")
    run_admin(config, lambda admin, _s: admin.add_household(
        household_id, community, label=label, start=begin, end=finish))
    typer.echo(f"household {household_id} added")


@households_app.command("quarantine")
@handle_errors
@bad_input
def households_quarantine(
    household_id: str,
    start: FromOption = None,
    end: ToOption = None,
    config: ConfigOption = None,
) -> None:
    """Add a quarantine period (default: from now, open-ended)."""
    begin, finish = parse_time(start, "--from") or now(), parse_time(end, "--to")
    run_admin(config, lambda admin, _s: admin.add_quarantine(household_id, begin, finish))
    typer.echo(f"household {household_id}: quarantine from {begin.isoformat()}")


@households_app.command("allow")
@handle_errors
@bad_input
def households_allow(  # noqa: PLR0917  (typer: one parameter per option)
    household_id: str,
    start: Annotated[str, typer.Option(
        "--from", help="Window start, or the first day of a repeating window (ISO 8601; "
                       "a date or a time without offset is read in display.timezone).")],
    end: Annotated[str, typer.Option(
        "--to", "--until", help="Window end, or the day after the last repeating window.")],
    daily: Annotated[str | None, typer.Option(
        "--daily", help="Repeat every day at HH:MM-HH:MM local time (22:00-06:00 runs "
                        "past midnight).")] = None,
    days: Annotated[str | None, typer.Option(
        "--days", help="Repeat on these days only, e.g. mon,thu or mon-fri (with "
                       "--daily's times).")] = None,
    reason: Annotated[str, typer.Option("--reason", help="e.g. 'PCR test visit'.")] = "",
    config: ConfigOption = None,
) -> None:
    """Allow the door to open in a window without an alert (e.g. a test visit, or
    deliveries every day 18:00-18:30)."""
    if days is not None and daily is None:
        raise fail("--days needs --daily HH:MM-HH:MM (the times of the window)", EXIT_CONFIG)
    settings = load_config(config)
    tz = zone(settings.display.timezone)
    begin, finish = parse_local(start, "--from", tz), parse_local(end, "--to", tz)
    if daily is None:
        run_admin(config, lambda admin, _s: admin.allow(household_id, begin, finish, reason))
        typer.echo(f"household {household_id}: door may open {begin.isoformat()} - "
                   f"{finish.isoformat()}")
        return
    spec = f"{days or 'daily'} {daily}"
    stored = run_admin(config, lambda admin, s: admin.allow_recurring(
        household_id, spec, timezone=s.display.timezone, start=begin, end=finish, reason=reason))
    typer.echo(f"household {household_id}: door may open {stored} ({settings.display.timezone}), "
               f"{begin.isoformat()} - {finish.isoformat()}")


@households_app.command("end")
@handle_errors
@bad_input
def households_end(
    household_id: str,
    at: Annotated[str | None, typer.Option("--at", help="End time (default now).")] = None,
    config: ConfigOption = None,
) -> None:
    """End the household's quarantine."""
    when = parse_time(at, "--at") or now()
    run_admin(config, lambda admin, _s: admin.end_quarantine(household_id, when))
    typer.echo(f"household {household_id}: quarantine ended at {when.isoformat()}")


@households_app.command("import")
@handle_errors
@bad_input
def households_import(
    csv_file: Annotated[Path, typer.Argument(help="CSV: id,community,label,start,end"
                                                   "[,sensor,format,address].")],
    config: ConfigOption = None,
) -> None:
    """Import households (and optionally their sensors) from CSV; all or nothing."""
    from netguard.iot.registry import CsvImportError

    try:
        text = csv_file.read_text(encoding="utf-8-sig")
    except OSError as exc:
        typer.echo(f"error: cannot read {csv_file}: {exc.strerror}", err=True)
        raise typer.Exit(2) from None
    try:
        count = run_admin(config, lambda admin, s: admin.import_households(
            text, timezone=s.display.timezone))
    except CsvImportError as exc:
        # Bad input, like a bad option: exit 2 (the session rolled back).
        raise fail(f"{csv_file}: {exc}", EXIT_CONFIG) from None
    typer.echo(f"imported {count} households")


@households_app.command("list")
@handle_errors
@bad_input
def households_list(
    community: Annotated[str | None, typer.Option("--community")] = None,
    as_json: JsonOption = False,
    config: ConfigOption = None,
) -> None:
    """List households."""
    rows = run_admin(config, lambda admin, _s: admin.households(community), read_only=True)
    if as_json:
        print_json(rows)
        return
    for r in rows:
        r["sensors"] = ",".join(r["sensors"])
    print_table(rows, ["id", "community", "label", "quarantined", "sensors"])


@households_app.command("show")
@handle_errors
@bad_input
def households_show(household_id: str, as_json: JsonOption = False,
                    config: ConfigOption = None) -> None:
    """Show one household with its periods, windows and sensors."""
    data = run_admin(config, lambda admin, _s: admin.household(household_id), read_only=True)
    if as_json:
        print_json(data)
        return
    typer.echo(f"{data['id']}  community {data['community']}  {data['label']}")
    typer.echo(f"quarantined now: {data['quarantined']}")
    for p in data["quarantines"]:
        typer.echo(f"  quarantine {p['start']} - {p['end'] or 'open'}")
    for w in data["allowed_windows"]:
        repeat = f"{w['repeat']} ({w['timezone']}) " if w.get("repeat") else ""
        typer.echo(f"  allowed    {repeat}{w['start']} - {w['end']}  {w['reason']}")
    typer.echo(f"sensors: {', '.join(data['sensors']) or '(none)'}")


# ---------------------------------------------------------------- sensors


@sensors_app.command("add")
@handle_errors
@bad_input
def sensors_add(  # noqa: PLR0917  (typer: one parameter per option)
    sensor_id: str,
    household: Annotated[str, typer.Option("--household", help="Household it is bound to.")],
    fmt: Annotated[str, typer.Option("--format", help="native, zigbee2mqtt or shelly.")
                   ] = "native",
    address: Annotated[str | None, typer.Option(
        "--address", help="Name on the bus (Z2M friendly name, Shelly id); default: the id.")
    ] = None,
    kind: Annotated[str, typer.Option("--kind")] = "door",
    config: ConfigOption = None,
) -> None:
    """Bind a sensor to a household."""
    run_admin(config, lambda admin, _s: admin.add_sensor(
        sensor_id, household, fmt=fmt, address=address, kind=kind))
    typer.echo(f"sensor {sensor_id} added to household {household}")


@sensors_app.command("list")
@handle_errors
@bad_input
def sensors_list(
    household: Annotated[str | None, typer.Option("--household")] = None,
    as_json: JsonOption = False,
    config: ConfigOption = None,
) -> None:
    """List sensors."""
    rows = run_admin(config, lambda admin, _s: admin.sensors(household), read_only=True)
    if as_json:
        print_json(rows)
        return
    print_table(rows, ["id", "household", "kind", "format", "address"])


@sensors_app.command("status")
@handle_errors
@bad_input
def sensors_status(
    household: Annotated[str | None, typer.Option("--household")] = None,
    as_json: JsonOption = False,
    config: ConfigOption = None,
) -> None:
    """Last seen, battery, door and online state of each sensor."""
    rows = run_admin(config, lambda admin, _s: admin.sensors(household), read_only=True)
    if as_json:
        print_json(rows)
        return
    for r in rows:
        r["online"] = "online" if r["online"] else "OFFLINE"
    print_table(rows, ["id", "household", "online", "last_seen", "battery", "contact",
                       "tamper"])
