"""Generic JSON webhook."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict

from netguard.iot.notifiers.base import HttpNotifier, Notification, post_json


class WebhookNotifier(HttpNotifier):
    """POSTs ``{"source": "netguard", "alerts": [...]}``."""

    async def send(self, batch: Sequence[Notification]) -> None:
        """POST the batch as one JSON document."""
        body = {"source": "netguard", "alerts": [asdict(n) for n in batch]}
        headers = {k: v.get_secret_value() for k, v in self._config.headers.items()}
        await post_json(self._http, self._url, body, name=self.name,
                        timeout_s=self._config.timeout_seconds, headers=headers)
