"""One log line per store outage, not one traceback per failed attempt."""

from __future__ import annotations

import logging
import time

log = logging.getLogger(__name__)

# While a store outage lasts, the writer and the sweeps log one line when it starts, then
# one every this many seconds with the count of failures, and one when it ends.
OUTAGE_LOG_EVERY_SECONDS = 60.0


class Outage:
    """Logs a store outage as one line when it starts, one a minute while it lasts (with
    the count of failures) and one when it ends: never a traceback per attempt.

    Args:
        message: What the first line says (``ERROR``).
    """

    def __init__(self, message: str) -> None:
        self.message = message
        self.failures = 0
        self._since = 0.0
        self._logged = 0.0

    def failed(self, reason: str, **extra: object) -> None:
        """One more failed attempt, for ``reason``."""
        now = time.monotonic()
        self.failures += 1
        if self.failures == 1:
            self._since = self._logged = now
            log.error(self.message, extra={"reason": reason, **extra})
        elif now - self._logged >= OUTAGE_LOG_EVERY_SECONDS:
            self._logged = now
            log.error("%s (still)", self.message, extra={
                "reason": reason, "failures": self.failures,
                "outage_seconds": round(now - self._since, 1), **extra})

    def recovered(self, **extra: object) -> None:
        """An attempt went through: ends the outage, if one was under way."""
        if self.failures:
            log.warning("the store is back", extra={
                "after_failures": self.failures,
                "outage_seconds": round(time.monotonic() - self._since, 1), **extra})
        self.failures = 0
