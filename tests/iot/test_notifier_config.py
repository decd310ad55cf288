"""Issue 12 item 7: each notifier type validates its own fields; the registry fails loudly."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any, cast

import aiohttp
import aiomqtt
import pytest

from netguard.config import Settings, load_settings, settings_from_data
from netguard.errors import ConfigError
from netguard.iot.config import (
    NOTIFIER_TYPES,
    ConsoleNotifierConfig,
    DingtalkNotifierConfig,
    MqttConfig,
    MqttNotifierConfig,
    NotifierConfig,
    WebhookNotifierConfig,
    WecomNotifierConfig,
)
from netguard.iot.notifiers import build_notifier, known_types
from netguard.iot.notifiers.base import Notification
from netguard.iot.notifiers.console import ConsoleNotifier
from netguard.iot.notifiers.dingtalk import DingtalkNotifier
from netguard.iot.notifiers.mqtt import MqttNotifier
from netguard.iot.notifiers.registry import register
from netguard.iot.notifiers.webhook import WebhookNotifier
from netguard.iot.notifiers.wecom import WecomNotifier
from netguard.logsetup import collect_secrets
from tests.iot.conftest import T0
from tests.support.servers import Broker

URL = "https://robot.example.net/send?key=k-7f3a9c"
# Entries 0 and 1 are valid, so an error in the entry under test names index 2.
PREFIX = [{"name": "a", "type": "console"}, {"name": "b", "type": "mqtt"}]


def _settings(entry: dict[str, Any]) -> Settings:
    return settings_from_data({"iot": {"notifiers": [*PREFIX, entry]}}, source="x.yaml")


def _problems(entry: dict[str, Any]) -> list[str]:
    with pytest.raises(ConfigError) as info:
        _settings(entry)
    return info.value.problems


@pytest.mark.parametrize(("entry", "model"), [
    ({"name": "w", "type": "webhook", "url": URL, "headers": {"X-Team": "ng"}},
     WebhookNotifierConfig),
    ({"name": "w", "type": "wecom", "url": URL, "rate_per_minute": 20}, WecomNotifierConfig),
    ({"name": "w", "type": "dingtalk", "url": URL, "secret": "SEC-1"}, DingtalkNotifierConfig),
    ({"name": "w", "type": "dingtalk", "url": URL}, DingtalkNotifierConfig),
    ({"name": "w", "type": "mqtt", "topic_prefix": "ops/alerts"}, MqttNotifierConfig),
    ({"name": "w", "type": "mqtt"}, MqttNotifierConfig),
    ({"name": "w", "type": "console", "timeout_seconds": 2}, ConsoleNotifierConfig),
])
def test_each_type_loads_into_its_own_model(entry: dict[str, Any], model: type) -> None:
    notifier = _settings(entry).iot.notifiers[2]
    assert type(notifier) is model
    assert notifier.type == entry["type"]


@pytest.mark.parametrize(("entry", "expected"), [
    # webhook: url required and http(s); headers checked; no robot secret.
    ({"name": "w", "type": "webhook"}, "iot.notifiers[2].url: Field required"),
    ({"name": "w", "type": "webhook", "url": "ftp://k-7f3a9c@h/x"},
     "iot.notifiers[2].url: must be an http:// or https:// URL"),
    ({"name": "w", "type": "webhook", "url": URL, "secret": "s"},
     "iot.notifiers[2].secret: unknown option"),
    ({"name": "w", "type": "webhook", "url": URL, "headers": {"Bad Name": "x"}},
     "iot.notifiers[2].headers: header name 'Bad Name' is not a valid"),
    # wecom: url required; webhook headers are not a WeCom option.
    ({"name": "w", "type": "wecom"}, "iot.notifiers[2].url: Field required"),
    ({"name": "w", "type": "wecom", "url": "https://h/k-7f3a9c x"},
     "iot.notifiers[2].url: must not contain spaces"),
    ({"name": "w", "type": "wecom", "url": URL, "headers": {"A": "b"}},
     "iot.notifiers[2].headers: unknown option"),
    # dingtalk: an empty secret would sign every message wrongly.
    ({"name": "w", "type": "dingtalk", "url": URL, "secret": ""},
     "iot.notifiers[2].secret: must not be empty"),
    ({"name": "w", "type": "dingtalk", "url": "robot.example.net"},
     "iot.notifiers[2].url: must be an http:// or https:// URL"),
    # mqtt: its prefix is a publish topic; it has no URL.
    ({"name": "w", "type": "mqtt", "topic_prefix": "alerts/#"},
     "iot.notifiers[2].topic_prefix: must be a topic without wildcards"),
    ({"name": "w", "type": "mqtt", "url": URL}, "iot.notifiers[2].url: unknown option"),
    # console: nothing but the common options.
    ({"name": "w", "type": "console", "url": URL}, "iot.notifiers[2].url: unknown option"),
    ({"name": "w", "type": "console", "rate_per_minute": 0},
     "iot.notifiers[2].rate_per_minute: Input should be greater than or equal to 1"),
    ({"name": "", "type": "console"}, "iot.notifiers[2].name: String should have at least"),
    # The type itself.
    ({"name": "w", "type": "sms", "url": URL},
     "iot.notifiers[2].type: unknown type 'sms' (known: 'webhook', 'wecom', 'dingtalk', "
     "'mqtt', 'console')"),
    ({"name": "w", "url": URL}, "iot.notifiers[2].type: required (one of: webhook, wecom"),
])
def test_bad_fields_name_the_index_and_field(entry: dict[str, Any], expected: str) -> None:
    problems = _problems(entry)
    assert len(problems) == 1, problems
    assert problems[0].startswith(expected), problems
    assert "k-7f3a9c" not in problems[0]  # the URL is a secret and never echoed


def test_secrets_of_every_type_from_files_are_collected_for_masking(tmp_path: Path) -> None:
    (tmp_path / "wecom-url").write_text(URL + "\n")
    (tmp_path / "ding-secret").write_text("SEC-ding-51\n")
    (tmp_path / "token").write_text("Bearer tok-88\n")
    path = tmp_path / "netguard.yaml"
    path.write_text(f"""
