"""Log alerts (for the demo and for sites without a chat robot)."""

from __future__ import annotations

import logging
from collections.abc import Sequence

from netguard.iot.config import ConsoleNotifierConfig
from netguard.iot.messages import MessageRenderer
from netguard.iot.notifiers.base import Notification
from netguard.iot.notifiers.registry import NotifierDeps, register

log = logging.getLogger("netguard.alerts")


class ConsoleNotifier:
    """Writes each alert to the ``netguard.alerts`` logger."""

    def __init__(self, config: ConsoleNotifierConfig,
                 messages: MessageRenderer | None = None) -> None:
        self.name = config.name
        self._messages = messages or MessageRenderer()

    def check(self, notification: Notification) -> None:
        """Every notification can be logged."""

    async def send(self, batch: Sequence[Notification]) -> None:
        """Log every notification of the batch."""
        for n in batch:
            log.warning("%s", self._messages.title([n]), extra={"alert_id": n.alert_id,
                                                   "community": n.community})


@register("console", ConsoleNotifierConfig)
def _build(config: ConsoleNotifierConfig, deps: NotifierDeps) -> ConsoleNotifier:
    return ConsoleNotifier(config, deps.messages)
