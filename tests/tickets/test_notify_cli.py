"""``netguard tickets notify-test``, the notifications of ``tickets show`` and
``check-config`` on routes, through the real CLI; robot messages reach a real HTTP
receiver in the WeCom and DingTalk formats."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from netguard.config import settings_from_data
from netguard.errors import ConfigError
from netguard.iot.models import OutboxMessage
from netguard.notify.enqueue import RoutedMessage, enqueue_routed
from netguard.store import Store
from netguard.store.config import StoreConfig
from netguard.tickets.config import TicketsConfig
from netguard.tickets.service import TicketService
from tests.iot import conftest as iot
from tests.iot.receiver import Receiver

pytestmark = pytest.mark.integration

# The CLI-test fixtures of tests/iot: a config naming a migrated SQLite store, a receiver.
config = iot.config
receiver = iot.receiver
ng = iot.ng

RECIPIENT = {"name": "王芳", "wecom": "wangfang", "dingtalk_user": "ding_0001",
             "mobile": "13800000001"}


def _write(config: Path, extra: dict[str, Any]) -> Path:
    data = yaml.safe_load(config.read_text())
    data.update(extra)
    config.write_text(yaml.safe_dump(data, allow_unicode=True))
    return config


def _notifiers(receiver: Receiver) -> dict[str, Any]:
    return {"notifiers": [
        {"name": "netops-wecom", "type": "wecom", "url": receiver.url("/wecom?key=k-1234")},
        {"name": "duty-dingtalk", "type": "dingtalk",
         "url": receiver.url("/dingtalk?access_token=t-1234"), "secret": "SEC-dingtalk-1"},
        {"name": "broken", "type": "webhook", "url": receiver.url("/broken")}]}


def _routes(*routes: dict[str, Any]) -> dict[str, Any]:
    return {"routes": list(routes)}


async def test_notify_test_sends_a_marked_sample_to_each_notifier(
        config: Path, receiver: Receiver) -> None:
    _write(config, {"iot": _notifiers(receiver), "notifications": _routes(
        {"name": "duty", "notifiers": ["netops-wecom", "duty-dingtalk"],
         "recipients": [RECIPIENT]})})
    code, out = await asyncio.to_thread(ng, config, "tickets", "notify-test", "duty")
    assert code == 0, out
    assert out.splitlines() == ["netops-wecom   OK", "duty-dingtalk  OK"]
    [wecom] = receiver.on("/wecom")
    [ding] = receiver.on("/dingtalk")
    # WeCom: markdown, zh-CN by default, marked as a test, mentioning the user id.
    assert wecom.body["msgtype"] == "markdown"
    content = wecom.body["markdown"]["content"]
    assert content.startswith("## 【测试】netguard 通知测试")
    assert "`duty`" in content
    assert "<@wangfang>" in content
    # DingTalk: signed, markdown, mentioning by user id (in the text, as it requires).
    assert {"timestamp", "sign"} <= set(ding.query)
    assert ding.body["markdown"]["title"] == "【测试】netguard 通知测试"
    assert ding.body["at"]["atUserIds"] == ["ding_0001"]
    assert "@ding_0001" in ding.body["markdown"]["text"]


async def test_notify_test_reports_each_failure_and_exits_1(
        config: Path, receiver: Receiver) -> None:
    _write(config, {"iot": _notifiers(receiver), "display": {"language": "en"},
                    "notifications": _routes(
                        {"name": "duty", "notifiers": ["broken", "netops-wecom"]})})
    receiver.fail["/broken"] = 503
    code, out = await asyncio.to_thread(ng, config, "tickets", "notify-test", "duty",
                                        "--json")
    assert code == 1, out
    report = json.loads(out)
    assert report["route"] == "duty"
    [broken, wecom] = report["notifiers"]
    assert (broken["notifier"], broken["ok"]) == ("broken", False)
    assert "503" in broken["error"]
    assert (wecom["notifier"], wecom["ok"], wecom["error"]) == ("netops-wecom", True, None)
    # Every notifier was tried although the first failed; English when configured.
    [sent] = receiver.on("/wecom")
    assert sent.body["markdown"]["content"].startswith("## [TEST] netguard notification test")
    # A robot key in the URL never reaches the output.
    assert "k-1234" not in out


def test_notify_test_unknown_route_exits_2_naming_the_known_ones(config: Path) -> None:
    _write(config, {"iot": {"notifiers": [{"name": "c", "type": "console"}]},
                    "notifications": _routes({"name": "duty", "notifiers": ["c"]},
                                             {"name": "managers", "notifiers": ["c"]})})
    code, out = ng(config, "tickets", "notify-test", "nope")
    assert code == 2
    assert "unknown route 'nope' (known: duty, managers)" in out


def test_check_config_rejects_a_route_naming_an_unknown_notifier(config: Path) -> None:
    _write(config, {"iot": {"notifiers": [{"name": "netops-wecom", "type": "console"}]},
                    "notifications": _routes({"name": "duty",
                                              "notifiers": ["netops-wcom"]})})
    code, out = ng(config, "check-config")
    assert code != 0
    assert "notifications.routes[0].notifiers: unknown notifier 'netops-wcom'" in out
    assert "known: netops-wecom" in out


@pytest.mark.parametrize(("field", "value", "says"), [
    ("wecom", "wang fang", "is not a user id"),
    ("dingtalk_user", "x" * 65, "is not a user id"),
    ("mobile", "1380000", "is not a mobile number"),
])
def test_check_config_rejects_a_malformed_mention_in_a_route(
        config: Path, field: str, value: str, says: str) -> None:
    _write(config, {"iot": {"notifiers": [{"name": "c", "type": "console"}]},
                    "notifications": _routes({"name": "duty", "notifiers": ["c"],
                                              "recipients": [{"name": "王芳",
                                                              field: value}]})})
    code, out = ng(config, "check-config")
    assert code != 0
    assert "notifications.routes" in out
    assert says in out


@pytest.mark.parametrize("recipient", [
    {"name": "王芳", "wecom": "wang/fang"}, {"dingtalk_user": ""}, "1380000000x", {},
])
def test_settings_refuse_malformed_route_recipients(recipient: Any) -> None:
    with pytest.raises((ConfigError, ValueError)):
        settings_from_data({"iot": {"notifiers": [{"name": "c", "type": "console"}]},
                            "notifications": {"routes": [{"name": "duty", "notifiers": ["c"],
                                                          "recipients": [recipient]}]}})


async def _ticket_with_messages(db: Path) -> str:
    """A ticket and three outbox rows for it: delivered, failed, pending."""
    async with Store(StoreConfig(path=db)) as store:
        service = TicketService(store, TicketsConfig())
        ticket = await service.open(category="fiber", summary="olt-1: 光缆中断",
                                    severity="critical", actor="ops", target="olt-1")
        settings = settings_from_data({
            "iot": {"notifiers": [{"name": "netops-wecom", "type": "console"},
                                  {"name": "duty-dingtalk", "type": "console"}]},
            "notifications": {"routes": [{"name": "core", "notifiers": [
                "netops-wecom", "duty-dingtalk"]}, {"name": "managers",
                                                    "notifiers": ["duty-dingtalk"]}]}})
        core, managers = settings.notifications.routes
        at = datetime(2026, 12, 3, 1, 30, tzinfo=UTC)
        message = RoutedMessage(subject="ticket", ident=ticket.id, reason="opened",
                                severity="critical", category="fiber", text="## 工单",
                                first_seen=at.isoformat())
        async with store.session() as s:
            rows = enqueue_routed(s, core, message, at)
            rows += enqueue_routed(s, managers, RoutedMessage(
                **{**_fields(message), "reason": "escalated"}), at.replace(hour=2))
            # An alert with the same id is not this ticket's.
            s.add(OutboxMessage(alert_id=ticket.id, notifier="netops-wecom",
                                community="c1", reason="raised", body="{}",
                                created_at=at, next_attempt_at=at))
            rows[0].status, rows[0].attempts, rows[0].delivered_at = "delivered", 1, at
            rows[1].status, rows[1].attempts = "failed", 50
            rows[1].last_error = "duty-dingtalk: HTTP 400: 关键词不匹配"
            await s.commit()
        return ticket.ref


def _fields(message: RoutedMessage) -> dict[str, Any]:
    return {f: getattr(message, f) for f in message.__slots__}


def test_show_lists_the_notifications_sent(config: Path) -> None:
    db = Path(yaml.safe_load(config.read_text())["store"]["path"])
    ref = asyncio.run(_ticket_with_messages(db))
    code, out = ng(config, "tickets", "show", ref)
    assert code == 0, out
    block = out[out.index("notifications (3):"):].splitlines()
    assert block[1].split() == ["TIME", "ROUTE", "NOTIFIER", "REASON", "STATE", "ATTEMPTS",
                                "ERROR"]
    # Times in display.timezone (Asia/Shanghai by default): 01:30 UTC is 09:30.
    assert block[2].split() == ["2026-12-03", "09:30:00", "+0800", "core", "netops-wecom",
                                "opened", "delivered", "1"]
    assert block[3].split()[3:9] == ["core", "duty-dingtalk", "opened", "failed", "50",
                                     "duty-dingtalk:"]
    assert block[3].endswith("关键词不匹配")
    assert block[4].split() == ["2026-12-03", "10:30:00", "+0800", "managers",
                                "duty-dingtalk", "escalated", "pending", "0"]

    code, out = ng(config, "tickets", "show", ref, "--json")
    assert code == 0, out
    sent = json.loads(out)["notifications"]
    assert [(n["route"], n["notifier"], n["reason"], n["state"], n["attempts"])
            for n in sent] == [("core", "netops-wecom", "opened", "delivered", 1),
                               ("core", "duty-dingtalk", "opened", "failed", 50),
                               ("managers", "duty-dingtalk", "escalated", "pending", 0)]
    assert sent[0]["created_at"] == "2026-12-03T01:30:00+00:00"
    assert sent[0]["delivered_at"] == "2026-12-03T01:30:00+00:00"
    assert sent[1]["last_error"] == "duty-dingtalk: HTTP 400: 关键词不匹配"


def test_show_without_notifications_says_none(config: Path) -> None:
    code, out = ng(config, "tickets", "open", "--category", "fiber", "--summary", "x",
                   "--severity", "minor", "--target", "olt-1", "--by", "ops")
    assert code == 0, out
    ref = out.split()[0]
    code, out = ng(config, "tickets", "show", ref)
    assert code == 0, out
    assert out.rstrip().endswith("notifications: (none)")
    code, out = ng(config, "tickets", "show", ref, "--json")
    assert json.loads(out)["notifications"] == []
