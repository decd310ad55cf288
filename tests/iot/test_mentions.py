"""@-mentions: one identifier per robot per recipient, checked in config, and the JSON
bodies as a real HTTP receiver gets them."""

from __future__ import annotations

from typing import Any

import pytest

from netguard.config import settings_from_data
from netguard.errors import ConfigError
from netguard.iot.config import Recipient
from netguard.iot.notifiers.base import Mention, Notification
from netguard.iot.service import IotService
from netguard.store import Store
from tests.iot.conftest import T0, make_settings, register_estate
from tests.iot.receiver import Receiver
from tests.support.wait import async_wait_until

RECIPIENTS: list[Any] = [
    {"name": "王芳", "wecom": "wangfang", "dingtalk_user": "0123", "mobile": "13800000000"},
    {"name": "Li Wei", "mobile": "13900000001"},
    "13700000002",
]




def _iot(receiver: Receiver) -> dict[str, Any]:
    return {
        "notifiers": [
            {"name": "hook", "type": "webhook", "url": receiver.url("/hook")},
            {"name": "wecom-md", "type": "wecom", "url": receiver.url("/wecom-md")},
            {"name": "wecom-text", "type": "wecom", "url": receiver.url("/wecom-text"),
             "msgtype": "text"},
            {"name": "ding", "type": "dingtalk", "url": receiver.url("/ding")},
        ],
        "routes": [{"community": "c1", "notifiers": ["hook", "wecom-md", "wecom-text", "ding"],
                    "recipients": RECIPIENTS}],
        "rules": {"heartbeat_timeout_seconds": 86400},
    }


async def test_each_robot_mentions_in_its_own_format(sqlite_store: Store,
                                                     receiver: Receiver) -> None:
    await register_estate(sqlite_store, T0)
    settings = make_settings(sqlite_store.config, _iot(receiver))
    async with IotService(settings.iot, sqlite_store) as service:
        body = b'{"sensor": "n1", "seq": 1, "event": "open"}'
        await service.ingest("netguard/sensors/n1/event", body)

        async def four() -> bool:
            return len(receiver.requests) >= 4

        await async_wait_until(four, what="4 deliveries")

    [md] = receiver.on("/wecom-md")
    content = md.body["markdown"]["content"]
    # Only the recipient with a WeCom user id can be mentioned in markdown.
    assert content.endswith("\n<@wangfang>")
    assert "13900000001" not in content

    [text] = receiver.on("/wecom-text")
    assert text.body["msgtype"] == "text"
    assert text.body["text"]["mentioned_list"] == ["wangfang"]
    assert text.body["text"]["mentioned_mobile_list"] == ["13700000002", "13900000001"]
    assert "<@" not in text.body["text"]["content"]

    [ding] = receiver.on("/ding")
    assert ding.body["at"] == {"atUserIds": ["0123"],
                               "atMobiles": ["13700000002", "13900000001"],
                               "isAtAll": False}
    assert ding.body["markdown"]["text"].endswith("\n@0123 @13700000002 @13900000001")

    [hook] = receiver.on("/hook")
    [alert] = hook.body["alerts"]
    assert alert["recipients"] == ["王芳", "Li Wei", "13700000002"]
    assert alert["mentions"][0] == {"wecom": "wangfang", "dingtalk_user": "0123",
                                    "mobile": "13800000000"}


def _route(recipients: list[Any]) -> dict[str, Any]:
    return {"iot": {"notifiers": [{"name": "w", "type": "wecom", "url": "https://x.example/"}],
                    "routes": [{"community": "c1", "notifiers": ["w"],
                                "recipients": recipients}]}}


@pytest.mark.parametrize(("recipient", "where", "problem"), [
    ({"mobile": "1380000000"}, "recipients[0].mobile", "not a mobile number"),
    ({"mobile": "23800000000"}, "recipients[0].mobile", "not a mobile number"),
    ("Li Wei", "recipients[0]", "a plain recipient is a mobile number"),
    ({"wecom": "wang fang"}, "recipients[0].wecom", "not a user id"),
    ({"wecom": "<@all>"}, "recipients[0].wecom", "not a user id"),
    ({"dingtalk_user": "x" * 65}, "recipients[0].dingtalk_user", "not a user id"),
    ({"name": "a\nb"}, "recipients[0].name", "control characters"),
    ({}, "recipients[0]", "at least one of"),
    ({"wechat": "x"}, "recipients[0].wechat", "unknown option"),
])
def test_a_malformed_mention_is_a_config_error(recipient: Any, where: str,
                                               problem: str) -> None:
    with pytest.raises(ConfigError) as caught:
        settings_from_data(_route([recipient]))
    [line] = caught.value.problems
    assert line.startswith(f"iot.routes[0].{where}: "), line
    assert problem in line


def test_a_plain_mobile_still_works() -> None:
    route = settings_from_data(_route(["13800000000"])).iot.routes[0]
    assert route.recipients == [Recipient(mobile="13800000000")]


def test_an_outbox_body_from_before_mentions_reads_its_recipients_as_mobiles() -> None:
    old = ('{"alert_id": 1, "reason": "raised", "type": "door_open", "severity": "critical",'
           ' "community": "c1", "household": "h1", "sensor": "n1", "reasons": [], "count": 1,'
           ' "first_seen": "2026-03-05T10:15:00+00:00", "recipients": ["13800000000", "x"]}')
    n = Notification.from_json(old)
    assert n.mentions == (Mention(mobile="13800000000"),)
    assert Notification.from_json(n.to_json()) == n
