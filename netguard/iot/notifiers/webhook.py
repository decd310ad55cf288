"""Generic JSON webhook."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict

import aiohttp

from netguard.iot.config import WebhookNotifierConfig
from netguard.iot.notifiers.base import HttpNotifier, Notification, post_json
from netguard.iot.notifiers.registry import NotifierDeps, register


class WebhookNotifier(HttpNotifier):
    """POSTs ``{"source": "netguard", "alerts": [...]}``."""

    def __init__(self, config: WebhookNotifierConfig, http: aiohttp.ClientSession) -> None:
        super().__init__(config, http)
        self._headers = {k: v.get_secret_value() for k, v in config.headers.items()}

    async def send(self, batch: Sequence[Notification]) -> None:
        """POST the batch as one JSON document."""
        body = {"source": "netguard", "alerts": [asdict(n) for n in batch]}
        await post_json(self._http, self._url, body, name=self.name,
                        timeout_s=self._config.timeout_seconds, headers=self._headers)


@register("webhook", WebhookNotifierConfig)
def _build(config: WebhookNotifierConfig, deps: NotifierDeps) -> WebhookNotifier:
    return WebhookNotifier(config, deps.http)
