"""``netguard households|sensors|alerts|audit ...``: the door-sensor registry and records.

Thin: parse, open the store, call :mod:`netguard.iot`, print. ``--json`` on every read.
"""

from __future__ import annotations

import csv
import functools
import io
import os
import sys
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, ParamSpec, TypeVar

import typer

from netguard.cli.common import (
    EXIT_CONFIG,
    ConfigOption,
    JsonOption,
    fail,
    handle_errors,
    load_config,
    operator_name,
    print_json,
    run_async,
)

if TYPE_CHECKING:
    from netguard.config import Settings
    from netguard.store import Store

T = TypeVar("T")
P = ParamSpec("P")

households_app = typer.Typer(help="Households under home quarantine.", no_args_is_help=True)
sensors_app = typer.Typer(help="Door sensors bound to households.", no_args_is_help=True)
alerts_app = typer.Typer(help="Door-sensor alerts.", no_args_is_help=True)
audit_app = typer.Typer(help="The hash-chained event log.", no_args_is_help=True)

FromOption = Annotated[str | None, typer.Option("--from", help="ISO 8601 time (UTC if no offset).")]
ToOption = Annotated[str | None, typer.Option("--to", help="ISO 8601 time (UTC if no offset).")]


def register(app: typer.Typer) -> None:
    """Add this area's commands to ``app``."""
    app.add_typer(households_app, name="households")
    app.add_typer(sensors_app, name="sensors")
    app.add_typer(alerts_app, name="alerts")
    app.add_typer(audit_app, name="audit")


def _time(value: str | None, what: str) -> datetime | None:
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise fail(f"{what}: not an ISO 8601 time: {value!r}", EXIT_CONFIG) from None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed


def _span(start: str | None, end: str | None) -> tuple[datetime | None, datetime | None]:
    """``--from`` and ``--to`` as times; exit 2 unless ``--from`` is before ``--to``."""
    begin, finish = _time(start, "--from"), _time(end, "--to")
    if begin is not None and finish is not None and begin >= finish:
        # [from, to) would be empty: say so rather than export nothing with exit 0.
        raise fail(f"--from {begin.isoformat()} is not before --to {finish.isoformat()}",
                   EXIT_CONFIG)
    return begin, finish


def _now() -> datetime:
    return datetime.now(UTC)


def _bad_input(func: Callable[P, T]) -> Callable[P, T]:
    """An invalid id, name or text (a ValueError from netguard.names or the registry) is a
    one-line ``error:`` with exit 2, like a bad option, instead of a traceback."""

    @functools.wraps(func)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> T:
        try:
            return func(*args, **kwargs)
        except ValueError as exc:
            raise fail(str(exc).splitlines()[0], EXIT_CONFIG) from None

    return wrapper


# Alert ids are INTEGER primary keys; a larger number overflows the driver (a traceback).
_ALERT_ID_MAX = 2**31 - 1


def _alert_id(value: int) -> int:
    if not 1 <= value <= _ALERT_ID_MAX:
        raise ValueError(f"not an alert id: {value} (expected 1 to {_ALERT_ID_MAX})")
    return value


def _run(config: Path | None, work: Callable[[Store, Settings], Awaitable[T]], *,
         read_only: bool = False) -> T:
    settings = load_config(config)
    if read_only:
        # Store refuses a missing SQLite file unless store.auto_upgrade lets a write create
        # it; a read never creates it, so check here even with auto_upgrade.
        from netguard.store.db import head_revision

        settings.store.require_sqlite_file(head_revision())

    async def main() -> T:
        from netguard.store import Store

        async with Store(settings.store) as store:
            return await work(store, settings)

    return run_async(main())


def _table(rows: list[dict[str, Any]], columns: list[str]) -> None:
    if not rows:
        typer.echo("(none)")
        return
    text = [[("" if r.get(c) is None else str(r.get(c))) for c in columns] for r in rows]
    widths = [max(len(c), *(len(t[i]) for t in text)) for i, c in enumerate(columns)]
    typer.echo("  ".join(c.upper().ljust(w) for c, w in zip(columns, widths, strict=True)))
    for t in text:
        typer.echo("  ".join(v.ljust(w) for v, w in zip(t, widths, strict=True)))


# ---------------------------------------------------------------- households


@households_app.command("add")
@handle_errors
@_bad_input
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
    from netguard.iot import registry

    begin, finish = _time(start, "--from"), _time(end, "--to")

    async def work(store: Store, _s: Settings) -> None:
        async with store.session() as s:
            await registry.add_household(s, household_id, community, label=label,
                                         start=begin, end=finish, now=_now())
            await s.commit()

    _run(config, work)
    typer.echo(f"household {household_id} added")


