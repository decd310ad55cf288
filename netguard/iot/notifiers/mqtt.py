"""Publish alerts on ``<prefix>/<community>`` (QoS 1) for other systems to pick up."""

from __future__ import annotations

from collections.abc import Sequence

from netguard.errors import NotifyTransientError
from netguard.iot.config import MqttConfig, NotifierConfig
from netguard.iot.mqtt import client_kwargs
from netguard.iot.notifiers.base import Notification


class MqttNotifier:
    """Publishes each notification as JSON to ``netguard/alerts/<community>``."""

    def __init__(self, config: NotifierConfig, mqtt: MqttConfig) -> None:
        self.name = config.name
        self._mqtt = mqtt

    async def send(self, batch: Sequence[Notification]) -> None:
        """Connect, publish the batch with QoS 1, disconnect."""
        import aiomqtt

        kwargs = client_kwargs(self._mqtt, f"{self._mqtt.client_id}-alerts", persistent=False)
        try:
            async with aiomqtt.Client(**kwargs) as client:
                for n in batch:
                    await client.publish(f"{self._mqtt.alert_topic_prefix}/{n.community}",
                                         n.to_json().encode(), qos=1)
        except aiomqtt.MqttError as exc:
            raise NotifyTransientError(f"{self.name}: {exc}") from None
