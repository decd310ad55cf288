"""Alert delivery channels, chosen by ``type`` in config through a name->factory registry.

Importing this package imports every notifier module, which registers its factory.
"""

from __future__ import annotations

# Imported for their registrations (``@register`` in each module).
from netguard.iot.notifiers import console, dingtalk, mqtt, webhook, wecom  # noqa: F401
from netguard.iot.notifiers.base import Notification, Notifier
from netguard.iot.notifiers.registry import build_notifier, known_types

__all__ = ["Notification", "Notifier", "build_notifier", "known_types"]
