"""``netguard poll``: poll one target once and print what it found."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from netguard.cli.common import ConfigOption, JsonOption, handle_errors, load_config, print_json

if TYPE_CHECKING:
    from netguard.probes.state import TargetStatus


def register(app: typer.Typer) -> None:
    """Add this area's commands to ``app``."""

    @app.command("poll")
    @handle_errors
    def poll(
        target_id: Annotated[str, typer.Argument(help="The target's id in the config.")],
        config: ConfigOption = None,
        json_output: JsonOption = False,
    ) -> None:
        """Poll one target once: state, reasons and every reading.

        Exit status 0 when the target is up or degraded, 1 when it is down or
        unreachable, 3 for an unknown target id.
        """
        from netguard.cli.common import run_async
        from netguard.probes.service import ProbeService

        settings = load_config(config)
        target = settings.target(target_id)

        async def once() -> TargetStatus:
            async with ProbeService([target], probes=settings.probes) as probes:
                return (await probes.poll(target.id)).status

        status = run_async(once())
        if json_output:
            print_json(status.to_json())
        else:
            typer.echo(render_status(status))
        if status.state in ("down", "unreachable"):
            raise typer.Exit(1)


def render_status(status: TargetStatus) -> str:
    """A readable multi-line summary of one target's status."""
    from netguard.probes.state import if_status_name

    lines = [f"{status.target} ({status.kind}{', ' + status.site if status.site else ''}): "
             f"{status.state.upper()}"]
    if status.suppressed_by:
        lines.append(f"  suppressed by {status.suppressed_by} (its outage explains this)")
    for reason in status.reasons:
        lines.append(f"  - {reason}")
    if status.sys_uptime_seconds is not None:
        lines.append(f"  uptime {status.sys_uptime_seconds:.0f} s, "
                     f"poll took {status.poll_duration_seconds or 0:.3f} s")
    for i in status.interfaces:
        lines.append(f"  if {i.index} {i.name}: admin {if_status_name(i.admin_status)}, "
                     f"oper {if_status_name(i.oper_status)}, in {i.in_octets} B, "
                     f"out {i.out_octets} B, errors {i.in_errors}/{i.out_errors}, "
                     f"speed {i.speed_bps} b/s")
    for o in status.optical:
        lines.append(f"  optic {o.sensor}: rx {o.rx_dbm} dBm, tx {o.tx_dbm} dBm")
    if status.radio:
        r = status.radio
        lines.append(f"  radio: signal {r.signal_dbm} dBm, noise {r.noise_dbm} dBm, "
                     f"SNR {r.snr_db} dB")
    if status.ups:
        u = status.ups.to_json()
        lines.append("  ups: " + ", ".join(f"{k} {v}" for k, v in u.items()))
    for p in status.pon:
        lines.append(f"  pon {p.port}: {p.onus_online}/{p.onus_total} ONUs online")
    for name, value in status.extra:
        lines.append(f"  {name}: {value}")
    return "\n".join(lines)
