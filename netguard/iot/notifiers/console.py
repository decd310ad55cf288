"""Log alerts (for the demo and for sites without a chat robot)."""

from __future__ import annotations

import logging
from collections.abc import Sequence

from netguard.iot.config import NotifierConfig
from netguard.iot.notifiers.base import Notification

log = logging.getLogger("netguard.alerts")


class ConsoleNotifier:
    """Writes each alert to the ``netguard.alerts`` logger."""

    def __init__(self, config: NotifierConfig) -> None:
        self.name = config.name

    def check(self, notification: Notification) -> None:
        """Every notification can be logged."""

    async def send(self, batch: Sequence[Notification]) -> None:
        """Log every notification of the batch."""
        for n in batch:
            log.warning("%s", n.headline(), extra={"alert_id": n.alert_id,
                                                   "community": n.community})