@households_app.command("quarantine")
@handle_errors
@_bad_input
def households_quarantine(
    household_id: str,
    start: FromOption = None,
    end: ToOption = None,
    config: ConfigOption = None,
) -> None:
    """Add a quarantine period (default: from now, open-ended)."""
    from netguard.iot import registry

    begin, finish = _time(start, "--from") or _now(), _time(end, "--to")

    async def work(store: Store, _s: Settings) -> None:
        async with store.session() as s:
            await registry.add_quarantine(s, household_id, begin, finish)
            await s.commit()

    _run(config, work)
    typer.echo(f"household {household_id}: quarantine from {begin.isoformat()}")


@households_app.command("allow")
@handle_errors
@_bad_input
def households_allow(
    household_id: str,
    start: Annotated[str, typer.Option("--from", help="Window start (ISO 8601).")],
    end: Annotated[str, typer.Option("--to", help="Window end (ISO 8601).")],
    reason: Annotated[str, typer.Option("--reason", help="e.g. 'PCR test visit'.")] = "",
    config: ConfigOption = None,
) -> None:
    """Allow the door to open in a window without an alert (e.g. a test visit)."""
    from netguard.iot import registry

    begin, finish = _time(start, "--from"), _time(end, "--to")
    assert begin is not None
    assert finish is not None

    async def work(store: Store, _s: Settings) -> None:
        async with store.session() as s:
            await registry.add_window(s, household_id, begin, finish, reason)
            await s.commit()

    _run(config, work)
    typer.echo(f"household {household_id}: door may open {begin.isoformat()} - "
               f"{finish.isoformat()}")


@households_app.command("end")
@handle_errors
@_bad_input
def households_end(
    household_id: str,
    at: Annotated[str | None, typer.Option("--at", help="End time (default now).")] = None,
    config: ConfigOption = None,
) -> None:
    """End the household's quarantine."""
    from netguard.iot import registry

    when = _time(at, "--at") or _now()

    async def work(store: Store, _s: Settings) -> int:
        async with store.session() as s:
            ended = await registry.end_quarantine(s, household_id, when)
            await s.commit()
            return ended

    _run(config, work)
    typer.echo(f"household {household_id}: quarantine ended at {when.isoformat()}")


@households_app.command("import")
@handle_errors
@_bad_input
def households_import(
    csv_file: Annotated[Path, typer.Argument(help="CSV: id,community,label,start,end"
                                                   "[,sensor,format,address].")],
    config: ConfigOption = None,
) -> None:
    """Import households (and optionally their sensors) from CSV; all or nothing."""
    from netguard.iot import registry

    try:
        text = csv_file.read_text(encoding="utf-8-sig")
    except OSError as exc:
        typer.echo(f"error: cannot read {csv_file}: {exc.strerror}", err=True)
        raise typer.Exit(2) from None

    async def work(store: Store, _s: Settings) -> int:
        async with store.session() as s:
            count = await registry.import_households(s, text, _now())
            await s.commit()
            return count

    try:
        count = _run(config, work)
    except registry.CsvImportError as exc:
        # Bad input, like a bad option: exit 2 (the session rolled back).
        raise fail(f"{csv_file}: {exc}", EXIT_CONFIG) from None
    typer.echo(f"imported {count} households")


@households_app.command("list")
@handle_errors
@_bad_input
def households_list(
    community: Annotated[str | None, typer.Option("--community")] = None,
    as_json: JsonOption = False,
    config: ConfigOption = None,
) -> None:
    """List households."""
    from sqlmodel import col, select

    from netguard.iot import registry
    from netguard.iot.models import Household

    async def work(store: Store, _s: Settings) -> list[dict[str, Any]]:
        async with store.session() as s:
            query = select(Household).order_by(col(Household.id))
            if community:
                query = query.where(col(Household.community) == community)
            now = _now()
            return [await registry.household_dict(s, h, now)
                    for h in (await s.exec(query)).all()]

    rows = _run(config, work, read_only=True)
    if as_json:
        print_json(rows)
        return
    for r in rows:
        r["sensors"] = ",".join(r["sensors"])
    _table(rows, ["id", "community", "label", "quarantined", "sensors"])


