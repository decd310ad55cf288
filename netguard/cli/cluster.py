"""``netguard cluster status``: the members of a scale-out cluster (docs/scale-out.md)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import typer

from netguard.cli.common import (
    EXIT_CONFIG,
    ConfigOption,
    JsonOption,
    fail,
    handle_errors,
    load_config,
    print_json,
    run_async,
)

if TYPE_CHECKING:
    from netguard.cluster.status import ClusterStatus
    from netguard.config import Settings

app = typer.Typer(help="Scale-out: members, heartbeats, owned targets, leader.",
                  no_args_is_help=True)


async def _status(settings: Settings) -> ClusterStatus:
    from netguard.cluster.status import cluster_status
    from netguard.store.db import Store

    async with Store(settings.store) as store:
        return await cluster_status(store.engine, [t.id for t in settings.targets])


@app.command("status")
@handle_errors
def status(config: ConfigOption = None, json_: JsonOption = False) -> None:
    """List the members, their last heartbeat, the targets each owns and the leader.

    The owned counts are computed over the targets of this configuration, as every
    instance computes them (all instances must run the same target list).
    """
    from netguard.localtime import zone

    settings = load_config(config)
    if not settings.store.sqlalchemy_url().startswith("postgresql"):
        raise fail("a cluster needs a PostgreSQL store (store.url); this configuration "
                   "uses SQLite", EXIT_CONFIG)
    result = run_async(_status(settings))
    if json_:
        print_json(result.to_dict())
        return
    tz = zone(settings.display.timezone)
    typer.echo(f"leader: {result.leader or '(none)'}    live members: {result.live}    "
               f"targets: {result.targets}")
    if not result.members:
        typer.echo("no members registered")
        return
    typer.echo(f"{'INSTANCE':<24} {'STATE':<6} {'LEADER':<6} {'OWNED':>6}  "
               f"{'LAST HEARTBEAT':<19} {'AGE':>7}  {'LEASE':>6}  HOST/PID")
    for item in result.members:
        m = item.member
        beat = m.heartbeat_at.astimezone(tz).strftime("%Y-%m-%d %H:%M:%S")
        typer.echo(f"{m.instance_id:<24} {'live' if m.live else 'gone':<6} "
                   f"{'yes' if item.leader else '':<6} {item.owned_targets:>6}  {beat:<19} "
                   f"{m.age_seconds:>6.1f}s  {m.lease_seconds:>5g}s  {m.host}/{m.pid}")
