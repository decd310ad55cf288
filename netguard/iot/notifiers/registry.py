"""Notifier type name -> factory. Each notifier module registers its own factory.

Adding a channel is one module (its config model in ``netguard/iot/config.py`` plus a
``@register`` factory) and one import in ``netguard/iot/notifiers/__init__.py``; nothing
else picks adapters, and an unknown name fails loudly instead of falling back.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import aiohttp
from pydantic import BaseModel

from netguard.errors import ConfigError
from netguard.iot.config import MqttConfig, NotifierConfig
from netguard.iot.messages import MessageRenderer
from netguard.iot.notifiers.base import Notifier

__all__ = ["NotifierDeps", "build_notifier", "known_types", "register"]


@dataclass(frozen=True, slots=True)
class NotifierDeps:
    """What a factory may use besides its own config entry."""

    http: aiohttp.ClientSession
    mqtt: MqttConfig
    # The texts of messages for people (language, zone, templates: ``display``).
    messages: MessageRenderer = field(default_factory=MessageRenderer)


C = TypeVar("C", bound=BaseModel)
Factory = Callable[[C, NotifierDeps], Notifier]


@dataclass(frozen=True, slots=True)
class _Entry:
    config_type: type[BaseModel]
    factory: Callable[[Any, NotifierDeps], Notifier]


_FACTORIES: dict[str, _Entry] = {}


def register(type_name: str, config_type: type[C]) -> Callable[[Factory[C]], Factory[C]]:
    """Register the factory for the notifiers whose config ``type`` is ``type_name``.

    Args:
        type_name: The ``type:`` value in config.
        config_type: The config model of that type; the factory receives an instance.

    Raises:
        ValueError: ``type_name`` already has a factory (two modules claiming one name
            would make the choice depend on import order).
    """
    def decorate(factory: Factory[C]) -> Factory[C]:
        if type_name in _FACTORIES:
            raise ValueError(f"notifier type {type_name!r} is registered twice")
        _FACTORIES[type_name] = _Entry(config_type, factory)
        return factory
    return decorate


def known_types() -> tuple[str, ...]:
    """The registered notifier type names, sorted."""
    return tuple(sorted(_FACTORIES))


def build_notifier(config: NotifierConfig, http: aiohttp.ClientSession,
                   mqtt: MqttConfig, messages: MessageRenderer | None = None) -> Notifier:
    """The notifier for one config entry.

    ``messages`` renders the texts people read (default: zh-CN, Asia/Shanghai, the
    built-in templates).

    Raises:
        ConfigError: No factory is registered for ``config.type`` (or it was registered
            for another config model); never a silent fallback to another channel.
    """
    entry = _FACTORIES.get(config.type)
    if entry is None or not isinstance(config, entry.config_type):
        raise ConfigError("iot.notifiers", [
            f"notifier {config.name!r}: unknown notifier type {config.type!r} "
            f"(known: {', '.join(known_types())})"])
    deps = NotifierDeps(http=http, mqtt=mqtt, messages=messages or MessageRenderer())
    return entry.factory(config, deps)
