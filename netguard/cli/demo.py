"""``netguard demo``: a simulated estate, broker and sensors, with netguard watching them."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from netguard.cli.common import EXIT_CONFIG, fail, handle_errors, run_async

if TYPE_CHECKING:
    from rich.console import Console

    from netguard.demo.runner import DemoSummary


def register(app: typer.Typer) -> None:
    """Add ``netguard demo`` to ``app``."""

    @app.command("demo")
    @handle_errors
    def demo(
        duration: Annotated[float | None, typer.Option(
            "--duration", min=1.0, help="Stop after this many seconds (default: until Ctrl-C).",
        )] = None,
        mqtt_url: Annotated[str | None, typer.Option(
            "--mqtt-url", help="Use this broker, mqtt://[user[:password]@]host[:port], "
                               "instead of the embedded one.",
        )] = None,
        directory: Annotated[Path, typer.Option(
            "--dir", help="Folder for the demo's config, database, logs and alert records.",
        )] = Path("netguard-demo"),
        metrics_port: Annotated[int | None, typer.Option(
            "--metrics-port", min=1, max=65535,
            help="Port of /metrics (default: 9108 if free, else any free port).",
        )] = None,
    ) -> None:
        """Watch netguard handle a simulated emergency network for a minute.

        Simulated links and sites, quarantined households' door sensors, scripted
        faults in the first minute, tickets, alerts and metrics. Ctrl-C stops it.
        """
        from rich.console import Console

        from netguard.logsetup import configure_logging

        directory = directory.resolve()
        try:
            directory.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise fail(f"cannot use {directory} for the demo: {exc.strerror or exc}",
                       EXIT_CONFIG) from None
        log_path = directory / "netguard.log"
        console = Console()
        with log_path.open("a", encoding="utf-8") as log_stream:
            # The live view owns the terminal; the daemon's log goes to a file beside the data.
            configure_logging("INFO", "human", stream=log_stream)
            summary = run_async(_demo(duration, mqtt_url, directory, metrics_port, console))
        last = summary.last

        def say(text: str) -> None:
            console.print(text, soft_wrap=True, highlight=False)

        say("")
        say("[bold]demo stopped[/bold]; everything it started has exited.")
        if last is not None:
            from netguard.demo.view import ticket_counts

            say(f"  tickets: {ticket_counts(last)}; alerts received by the webhook sink: "
                f"{last.alerts_received}")
        say(f"  log      {log_path}")
        say(f"  alerts   {summary.sink_file}")
        say(f"  look at  [cyan]{summary.executable} tickets list --config "
            f"{summary.config_path}[/cyan]")


async def _demo(duration: float | None, mqtt_url: str | None, directory: Path,
                metrics_port: int | None, console: Console) -> DemoSummary:
    import asyncio
    import signal

    from netguard.daemon.signals import STOP_SIGNALS, stop_on_signals
    from netguard.demo.runner import DemoOptions, run_demo

    stop = asyncio.Event()
    # A closed terminal (SIGHUP) stops the demo cleanly too, so no simulator is orphaned.
    with stop_on_signals(stop, (*STOP_SIGNALS, signal.SIGHUP)):
        return await run_demo(DemoOptions(directory, duration, mqtt_url, metrics_port),
                              stop, console=console)
