"""Alert delivery channels, chosen by ``type`` in config."""

from __future__ import annotations

import aiohttp

from netguard.iot.config import MqttConfig, NotifierConfig
from netguard.iot.notifiers.base import Notification, Notifier
from netguard.iot.notifiers.console import ConsoleNotifier
from netguard.iot.notifiers.dingtalk import DingtalkNotifier
from netguard.iot.notifiers.mqtt import MqttNotifier
from netguard.iot.notifiers.webhook import WebhookNotifier
from netguard.iot.notifiers.wecom import WecomNotifier

__all__ = ["Notification", "Notifier", "build_notifier"]


def build_notifier(config: NotifierConfig, http: aiohttp.ClientSession,
                   mqtt: MqttConfig) -> Notifier:
    """The notifier for one config entry."""
    if config.type == "webhook":
        return WebhookNotifier(config, http)
    if config.type == "wecom":
        return WecomNotifier(config, http)
    if config.type == "dingtalk":
        return DingtalkNotifier(config, http)
    if config.type == "mqtt":
        return MqttNotifier(config, mqtt)
    return ConsoleNotifier(config)
