"""``netguard households|sensors|alerts|deadletters|audit ...``: door-sensor records.

The commands live in :mod:`netguard.cli.households` (households and sensors),
:mod:`netguard.cli.alerts`, :mod:`netguard.cli.deadletters` and
:mod:`netguard.cli.audit`; each calls :class:`netguard.iot.admin.IotAdmin`, the service
the daemon and the demo use too.
"""

from __future__ import annotations

import typer

from netguard.cli.alerts import alerts_app
from netguard.cli.audit import audit_app
from netguard.cli.deadletters import deadletters_app
from netguard.cli.households import households_app, sensors_app


def register(app: typer.Typer) -> None:
    """Add this area's commands to ``app``."""
    app.add_typer(households_app, name="households")
    app.add_typer(sensors_app, name="sensors")
    app.add_typer(alerts_app, name="alerts")
    app.add_typer(deadletters_app, name="deadletters")
    app.add_typer(audit_app, name="audit")
