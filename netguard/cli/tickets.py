"""``netguard tickets ...`` (being built)."""

from __future__ import annotations

import typer

app = typer.Typer(help="tickets commands", no_args_is_help=True)
