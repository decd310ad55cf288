"""``netguard deadletters list``: the door-sensor messages the intake set aside.

A dead letter is a message that could not be used (malformed, an unknown sensor, a bad
topic ...). It is stored, hash-chained and counted, never retried; this is where an
operator reads them. Thin: parse, call :class:`netguard.iot.admin.IotAdmin`, print.
"""

from __future__ import annotations

from typing import Annotated

import typer

from netguard.cli.common import ConfigOption, JsonOption, handle_errors, load_config, print_json
from netguard.cli.iot_common import (
    bad_input,
    display_zone,
    parse_time,
    print_table,
    run_admin,
)

deadletters_app = typer.Typer(help="Door-sensor messages the intake set aside.",
                              no_args_is_help=True)


@deadletters_app.command("list")
@handle_errors
@bad_input
def deadletters_list(
    sensor: Annotated[str | None, typer.Option(
        "--sensor", help="Only those filed under this sensor (its topic named it).")] = None,
    since: Annotated[str | None, typer.Option(
        "--since", help="Only those received from then on (ISO 8601; a date or a time "
                        "without offset is read in display.timezone).")] = None,
    limit: Annotated[int, typer.Option("--limit", min=1, max=100_000,
                                       help="At most this many, newest first.")] = 1000,
    as_json: JsonOption = False,
    config: ConfigOption = None,
) -> None:
    """List dead letters, newest first: when, why, which sensor and topic."""
    settings = load_config(config)
    tz = display_zone(settings)
    start = parse_time(since, "--since", tz)
    rows = run_admin(config, lambda admin, _s: admin.dead_letters(
        sensor_id=sensor, since=start, limit=limit), read_only=True, settings=settings)
    if as_json:
        print_json(rows)
        return
    print_table(rows, ["received_at", "reason", "sensor", "household", "topic",
                       "payload_size", "detail"], tz=tz, times=("received_at",))
