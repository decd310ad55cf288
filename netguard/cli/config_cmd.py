"""``netguard check-config``."""

from __future__ import annotations

from typing import TYPE_CHECKING

import typer

from netguard.cli.common import ConfigOption, find_config_file, handle_errors, load_config_at

if TYPE_CHECKING:
    from netguard.config import Settings


def _tls_problems(settings: Settings) -> list[str]:
    """What would make ``run`` fail later on the TLS files: load them now."""
    problems: list[str] = []
    metrics = settings.metrics
    if metrics.enabled and metrics.tls is not None:
        try:
            metrics.tls.server_context()
        except ValueError as exc:
            problems.append(f"metrics.tls: {exc}")
    mqtt = settings.iot.mqtt
    if mqtt.enabled and mqtt.tls is not None:
        for option in ("ca_file", "cert_file", "key_file"):
            path = getattr(mqtt.tls, option)
            if path is None:
                continue
            try:
                with open(path, "rb"):
                    pass
            except OSError as exc:
                problems.append(f"iot.mqtt.tls.{option}: cannot read {path}: "
                                f"{exc.strerror or exc}")
    return problems


def register(app: typer.Typer) -> None:
    """Add the config commands to ``app``."""

    @app.command("check-config")
    @handle_errors
    def check_config(config: ConfigOption = None) -> None:
        """Validate a configuration file and summarise what it defines."""
        from netguard.errors import ConfigError

        location = find_config_file(config)
        settings = load_config_at(location)
        source = location.path
        problems = _tls_problems(settings)
        if problems:
            raise ConfigError(str(source), problems)
        kinds: dict[str, int] = {}
        for target in settings.targets:
            kinds[target.kind] = kinds.get(target.kind, 0) + 1
        by_kind = ", ".join(f"{n} {k}" for k, n in sorted(kinds.items())) or "none"
        typer.echo(f"{source}: OK (from {location.found_by})")
        typer.echo(f"  targets: {len(settings.targets)} ({by_kind})")
        typer.echo(f"  store: {'postgresql' if settings.store.url else settings.store.path}")
        mqtt = settings.iot.mqtt
        typer.echo(f"  mqtt: {f'{mqtt.host}:{mqtt.port}' if mqtt.enabled else 'disabled'}")
        typer.echo(f"  notifiers: {len(settings.iot.notifiers)}, "
                   f"community routes: {len(settings.iot.routes)}")
        cluster = settings.cluster
        typer.echo(f"  cluster: instance {cluster.member_id}, lease {cluster.lease_seconds:g}s"
                   if cluster.enabled else "  cluster: disabled")
