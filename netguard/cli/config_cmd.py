"""``netguard check-config``."""

from __future__ import annotations

import typer

from netguard.cli.common import ConfigOption, handle_errors, load_config, resolve_config_path


def register(app: typer.Typer) -> None:
    """Add the config commands to ``app``."""

    @app.command("check-config")
    @handle_errors
    def check_config(config: ConfigOption = None) -> None:
        """Validate a configuration file and summarise what it defines."""
        settings = load_config(config)
        source = resolve_config_path(config) or "<embedded defaults>"
        kinds: dict[str, int] = {}
        for target in settings.targets:
            kinds[target.kind] = kinds.get(target.kind, 0) + 1
        by_kind = ", ".join(f"{n} {k}" for k, n in sorted(kinds.items())) or "none"
        typer.echo(f"{source}: OK")
        typer.echo(f"  targets: {len(settings.targets)} ({by_kind})")
        typer.echo(f"  store: {'postgresql' if settings.store.url else settings.store.path}")
        mqtt = settings.iot.mqtt
        typer.echo(f"  mqtt: {f'{mqtt.host}:{mqtt.port}' if mqtt.enabled else 'disabled'}")
        typer.echo(f"  notifiers: {len(settings.iot.notifiers)}, "
                   f"community routes: {len(settings.iot.routes)}")
