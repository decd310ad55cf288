"""Helpers every CLI command shares: config loading, async running, error mapping, output.

Exit codes: 0 success, 1 operational failure, 2 bad config or usage, 3 unknown id,
4 refused action (e.g. an invalid ticket transition), 5 outdated database schema. They
are chosen by subtree of :mod:`netguard.errors` (:func:`exit_code`), never by leaf class.
"""

from __future__ import annotations

import asyncio
import functools
import json
import os
import sys
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, ParamSpec, TypeVar

import typer

if TYPE_CHECKING:
    from netguard.config import ConfigLocation, Settings

P = ParamSpec("P")
T = TypeVar("T")

EXIT_FAILURE = 1
EXIT_CONFIG = 2
EXIT_NOT_FOUND = 3
EXIT_REFUSED = 4
EXIT_SCHEMA = 5

ConfigOption = Annotated[
    Path | None,
    typer.Option("--config", "-c",
                 help="netguard YAML config. Default: $NETGUARD_CONFIG, else ./netguard.yaml, "
                      "else /etc/netguard/netguard.yaml; with none of them, netguard "
                      "refuses to run (exit 2).",
                 show_default=False),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Machine-readable output.")]
ExcelOption = Annotated[bool, typer.Option(
    "--excel", help="CSV for spreadsheet tools (Excel, WPS in a Chinese locale): UTF-8 "
                    "with a byte order mark, so that Chinese text is not garbled.")]
# Written first by ``--excel``: without it Excel reads a CSV in the locale's code page.
EXCEL_BOM = "\ufeff"


def find_config_file(path: Path | None) -> ConfigLocation:
    """The config file to use (see :func:`netguard.config.find_config`).

    Raises:
        ConfigNotFoundError: None given and none found; it names every place searched.
    """
    from netguard.config import find_config

    return find_config(path)


def load_config_at(location: ConfigLocation) -> Settings:
    """Load settings from a chosen file and register their secrets with the log filter."""
    from netguard.config import load_settings
    from netguard.logsetup import SECRETS, collect_secrets

    settings = load_settings(location.path)
    SECRETS.add(collect_secrets(settings))
    return settings


def load_config(path: Path | None) -> Settings:
    """Find and load the config for a one-shot command.

    A file found through ``NETGUARD_CONFIG`` or the default places is named in one line on
    stderr (never stdout, which ``--json`` output owns), so an operator sees which estate
    the command acted on; a file given with ``--config`` is not repeated back.
    """
    location = find_config_file(path)
    if location.found_by != "--config":
        typer.echo(location.describe(), err=True)
    return load_config_at(location)


def fail(message: str, code: int = EXIT_FAILURE) -> typer.Exit:
    """Print ``error: message`` to stderr and return the Exit to raise."""
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(code)


def handle_errors(func: Callable[P, T]) -> Callable[P, T]:
    """Map netguard errors to a one-line message and a documented exit code."""

    @functools.wraps(func)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> T:
        from netguard.errors import NetguardError

        try:
            return func(*args, **kwargs)
        except NetguardError as exc:
            raise fail(str(exc), exit_code(exc)) from None
        except OSError as exc:
            # An output file that cannot be written (--output in a missing directory, a
            # full disk) is the operator's to fix: one line naming the file, no traceback.
            raise fail(_os_error_message(exc), EXIT_FAILURE) from None

    return wrapper


def exit_code(exc: BaseException) -> int:
    """The documented exit code of an error, by its subtree of :mod:`netguard.errors`."""
    from netguard.errors import (
        ConfigError,
        InvalidInputError,
        NetguardError,
        NotFoundError,
        RefusedError,
        SchemaOutdatedError,
    )

    subtrees: tuple[tuple[type[NetguardError], int], ...] = (
        (ConfigError, EXIT_CONFIG), (InvalidInputError, EXIT_CONFIG),
        (NotFoundError, EXIT_NOT_FOUND), (RefusedError, EXIT_REFUSED),
        (SchemaOutdatedError, EXIT_SCHEMA))
    return next((code for base, code in subtrees if isinstance(exc, base)), EXIT_FAILURE)


def _os_error_message(exc: OSError) -> str:
    if exc.filename is not None and exc.strerror:
        return f"{exc.filename}: {exc.strerror}"
    return str(exc) or type(exc).__name__


def run_async(coro: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine to completion on a fresh event loop."""
    return asyncio.run(coro)


def print_json(data: Any) -> None:
    """Write JSON to stdout (datetimes as ISO 8601 in UTC, ``+00:00``: JSON is for
    programs; tables show display.timezone)."""
    sys.stdout.write(json.dumps(data, default=_json_default, ensure_ascii=False, indent=2))
    sys.stdout.write("\n")


def _json_default(value: Any) -> Any:
    from datetime import datetime

    if isinstance(value, datetime):
        from netguard.clock import as_utc

        return as_utc(value).isoformat()
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, set | frozenset | tuple):
        return list(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def operator_name(by: str | None) -> str:
    """Who acts: ``--by``, else ``NETGUARD_OPERATOR``, else the login name."""
    if by:
        return by
    env = os.environ.get("NETGUARD_OPERATOR")
    if env:
        return env
    try:
        return os.getlogin()
    except OSError:
        import getpass

        return getpass.getuser()
