"""Generic JSON webhook."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict

import aiohttp

from netguard.iot.config import NotifierConfig
from netguard.iot.notifiers.base import Notification, post_json


class WebhookNotifier:
    """POSTs ``{"source": "netguard", "alerts": [...]}``."""

    def __init__(self, config: NotifierConfig, http: aiohttp.ClientSession) -> None:
        assert config.url is not None
        self.name = config.name
        self._config = config
        self._url = config.url.get_secret_value()
        self._http = http

    async def send(self, batch: Sequence[Notification]) -> None:
        """POST the batch as one JSON document."""
        body = {"source": "netguard", "alerts": [asdict(n) for n in batch]}
        await post_json(self._http, self._url, body, name=self.name,
                        timeout_s=self._config.timeout_seconds, headers=self._config.headers)
