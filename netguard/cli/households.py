"""``netguard households|sensors ...``: the door-sensor registry.

Thin: parse, call :class:`netguard.iot.admin.IotAdmin`, print. ``--json`` on every read.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

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
    display_zone,
    now,
    parse_required,
    parse_time,
    print_table,
    run_admin,
)
from netguard.localtime import wall_text

if TYPE_CHECKING:
    from zoneinfo import ZoneInfo


def _shown(value: datetime, tz: ZoneInfo) -> str:
    """A time echoed back to the operator: ISO 8601 in the local zone, with its offset."""
    return value.astimezone(tz).isoformat()


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
    settings = load_config(config)
    tz = display_zone(settings)
    begin, finish = parse_time(start, "--from", tz), parse_time(end, "--to", tz)
    run_admin(config, lambda admin, _s: admin.add_household(
        household_id, community, label=label, start=begin, end=finish), settings=settings)
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
    settings = load_config(config)
    tz = display_zone(settings)
    begin, finish = parse_time(start, "--from", tz) or now(), parse_time(end, "--to", tz)
    run_admin(config, lambda admin, _s: admin.add_quarantine(household_id, begin, finish),
              settings=settings)
    typer.echo(f"household {household_id}: quarantine from {_shown(begin, tz)}")


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
    tz = display_zone(settings)
    begin, finish = parse_required(start, "--from", tz), parse_required(end, "--to", tz)
    if daily is None:
        run_admin(config, lambda admin, _s: admin.allow(household_id, begin, finish, reason),
                  settings=settings)
        typer.echo(f"household {household_id}: door may open {_shown(begin, tz)} - "
                   f"{_shown(finish, tz)}")
        return
    spec = f"{days or 'daily'} {daily}"
    stored = run_admin(config, lambda admin, s: admin.allow_recurring(
        household_id, spec, timezone=s.display.timezone, start=begin, end=finish,
        reason=reason), settings=settings)
    typer.echo(f"household {household_id}: door may open {stored} ({settings.display.timezone}), "
               f"{_shown(begin, tz)} - {_shown(finish, tz)}")


@households_app.command("end")
@handle_errors
@bad_input
def households_end(
    household_id: str,
    at: Annotated[str | None, typer.Option(
        "--at", help="End time (default now): ISO 8601; without an offset it is read in "
                     "display.timezone.")] = None,
    config: ConfigOption = None,
) -> None:
    """End the household's quarantine."""
    settings = load_config(config)
    tz = display_zone(settings)
    when = parse_time(at, "--at", tz) or now()
    run_admin(config, lambda admin, _s: admin.end_quarantine(household_id, when),
              settings=settings)
    typer.echo(f"household {household_id}: quarantine ended at {_shown(when, tz)}")


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
    settings = load_config(config)
    tz = display_zone(settings)
    data = run_admin(config, lambda admin, _s: admin.household(household_id), read_only=True,
                     settings=settings)
    if as_json:
        print_json(data)
        return
    typer.echo(f"{data['id']}  community {data['community']}  {data['label']}")
    typer.echo(f"quarantined now: {data['quarantined']}")
    if data["quarantines"] or data["allowed_windows"]:
        typer.echo(f"times in {tz.key}:")
    for p in data["quarantines"]:
        typer.echo(f"  quarantine {wall_text(p['start'], tz)} - "
                   f"{wall_text(p['end'], tz) or 'open'}")
    for w in data["allowed_windows"]:
        repeat = f"{w['repeat']} ({w['timezone']}) " if w.get("repeat") else ""
        typer.echo(f"  allowed    {repeat}{wall_text(w['start'], tz)} - "
                   f"{wall_text(w['end'], tz)}  {w['reason']}")
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
    settings = load_config(config)
    rows = run_admin(config, lambda admin, _s: admin.sensors(household), read_only=True,
                     settings=settings)
    if as_json:
        print_json(rows)
        return
    for r in rows:
        r["online"] = "online" if r["online"] else "OFFLINE"
    print_table(rows, ["id", "household", "online", "last_seen", "battery", "contact",
                       "tamper"], tz=display_zone(settings), times=("last_seen",))
