"""``netguard audit ...``: verify the hash-chained event log, accept its head, export a
household's supervision record.

Thin: parse, call :class:`netguard.iot.admin.IotAdmin`, print.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

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
)
from netguard.cli.iot_common import FromOption, ToOption, display_zone, parse_span, run_admin

if TYPE_CHECKING:
    from netguard.config import Settings
    from netguard.iot.admin import AuditCheck, IotAdmin
    from netguard.iot.anchor import Anchor

audit_app = typer.Typer(help="The hash-chained event log.", no_args_is_help=True)


def _chains(count: int) -> str:
    return f"{count} chain verifies" if count == 1 else f"{count} chains verify"


def _print_check(result: AuditCheck, anchor: Path | None) -> None:
    report, anchors = result.report, result.anchors
    if report.key_hint is not None:
        typer.echo(f"BAD: {report.key_hint}")
    else:
        for problem in report.problems:
            typer.echo(f"BAD: {problem}")
    for line in result.anchor_problems:
        typer.echo(f"BAD: {line}")
    for note in result.notes:
        typer.echo(f"note: {note}")
    if result.ok:
        against = "" if anchors is None else (
            f", and match {len(anchors.anchors)} anchor line(s) of {anchor}")
        typer.echo(f"ok: {report.rows} events in {_chains(report.chains)}{against}")


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
    from netguard.iot.admin import audit_key

    async def work(admin: IotAdmin, settings: Settings) -> AuditCheck:
        return await admin.verify_log(audit_key(settings.iot),
                                      retention_days=settings.iot.retention_days,
                                      anchor_file=anchor)

    result = run_admin(config, work, read_only=True)
    if as_json:
        report, anchors = result.report, result.anchors
        print_json({"ok": result.ok, "rows": report.rows, "chains": report.chains,
                    "key_hint": report.key_hint,
                    "problems": [{"chain": p.chain, "chain_seq": p.chain_seq,
                                  "row_id": p.row_id, "problem": p.problem}
                                 for p in report.problems],
                    "anchors": None if anchors is None else len(anchors.anchors),
                    "anchor_problems": result.anchor_problems, "notes": result.notes})
    else:
        _print_check(result, anchor)
    if not result.ok:
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
    from netguard.iot.admin import audit_key

    reason = reason.strip()
    if not reason or len(reason) > 500 or not reason.isprintable():
        raise fail("--reason: give 1-500 printable characters", EXIT_CONFIG)
    actor = operator_name(by)

    async def work(admin: IotAdmin, settings: Settings) -> tuple[Path, Anchor]:
        path = settings.iot.audit_anchor.file
        if path is None:
            raise fail("iot.audit_anchor.file is not set: there is no anchor to accept "
                       "against", EXIT_CONFIG)
        return path, await admin.accept_head(path, audit_key(settings.iot),
                                             f"{actor}: {reason}")

    path, accepted = run_admin(config, work, read_only=True)
    heads = ", ".join(f"{h.chain} at seq {h.seq}" for h in accepted.heads) or "no chains"
    typer.echo(f"accepted {heads}; appended to {path}")


def _write_stdout(text: str) -> None:
    try:
        sys.stdout.write(text)
        sys.stdout.flush()
    except BrokenPipeError:
        # `audit export | head`: the reader has all it wants. Point stdout at
        # /dev/null so that the interpreter's final flush does not complain either.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)


@audit_app.command("export")
@handle_errors
def audit_export(  # noqa: PLR0917  (typer: one parameter per option)
    household: Annotated[str, typer.Option("--household", help="Household id.")],
    start: FromOption = None,
    end: ToOption = None,
    fmt: Annotated[str, typer.Option("--format", help="csv or json.")] = "json",
    output: Annotated[Path | None, typer.Option("--output", "-o")] = None,
    config: ConfigOption = None,
    excel: ExcelOption = False,
) -> None:
    """Export a household's supervision record (events, and alerts in JSON).

    CSV times are in display.timezone with their offset; JSON times are UTC.
    """
    from netguard.iot.admin import EXPORT_FORMATS, export_text

    if fmt not in EXPORT_FORMATS:
        raise fail("--format must be csv or json", EXIT_CONFIG)
    if excel and fmt != "csv":
        raise fail("--excel is for --format csv", EXIT_CONFIG)
    settings = load_config(config)
    tz = display_zone(settings)
    begin, finish = parse_span(start, end, tz)
    record = run_admin(config, lambda admin, _s: admin.export(household, begin, finish),
                       read_only=True, settings=settings)
    text = export_text(record, fmt, tz)
    if output is None:
        _write_stdout(EXCEL_BOM + text if excel else text)
    else:
        output.write_text(text, encoding="utf-8-sig" if excel else "utf-8")
        typer.echo(f"wrote {len(record['events'])} events to {output}", err=True)