iot:
  notifiers:
    - {{name: w, type: wecom, url_file: wecom-url}}
    - {{name: d, type: dingtalk, url: "${{NG_DING_URL}}", secret_file: ding-secret}}
    - {{name: h, type: webhook, url: "{URL}", headers: {{Authorization_file: token}}}}
""")
    settings = load_settings(path, env={"NG_DING_URL": URL + "-ding"})
    wecom, ding, hook = settings.iot.notifiers
    assert isinstance(wecom, WecomNotifierConfig)
    assert isinstance(ding, DingtalkNotifierConfig)
    assert isinstance(hook, WebhookNotifierConfig)
    assert wecom.url.get_secret_value() == URL
    assert ding.secret is not None
    assert ding.secret.get_secret_value() == "SEC-ding-51"
    assert hook.headers["Authorization"].get_secret_value() == "Bearer tok-88"
    secrets = collect_secrets(settings)
    assert {URL, URL + "-ding", "SEC-ding-51", "Bearer tok-88"} <= set(secrets)
    for secret in ("SEC-ding-51", "Bearer tok-88", "k-7f3a9c"):
        assert secret not in repr(settings)


def test_every_config_type_has_a_factory() -> None:
    assert set(known_types()) == set(NOTIFIER_TYPES)


async def test_registry_builds_each_type() -> None:
    settings = settings_from_data({"iot": {"notifiers": [
        {"name": "h", "type": "webhook", "url": URL},
        {"name": "w", "type": "wecom", "url": URL},
        {"name": "d", "type": "dingtalk", "url": URL},
        {"name": "m", "type": "mqtt"},
        {"name": "c", "type": "console"},
    ]}})
    async with aiohttp.ClientSession() as http:
        built = [build_notifier(n, http, settings.iot.mqtt) for n in settings.iot.notifiers]
    assert [type(n) for n in built] == [WebhookNotifier, WecomNotifier, DingtalkNotifier,
                                        MqttNotifier, ConsoleNotifier]
    assert [n.name for n in built] == ["h", "w", "d", "m", "c"]


async def test_unknown_type_is_an_error_never_a_console_fallback() -> None:
    # A config whose type no module registered (validation stops this in practice; the
    # registry must still refuse rather than fall back to logging the alert).
    bogus = cast(NotifierConfig, ConsoleNotifierConfig.model_construct(name="pager", type="sms"))
    async with aiohttp.ClientSession() as http:
        with pytest.raises(ConfigError) as info:
            build_notifier(bogus, http, MqttConfig())
    [problem] = info.value.problems
    assert problem == ("notifier 'pager': unknown notifier type 'sms' "
                       "(known: console, dingtalk, mqtt, webhook, wecom)")


def test_a_type_cannot_be_registered_twice() -> None:
    with pytest.raises(ValueError, match="'console' is registered twice"):
        register("console", ConsoleNotifierConfig)(lambda config, deps: ConsoleNotifier(config))
    assert "console" in known_types()


async def test_mqtt_topic_prefix_overrides_the_broker_default(broker: Broker) -> None:
    settings = settings_from_data({"iot": {
        "mqtt": {"enabled": False, "host": broker.host, "port": broker.port,
                 "client_id": "ng-prefix-test"},
        "notifiers": [{"name": "bus", "type": "mqtt", "topic_prefix": "ops/door"}]}})
    [config] = settings.iot.notifiers
    async with aiomqtt.Client(broker.host, broker.port, identifier="prefix-watcher") as watcher:
        await watcher.subscribe("#", qos=1)
        async with aiohttp.ClientSession() as http:
            await build_notifier(config, http, settings.iot.mqtt).send([Notification(
                alert_id=7, reason="raised", type="door_open", severity="critical",
                community="c1", household="h1", sensor="n1", reasons=(), count=1,
                first_seen=T0.isoformat())])
        async with asyncio.timeout(10):
            message = await anext(aiter(watcher.messages))
    assert str(message.topic) == "ops/door/c1"
    assert json.loads(bytes(message.payload))["alert_id"] == 7  # type: ignore[arg-type]
