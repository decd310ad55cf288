"""The ``netguard`` command: a thin entry point over the library.

Each area registers its commands from its own module; heavy imports (pysnmp, SQLAlchemy,
aiomqtt) happen inside the commands so that ``netguard tickets list`` starts fast.
"""

from __future__ import annotations

import typer

from netguard.cli import cluster, config_cmd, daemon, db, demo, iot, probes, tickets

app = typer.Typer(
    name="netguard",
    help="Network assurance and home-quarantine sensor monitoring for emergency network teams.",
    # `netguard --install-completion` / `--show-completion` for bash, zsh and fish.
    add_completion=True,
    pretty_exceptions_enable=False,
    # Click passes help_option_names down to every subcommand's context, so `-h` works
    # everywhere `--help` does.
    context_settings={"help_option_names": ["-h", "--help"]},
)

config_cmd.register(app)
probes.register(app)
daemon.register(app)
demo.register(app)
app.add_typer(tickets.app, name="tickets")
app.add_typer(db.app, name="db")
app.add_typer(cluster.app, name="cluster")
iot.register(app)


@app.callback(invoke_without_command=True)
def _root(
    ctx: typer.Context,
    version: bool = typer.Option(False, "--version", help="Print the version and exit."),
) -> None:
    if version:
        from netguard import __version__

        typer.echo(__version__)
        raise typer.Exit(0)
    if ctx.invoked_subcommand is None:
        typer.echo(ctx.get_help())
        raise typer.Exit(0)


def main() -> None:
    """Console-script entry point."""
    app()
