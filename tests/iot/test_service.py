"""How the daemon's settings reach IotService (no database, no broker)."""

from __future__ import annotations

from netguard.daemon.config import DaemonConfig
from netguard.iot.service import DEFAULT_SHUTDOWN_TIMEOUT_SECONDS


def test_default_shutdown_timeout_is_the_daemons() -> None:
    # Tests and benches build IotService without the daemon section; the daemon passes
    # its own value (netguard.daemon.wiring). The two defaults must not drift apart.
    assert DaemonConfig().shutdown_timeout_seconds == DEFAULT_SHUTDOWN_TIMEOUT_SECONDS
