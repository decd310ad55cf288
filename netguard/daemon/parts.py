"""The parts of the daemon that can run alone (``netguard run --only <part>``).

Kept free of imports so that the CLI can offer the choice without loading the daemon.
"""

from __future__ import annotations

from enum import StrEnum


class Part(StrEnum):
    """A part of the daemon that runs alone.

    ``intake``: the store and the IoT service (MQTT intake, alert outbox, IoT sweeps), no
    polling and no tickets; for sites that run the door-sensor intake as its own process.
    """

    INTAKE = "intake"