@households_app.command("show")
@handle_errors
@_bad_input
def households_show(household_id: str, as_json: JsonOption = False,
                    config: ConfigOption = None) -> None:
    """Show one household with its periods, windows and sensors."""
    from netguard.iot import registry

    async def work(store: Store, _s: Settings) -> dict[str, Any]:
        async with store.session() as s:
            household = await registry.get_household(s, household_id)
            return await registry.household_dict(s, household, _now())

    data = _run(config, work, read_only=True)
    if as_json:
        print_json(data)
        return
    typer.echo(f"{data['id']}  community {data['community']}  {data['label']}")
    typer.echo(f"quarantined now: {data['quarantined']}")
    for p in data["quarantines"]:
        typer.echo(f"  quarantine {p['start']} - {p['end'] or 'open'}")
    for w in data["allowed_windows"]:
        typer.echo(f"  allowed    {w['start']} - {w['end']}  {w['reason']}")
    typer.echo(f"sensors: {', '.join(data['sensors']) or '(none)'}")


# ---------------------------------------------------------------- sensors


@sensors_app.command("add")
@handle_errors
@_bad_input
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
    from netguard.iot import registry

    async def work(store: Store, _s: Settings) -> None:
        async with store.session() as s:
            await registry.add_sensor(s, sensor_id, household, fmt=fmt, address=address,
                                      kind=kind, now=_now())
            await s.commit()

    _run(config, work)
    typer.echo(f"sensor {sensor_id} added to household {household}")


async def _sensors(store: Store, household: str | None) -> list[dict[str, Any]]:
    from sqlmodel import col, select

    from netguard.iot import registry
    from netguard.iot.models import Sensor

    async with store.session() as s:
        query = select(Sensor).order_by(col(Sensor.id))
        if household:
            # A mistyped id must not look like a household without sensors.
            await registry.get_household(s, household)
            query = query.where(col(Sensor.household_id) == household)
        return [registry.sensor_dict(x) for x in (await s.exec(query)).all()]


@sensors_app.command("list")
@handle_errors
@_bad_input
def sensors_list(
    household: Annotated[str | None, typer.Option("--household")] = None,
    as_json: JsonOption = False,
    config: ConfigOption = None,
) -> None:
    """List sensors."""
    rows = _run(config, lambda store, _s: _sensors(store, household), read_only=True)
    if as_json:
        print_json(rows)
        return
    _table(rows, ["id", "household", "kind", "format", "address"])


@sensors_app.command("status")
@handle_errors
@_bad_input
def sensors_status(
    household: Annotated[str | None, typer.Option("--household")] = None,
    as_json: JsonOption = False,
    config: ConfigOption = None,
) -> None:
    """Last seen, battery, door and online state of each sensor."""
    rows = _run(config, lambda store, _s: _sensors(store, household), read_only=True)
    if as_json:
        print_json(rows)
        return
    for r in rows:
        r["online"] = "online" if r["online"] else "OFFLINE"
    _table(rows, ["id", "household", "online", "last_seen", "battery", "contact", "tamper"])


# ---------------------------------------------------------------- alerts


@alerts_app.command("list")
@handle_errors
@_bad_input
def alerts_list(
    all_alerts: Annotated[bool, typer.Option("--all", help="Include closed alerts.")] = False,
    community: Annotated[str | None, typer.Option("--community")] = None,
    household: Annotated[str | None, typer.Option("--household")] = None,
    as_json: JsonOption = False,
    config: ConfigOption = None,
) -> None:
    """List open alerts (``--all`` for closed ones too)."""
    from sqlmodel import col, select

    from netguard.iot import registry
    from netguard.iot.alerts import alert_dict
    from netguard.iot.models import Alert

    async def work(store: Store, _s: Settings) -> list[dict[str, Any]]:
        async with store.session() as s:
            query = select(Alert).order_by(col(Alert.id).desc())
            if not all_alerts:
                query = query.where(col(Alert.closed_at).is_(None))
            if community:
                query = query.where(col(Alert.community) == community)
            if household:
                await registry.get_household(s, household)  # unknown id: exit 3
                query = query.where(col(Alert.household_id) == household)
            return [alert_dict(a) for a in (await s.exec(query.limit(1000))).all()]

    rows = _run(config, work, read_only=True)
    if as_json:
        print_json(rows)
        return
    _table(rows, ["id", "type", "severity", "state", "household", "sensor", "count",
                  "last_seen", "acked_by"])


