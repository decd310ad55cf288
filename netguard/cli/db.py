"""``netguard db ...``: show and move the database schema revision."""

from __future__ import annotations

from typing import Annotated

import typer

from netguard.cli.common import ConfigOption, JsonOption, handle_errors, load_config, print_json

app = typer.Typer(help="Database schema: current revision, upgrade, downgrade.",
                  no_args_is_help=True)


async def _current(url_config: object) -> str | None:
    from netguard.store.config import StoreConfig
    from netguard.store.db import create_engine, current_revision

    assert isinstance(url_config, StoreConfig)
    engine = create_engine(url_config)
    try:
        return await current_revision(engine)
    finally:
        await engine.dispose()


@app.command("current")
@handle_errors
def current(config: ConfigOption = None, json_: JsonOption = False) -> None:
    """Print the database's schema revision and the one this netguard needs."""
    from netguard.cli.common import run_async
    from netguard.store.db import head_revision

    settings = load_config(config)
    head = head_revision()
    file = settings.store.sqlite_file()
    # Connecting would create an empty SQLite file just by looking. A file in the way of
    # its directory is left to the engine, which reports it as an unusable path.
    missing = file is not None and not file.exists() and not any(
        p.exists() and not p.is_dir() for p in file.parents)
    rev = None if missing else run_async(_current(settings.store))
    if json_:
        print_json({"current": rev, "head": head, "up_to_date": rev == head})
        return
    state = "up to date" if rev == head else "outdated: run `netguard db upgrade`"
    found = f"(no database at {file})" if missing else rev or "(empty database)"
    typer.echo(f"current: {found}\nhead:    {head}\n{state}")


@app.command("upgrade")
@handle_errors
def upgrade(
    config: ConfigOption = None,
    revision: Annotated[str, typer.Option("--revision", help="Target revision.")] = "head",
) -> None:
    """Migrate the database schema up to the newest revision (or --revision)."""
    from netguard.cli.common import run_async
    from netguard.store.db import upgrade as run_upgrade

    settings = load_config(config)
    before = run_async(_current(settings.store))
    run_async(run_upgrade(settings.store, revision))
    after = run_async(_current(settings.store))
    typer.echo(f"database schema: {before or '(empty)'} -> {after}")


@app.command("downgrade")
@handle_errors
def downgrade(
    revision: Annotated[str, typer.Argument(help="Target revision, or `base` for empty.")],
    config: ConfigOption = None,
    yes: Annotated[bool, typer.Option("--yes", help="Confirm: downgrading drops data.")
                   ] = False,
) -> None:
    """Migrate the schema down to REVISION (drops the tables of later revisions)."""
    from netguard.cli.common import EXIT_CONFIG, fail, run_async
    from netguard.store.db import downgrade as run_downgrade

    if not yes:
        raise fail("downgrading drops the data of later revisions; pass --yes", EXIT_CONFIG)
    settings = load_config(config)
    before = run_async(_current(settings.store))
    run_async(run_downgrade(settings.store, revision))
    after = run_async(_current(settings.store))
    typer.echo(f"database schema: {before or '(empty)'} -> {after or '(empty)'}")
