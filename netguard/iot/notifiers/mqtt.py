"""Publish notifications (QoS 1) for other systems to pick up: door alerts on
``<prefix>/<community>``, ticket and Alertmanager messages on
``<prefix>/<subject>/<route>`` (``netguard/alerts/ticket/network-duty``), one level
deeper so that a subscriber to ``<prefix>/+`` gets door alerts only."""

from __future__ import annotations

import unicodedata
from collections.abc import Sequence

import aiomqtt

from netguard.errors import NotifyError, NotifyTransientError
from netguard.iot.config import MqttConfig, MqttNotifierConfig
from netguard.iot.mqtt import client_kwargs
from netguard.iot.notifiers.base import Notification
from netguard.iot.notifiers.registry import NotifierDeps, register

# MQTT 3.1.1/5 limit a topic to 65,535 UTF-8 bytes; names are far shorter in practice.
_TOPIC_MAX_BYTES = 65535


def topic_level_problem(level: str) -> str | None:
    """Why ``level`` cannot be one level of a publish topic, or None if it can.

    A wildcard (``#``, ``+``) makes the broker client refuse the publish; a ``/`` would
    publish into another level (another community's topic); control characters and NUL
    are forbidden by the MQTT spec or confuse subscribers.
    """
    if not level:
        return "it is empty"
    if "#" in level or "+" in level:
        return "it contains an MQTT wildcard (# or +)"
    if "/" in level:
        return "it contains '/'"
    if any(unicodedata.category(c) in ("Cc", "Cs") for c in level):
        return "it contains a control character"
    return None


def alert_topic(prefix: str, community: str, *, name: str = "mqtt") -> str:
    """The topic an alert for ``community`` is published on.

    Raises:
        NotifyError: ``community`` cannot be one topic level (refused, never escaped: a
            subscriber on ``<prefix>/<community>`` must not receive another's alerts).
    """
    problem = topic_level_problem(community)
    if problem is not None:
        raise NotifyError(f"{name}: community {community!r} cannot be an MQTT topic level: "
                          f"{problem}")
    topic = f"{prefix}/{community}"
    if len(topic.encode("utf-8")) > _TOPIC_MAX_BYTES:
        raise NotifyError(f"{name}: the alert topic for community {community[:40]!r}... "
                          "is longer than MQTT allows")
    return topic


def notification_topic(prefix: str, n: Notification, *, name: str = "mqtt") -> str:
    """The topic of ``n``: its community's for a door alert, else its subject's and
    route's (``community`` holds the route's name for ticket and Alertmanager messages).

    Raises:
        NotifyError: The community or route cannot be one topic level.
    """
    if n.subject == "alert":
        return alert_topic(prefix, n.community, name=name)
    return alert_topic(f"{prefix}/{n.subject}", n.community, name=name)


class MqttNotifier:
    """Publishes each notification as JSON to :func:`notification_topic`.

    The prefix is the entry's ``topic_prefix``, else ``iot.mqtt.alert_topic_prefix``.
    """

    def __init__(self, config: MqttNotifierConfig, mqtt: MqttConfig) -> None:
        self.name = config.name
        self._mqtt = mqtt
        self._prefix = config.topic_prefix or mqtt.alert_topic_prefix
        self._timeout = config.timeout_seconds

    def check(self, notification: Notification) -> None:
        """Refuse a community name that cannot be a topic level (see :func:`alert_topic`)."""
        notification_topic(self._prefix, notification, name=self.name)

    async def send(self, batch: Sequence[Notification]) -> None:
        """Connect, publish the batch with QoS 1, disconnect."""
        # Checked again here (the outbox checks first), so nothing is published when any
        # topic of the batch is bad.
        topics = [notification_topic(self._prefix, n, name=self.name) for n in batch]
        kwargs = client_kwargs(self._mqtt, f"{self._mqtt.client_id}-alerts", persistent=False)
        kwargs["timeout"] = self._timeout
        try:
            async with aiomqtt.Client(**kwargs) as client:
                for topic, n in zip(topics, batch, strict=True):
                    await client.publish(topic, n.to_json().encode(), qos=1)
        except aiomqtt.MqttError as exc:
            raise NotifyTransientError(f"{self.name}: {exc}") from None


@register("mqtt", MqttNotifierConfig)
def _build(config: MqttNotifierConfig, deps: NotifierDeps) -> MqttNotifier:
    return MqttNotifier(config, deps.mqtt)