@alerts_app.command("show")
@handle_errors
@_bad_input
def alerts_show(alert_id: int, as_json: JsonOption = False,
                config: ConfigOption = None) -> None:
    """Show one alert with its deliveries."""
    from sqlmodel import col, select

    from netguard.errors import NotFoundError
    from netguard.iot.alerts import alert_dict
    from netguard.iot.models import Alert, OutboxMessage

    async def work(store: Store, _s: Settings) -> dict[str, Any]:
        async with store.session() as s:
            alert = await s.get(Alert, _alert_id(alert_id))
            if alert is None:
                raise NotFoundError("alert", str(alert_id))
            data = alert_dict(alert)
            rows = (await s.exec(select(OutboxMessage).where(
                col(OutboxMessage.alert_id) == alert_id).order_by(col(OutboxMessage.id)))).all()
            data["deliveries"] = [
                {"notifier": r.notifier, "reason": r.reason, "status": r.status,
                 "attempts": r.attempts, "delivered_at": r.delivered_at,
                 "last_error": r.last_error} for r in rows]
            return data

    data = _run(config, work, read_only=True)
    if as_json:
        print_json(data)
        return
    for key in ("id", "type", "severity", "state", "community", "household", "sensor",
                "count", "first_seen", "last_seen", "cleared_at", "closed_at", "acked_at",
                "acked_by", "notify_count", "next_notify_at"):
        typer.echo(f"{key:>15}: {'' if data[key] is None else data[key]}")
    for reason in data["reasons"]:
        typer.echo(f"{'reason':>15}: {reason}")
    for d in data["deliveries"]:
        typer.echo(f"{'delivery':>15}: {d['notifier']} {d['reason']} {d['status']} "
                   f"attempts={d['attempts']} {d['last_error'] or ''}")


@alerts_app.command("ack")
@handle_errors
@_bad_input
def alerts_ack(
    alert_id: int,
    by: Annotated[str | None, typer.Option("--by", help="Who acknowledges (recorded).")
                  ] = None,
    config: ConfigOption = None,
) -> None:
    """Acknowledge an alert; stops its reminders and records who did it."""
    from netguard.iot.alerts import acknowledge

    actor = operator_name(by)

    async def work(store: Store, _s: Settings) -> None:
        async with store.session() as s:
            await acknowledge(s, _alert_id(alert_id), actor, _now())
            await s.commit()

    _run(config, work)
    typer.echo(f"alert {alert_id} acknowledged by {actor}")


# ---------------------------------------------------------------- audit


def _audit_key(settings: Settings) -> bytes | None:
    key = settings.iot.audit_key
    return None if key is None else key.get_secret_value().encode("utf-8")


def _chains(count: int) -> str:
    return f"{count} chain verifies" if count == 1 else f"{count} chains verify"


@audit_app.command("verify")
@handle_errors
def audit_verify(
    anchor: Annotated[Path | None, typer.Option(
        "--anchor", help="An anchor file (iot.audit_anchor.file, or an auditor's copy): "
                         "also prove nothing was truncated or deleted since its anchors.")]
    = None,
    as_json: JsonOption = False,
    config: ConfigOption = None,
) -> None:
    """Check the event log's hash chain; exit 1 naming the first bad row."""
    from datetime import timedelta

    from netguard.iot.anchor import AnchorFile, check, read_anchors
    from netguard.iot.eventlog import verify

    async def work(store: Store, settings: Settings) -> tuple[Any, AnchorFile | None,
                                                              list[str]]:
        key = _audit_key(settings)
        before = _now() - timedelta(days=settings.iot.retention_days)
        anchors = None if anchor is None else read_anchors(anchor, key)
        async with store.session() as s:
            report = await verify(s, key, redacted_before=before)
            lost = [] if anchors is None else await check(s, anchors.anchors)
        return report, anchors, lost

    report, anchors, lost = _run(config, work, read_only=True)
    anchor_problems = [] if anchors is None else [*anchors.problems, *lost]
    ok = report.ok and not anchor_problems
    notes = list(report.notes)
    if anchors is not None:
        notes += anchors.skipped
        if anchors.accepted is not None:
            notes.append(f"anchors before line {anchors.accepted.line} were set aside by "
                         f"`audit accept-head` at {anchors.accepted.at.isoformat()}: "
                         f"{anchors.accepted.note}")
    if as_json:
        print_json({"ok": ok, "rows": report.rows, "chains": report.chains,
                    "key_hint": report.key_hint,
                    "problems": [{"chain": p.chain, "chain_seq": p.chain_seq,
                                  "row_id": p.row_id, "problem": p.problem}
                                 for p in report.problems],
                    "anchors": None if anchors is None else len(anchors.anchors),
                    "anchor_problems": anchor_problems, "notes": notes})
    else:
        if report.key_hint is not None:
            typer.echo(f"BAD: {report.key_hint}")
        else:
            for problem in report.problems:
                typer.echo(f"BAD: {problem}")
        for line in anchor_problems:
            typer.echo(f"BAD: {line}")
        for note in notes:
            typer.echo(f"note: {note}")
        if ok:
            against = "" if anchors is None else (
                f", and match {len(anchors.anchors)} anchor line(s) of {anchor}")
            typer.echo(f"ok: {report.rows} events in {_chains(report.chains)}{against}")
    if not ok:
        raise typer.Exit(1)


@audit_app.command("accept-head")
@handle_errors
def audit_accept_head(
    reason: Annotated[str, typer.Option("--reason", help="Why (e.g. the restored backup).")],
    by: Annotated[str | None, typer.Option("--by", help="Who accepts (default: $NETGUARD_"
                                                         "OPERATOR or the login name).")]
    = None,
    config: ConfigOption = None,
) -> None:
    """Accept the event log as it is now (after knowingly restoring a backup).

    Appends an ``accept`` line with the current chain heads to iot.audit_anchor.file, so
    that the daemon starts again; `audit verify --anchor` checks from that line on and
    names it. The earlier anchors, and what they show was lost, stay in the file.
    """
    from netguard.iot.anchor import Anchorer

    reason = reason.strip()
    if not reason or len(reason) > 500 or not reason.isprintable():
        raise fail("--reason: give 1-500 printable characters", EXIT_CONFIG)
    actor = operator_name(by)

    async def work(store: Store, settings: Settings) -> Any:
        path = settings.iot.audit_anchor.file
        if path is None:
            raise fail("iot.audit_anchor.file is not set: there is no anchor to accept "
                       "against", EXIT_CONFIG)
        anchorer = Anchorer(store, path, _audit_key(settings), _system_clock(), 1.0)
        return path, await anchorer.anchor(kind="accept", note=f"{actor}: {reason}")

    path, accepted = _run(config, work, read_only=True)
    heads = ", ".join(f"{h.chain} at seq {h.seq}" for h in accepted.heads) or "no chains"
    typer.echo(f"accepted {heads}; appended to {path}")


def _system_clock() -> Any:
    from netguard.clock import SystemClock

    return SystemClock()


@audit_app.command("export")
@handle_errors
def audit_export(  # noqa: PLR0917  (typer: one parameter per option)
    household: Annotated[str, typer.Option("--household", help="Household id.")],
    start: FromOption = None,
    end: ToOption = None,
    fmt: Annotated[str, typer.Option("--format", help="csv or json.")] = "json",
    output: Annotated[Path | None, typer.Option("--output", "-o")] = None,
    config: ConfigOption = None,
) -> None:
    """Export a household's supervision record (events, and alerts in JSON)."""
    from sqlmodel import col, select

    from netguard.iot import registry
    from netguard.iot.alerts import alert_dict
    from netguard.iot.eventlog import export_events
    from netguard.iot.models import Alert

    if fmt not in ("csv", "json"):
        raise fail("--format must be csv or json", EXIT_CONFIG)
    begin, finish = _span(start, end)

    async def work(store: Store, _s: Settings) -> dict[str, Any]:
        async with store.session() as s:
            h = await registry.get_household(s, household)
            events = await export_events(s, household, begin, finish)
            query = select(Alert).where(col(Alert.household_id) == household)
            if begin is not None:
                query = query.where(col(Alert.last_seen) >= begin)
            if finish is not None:
                query = query.where(col(Alert.first_seen) < finish)
            alerts = [alert_dict(a) for a in (await s.exec(query.order_by(col(Alert.id)))).all()]
            return {"household": h.id, "community": h.community, "from": begin, "to": finish,
                    "exported_at": _now(), "events": events, "alerts": alerts}

    data = _run(config, work, read_only=True)
    out = io.StringIO()
    if fmt == "json":
        import json

        from netguard.cli.common import _json_default

        out.write(json.dumps(data, default=_json_default, ensure_ascii=False, indent=2) + "\n")
    else:
        columns = ["chain", "chain_seq", "received_at", "sensor", "kind", "contact", "battery",
                   "device_time", "seq", "topic", "payload", "dead_reason", "hash"]
        writer = csv.DictWriter(out, fieldnames=columns, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(data["events"])
    if output is None:
        try:
            sys.stdout.write(out.getvalue())
            sys.stdout.flush()
        except BrokenPipeError:
            # `audit export | head`: the reader has all it wants. Point stdout at
            # /dev/null so that the interpreter's final flush does not complain either.
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
            os.close(devnull)
    else:
        output.write_text(out.getvalue(), encoding="utf-8")
        typer.echo(f"wrote {len(data['events'])} events to {output}", err=True)
